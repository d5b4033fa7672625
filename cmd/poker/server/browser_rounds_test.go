package server_test

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/testenv"
)

// TestBrowserRefinement drives a refinement meeting through the real UI: a
// dead link refused before a name is asked, the join page showing the
// room's title, an observer, a queue of two stories, a keyboard-only vote
// with a visible focus ring, an explicit re-vote, a recorded estimate, the
// history list, the CSV export (parsed) and a leader hand-off.
func TestBrowserRefinement(t *testing.T) {
	chromium := testenv.Chromium(t)
	e := newEnv(t, server.Config{})
	tab := startBrowser(t, chromium, 120*time.Second, 1000)
	ann, bob, olga := tab(), tab(), tab()
	do, poll, eval := browserSteps(t, 15*time.Second)
	shot := artifactShooter(t)
	all := map[string]context.Context{"ann": ann, "bob": bob, "olga": olga}

	// A dead link is refused before anyone types a name.
	do("bob", bob, chromedp.Navigate(e.url+"/r/aaaaaaaaaaaaaaaaaaaaaaaaaa"))
	poll("bob", bob, `!document.querySelector("#view-gone").hidden && document.querySelector("#view-join").hidden`)

	// The leader creates the room; the title may be 120 characters.
	do("ann", ann, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#create-form")))
	if got := eval("ann", ann, `String(document.querySelector("#create-title").maxLength)`); got != "120" {
		t.Fatalf("title maxlength %s", got)
	}
	do("ann", ann,
		chromedp.SetValue(chromedp.CSS("#create-title"), "Refinement"),
		chromedp.SetValue(chromedp.CSS("#create-name"), "Ann"),
		chromedp.Click(chromedp.CSS("#create-submit")),
	)
	poll("ann", ann, `location.pathname.startsWith("/r/") && document.querySelector("#connection-status").dataset.state === "live"`)
	link := eval("ann", ann, `document.querySelector("#share-link").value`)

	// Bob joins as a voter, Olga as an observer; the join page names the room.
	for _, m := range []struct {
		who      string
		name     string
		observer bool
	}{{"bob", "Bob", false}, {"olga", "Olga", true}} {
		c := all[m.who]
		do(m.who, c, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#join-name")))
		poll(m.who, c, `document.querySelector("#join-room-title").textContent.includes("Refinement")`)
		do(m.who, c, chromedp.SetValue(chromedp.CSS("#join-name"), m.name))
		if m.observer {
			do(m.who, c, chromedp.Click(chromedp.CSS("#join-observer")))
		}
		do(m.who, c, chromedp.Click(chromedp.CSS("#join-submit")))
		poll(m.who, c, `document.querySelector("#connection-status").dataset.state === "live" && !document.querySelector("#view-room").hidden`)
	}
	poll("ann", ann, `document.querySelectorAll('[data-testid="member"]').length === 3 &&
		document.querySelector('[data-testid="member"][data-role="observer"]') !== null`)

	// A queue of two stories; the first goes to a round.
	do("ann", ann,
		chromedp.SetValue(chromedp.CSS("#queue-input"), "Story A\nStory B"),
		chromedp.Click(chromedp.CSS("#queue-add")),
	)
	poll("bob", bob, `document.querySelectorAll('[data-testid="queue-item"]').length === 2`)
	do("ann", ann, chromedp.Click(chromedp.CSS("#next-story")))
	for who, c := range all {
		poll(who, c, `document.querySelector("#session-status").dataset.status === "voting" &&
			document.querySelector("#current-story").textContent === "Story A" &&
			document.querySelectorAll('[data-testid="queue-item"]').length === 1`)
	}
	// The observer sees no cards and does not count.
	poll("olga", olga, `document.querySelector("#vote-area").hidden && !document.querySelector("#observer-note").hidden`)
	poll("ann", ann, `document.querySelector("#session-hint").textContent.startsWith("0 of 2 voted")`)

	// Bob votes with the keyboard only: Tab from the top of the page to the
	// card "5" (every control on the way is reachable), Enter; the focused
	// card shows a ring.
	eval("bob", bob, `(document.activeElement && document.activeElement.blur(), window.scrollTo(0, 0), "")`)
	var path []string
	for i := 0; ; i++ {
		if i == 60 {
			t.Fatalf("the card 5 is not reachable with Tab; focus went through %q", path)
		}
		do("bob", bob, chromedp.KeyEvent("\t"))
		at := eval("bob", bob, `(() => { const a = document.activeElement;
			return a ? (a.id || a.dataset.value || a.dataset.testid || a.tagName) : ""; })()`)
		path = append(path, at)
		if eval("bob", bob, `String(document.activeElement.matches('#cards button[data-value="5"]'))`) == "true" {
			break
		}
	}
	t.Logf("Tab went through %q", path)
	ring := eval("bob", bob, `(() => { const b = document.activeElement;
		return b.dataset.value + " " + b.matches(":focus-visible") + " " + getComputedStyle(b).outlineStyle + " " +
			(parseFloat(getComputedStyle(b).outlineWidth) >= 2); })()`)
	if ring != "5 true solid true" {
		t.Fatalf("focused card: %q, want a visible solid outline of at least 2px", ring)
	}
	shot("bob", bob, "keyboard-focus")
	do("bob", bob, chromedp.KeyEvent("\r"))
	poll("bob", bob, `document.querySelector('#cards button[data-value="5"]').getAttribute("aria-pressed") === "true"`)
	do("ann", ann, chromedp.Click(chromedp.CSS(`#cards button[data-value="8"]`)))
	poll("ann", ann, `document.querySelector("#session-hint").textContent.startsWith("2 of 2 voted")`)
	do("ann", ann, chromedp.Click(chromedp.CSS("#reveal")))
	poll("olga", olga, `document.querySelector("#session-status").dataset.status === "finished"`)
	// Focus moves deliberately: to the estimate after a reveal, to "Reveal"
	// after a re-vote (never back to the page body).
	poll("ann", ann, `document.activeElement.id === "estimate-input"`)

	// No agreement: an explicit re-vote of the same story.
	do("ann", ann, chromedp.Click(chromedp.CSS("#revote")))
	poll("ann", ann, `document.activeElement.id === "reveal"`)
	for who, c := range all {
		poll(who, c, `document.querySelector("#session-status").dataset.status === "voting" &&
			document.querySelector("#current-story").textContent === "Story A"`)
	}
	do("bob", bob, chromedp.Click(chromedp.CSS(`#cards button[data-value="5"]`)))
	do("ann", ann, chromedp.Click(chromedp.CSS(`#cards button[data-value="5"]`)))
	poll("ann", ann, `document.querySelector("#session-hint").textContent.startsWith("2 of 2 voted")`)
	do("ann", ann, chromedp.Click(chromedp.CSS("#reveal")))
	// The estimate is prefilled with the most common vote.
	poll("ann", ann, `!document.querySelector("#estimate-form").hidden && document.querySelector("#estimate-input").value === "5"`)
	do("ann", ann, chromedp.Click(chromedp.CSS("#record-estimate")))
	for who, c := range all {
		poll(who, c, `document.querySelector("#agreed-estimate").dataset.estimate === "5" &&
			document.querySelectorAll('[data-testid="history-round"]').length === 2 &&
			document.querySelector('[data-testid="history-round"][data-round="2"]').dataset.estimate === "5"`)
	}
	poll("bob", bob, `document.querySelector("#estimate-form").hidden`) // the leader's only
	shot("ann", ann, "refinement-ann")

	// The second story.
	do("ann", ann, chromedp.Click(chromedp.CSS("#next-story")))
	poll("bob", bob, `document.querySelector("#current-story").textContent === "Story B" && document.querySelector("#queue-view").hidden`)

	// The CSV export, fetched as the page does, parsed.
	room := strings.TrimPrefix(eval("olga", olga, `location.pathname`), "/r/")
	text, err := chromedp.Run(olga, chromedp.Evaluate[string](`fetch("/api/rooms/`+room+`/history?format=csv", {headers: {
		Authorization: "Bearer " + JSON.parse(localStorage.getItem("poker:room:`+room+`")).token}}).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("csv %q: %v", text, err)
	}
	if len(rows) != 3 || rows[0][0] != "round" || rows[1][1] != "Story A" || rows[1][2] != "" ||
		rows[2][1] != "Story A" || rows[2][2] != "5" || rows[2][3] != "Ann: 5; Bob: 5" {
		t.Fatalf("csv rows %q", rows)
	}

	// Ann hands the lead to Bob (confirming).
	eval("ann", ann, `(window.confirm = () => true, "")`)
	do("ann", ann, chromedp.Click(chromedp.CSS(`button[data-testid="member-make-leader"][data-member-id="`+
		eval("ann", ann, `document.querySelector('[data-testid="member"][data-me="false"][data-role="voter"]').dataset.memberId`)+`"]`)))
	poll("bob", bob, `!document.querySelector("#leader-panel").hidden && document.querySelector("#me-role").textContent.includes("leader")`)
	poll("ann", ann, `document.querySelector("#leader-panel").hidden`)
	shot("olga", olga, "refinement-observer")
	axeAudit(t, "olga", olga, "refinement, observer")
	axeAudit(t, "bob", bob, "refinement, new leader")

	// Bob, now leading, leaves: he is asked first, and saying no keeps him
	// in the room; saying yes hands the lead to the longest-standing member.
	eval("bob", bob, `(window.__asked = [], window.confirm = m => (window.__asked.push(m), false), "")`)
	do("bob", bob, chromedp.Click(chromedp.CSS("#leave-room")))
	if asked := eval("bob", bob, `window.__asked.join("|")`); !strings.Contains(asked, "You lead this room") || !strings.Contains(asked, "Ann will lead it") {
		t.Fatalf("leaving as leader asked %q", asked)
	}
	time.Sleep(300 * time.Millisecond) // nothing may be on its way
	poll("bob", bob, `!document.querySelector("#view-room").hidden && !document.querySelector("#leader-panel").hidden`)
	poll("ann", ann, `document.querySelectorAll('[data-testid="member"]').length === 3`)
	eval("bob", bob, `(window.confirm = m => (window.__asked.push(m), true), "")`)
	do("bob", bob, chromedp.Click(chromedp.CSS("#leave-room")))
	poll("bob", bob, `location.pathname === "/" && !document.querySelector("#view-create").hidden`)
	poll("ann", ann, `document.querySelectorAll('[data-testid="member"]').length === 2 &&
		!document.querySelector("#leader-panel").hidden && document.querySelector("#me-role").textContent.includes("leader")`)
	// A member who does not lead leaves without being asked.
	eval("olga", olga, `(window.__asked = [], window.confirm = m => (window.__asked.push(m), false), "")`)
	do("olga", olga, chromedp.Click(chromedp.CSS("#leave-room")))
	poll("olga", olga, `location.pathname === "/"`)
	if asked := eval("olga", olga, `window.__asked.join("|")`); asked != "" {
		t.Fatalf("a member who does not lead was asked %q", asked)
	}
}
