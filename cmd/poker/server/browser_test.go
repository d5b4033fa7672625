package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/testenv"
)

// TestBrowserRound drives the real UI in headless Chromium: a leader and
// two members, each in a separate browser context (separate storage), play
// a full round and all see the same result.
func TestBrowserRound(t *testing.T) {
	chromium := testenv.Chromium(t)
	e := newEnv(t, server.Config{})
	tab := startBrowser(t, chromium, 90*time.Second, 900)
	ann, bob, cid := tab(), tab(), tab()
	do, poll, eval := browserSteps(t, 15*time.Second)

	// The leader creates the room.
	do("ann", ann,
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#create-form")),
		chromedp.SetValue(chromedp.CSS("#create-title"), "Sprint 42"),
		chromedp.SetValue(chromedp.CSS("#create-name"), "Ann"),
		chromedp.Click(chromedp.CSS("#create-submit")),
	)
	poll("ann", ann, `location.pathname.startsWith("/r/") && document.querySelector("#connection-status").dataset.state === "live"`)
	link := eval("ann", ann, `document.querySelector("#share-link").value`)
	if !strings.HasPrefix(link, e.url+"/r/") {
		t.Fatalf("share link %q", link)
	}

	// Two members join through the link.
	for _, m := range []struct {
		who  string
		c    context.Context
		name string
	}{{"bob", bob, "Bob"}, {"cid", cid, "Cid"}} {
		do(m.who, m.c,
			chromedp.Navigate(link),
			chromedp.WaitVisible(chromedp.CSS("#join-name")),
			chromedp.SetValue(chromedp.CSS("#join-name"), m.name),
			chromedp.Click(chromedp.CSS("#join-submit")),
		)
		poll(m.who, m.c, `document.querySelector("#connection-status").dataset.state === "live" && !document.querySelector("#view-room").hidden`)
	}
	for _, p := range []struct {
		who string
		c   context.Context
	}{{"ann", ann}, {"bob", bob}, {"cid", cid}} {
		poll(p.who, p.c, `document.querySelectorAll('[data-testid="member"]').length === 3`)
	}

	// The leader starts a session; everyone votes.
	do("ann", ann,
		chromedp.SetValue(chromedp.CSS("#story-input"), "Login page"),
		chromedp.Click(chromedp.CSS("#start-voting")),
	)
	votes := map[string]string{"ann": "5", "bob": "8", "cid": "5"}
	tabs := map[string]context.Context{"ann": ann, "bob": bob, "cid": cid}
	for _, who := range []string{"ann", "bob", "cid"} {
		c := tabs[who]
		poll(who, c, `document.querySelector("#session-status").dataset.status === "voting" && !document.querySelector("#vote-area").hidden`)
		if got := eval(who, c, `document.querySelector("#current-story").textContent`); got != "Login page" {
			t.Fatalf("%s sees story %q", who, got)
		}
		do(who, c, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#cards button[data-value="%s"]`, votes[who]))))
	}
	poll("ann", ann, `[...document.querySelectorAll('[data-testid="member"]')].every(m => m.dataset.voted === "true")`)
	do("ann", ann, chromedp.Click(chromedp.CSS("#reveal")))

	// Everyone sees the same result.
	shot := artifactShooter(t)
	var first string
	for _, who := range []string{"ann", "bob", "cid"} {
		c := tabs[who]
		poll(who, c, `document.querySelector("#session-status").dataset.status === "finished" && !document.querySelector("#results").hidden`)
		result := eval(who, c, `JSON.stringify({
			avg: document.querySelector("#stat-average").textContent,
			med: document.querySelector("#stat-median").textContent,
			consensus: document.querySelector("#stat-consensus").dataset.consensus,
			votes: [...document.querySelectorAll('[data-testid="result-vote"]')].map(li => li.dataset.value).sort()
		})`)
		if want := `{"avg":"6","med":"5","consensus":"false","votes":["5","5","8"]}`; result != want {
			t.Fatalf("%s sees %s, want %s", who, result, want)
		}
		if first == "" {
			first = result
		} else if result != first {
			t.Fatalf("%s sees %s, others %s", who, result, first)
		}
		shot(who, c, "round-"+who)
	}
}

// browserSteps returns the steps the browser tests take in a tab, each
// failing t with who took it: do runs actions, poll waits at most
// pollTimeout for a JavaScript expression to hold, eval returns a string
// expression's value.
func browserSteps(t *testing.T, pollTimeout time.Duration) (
	do func(who string, c context.Context, steps ...chromedp.Action[chromedp.Void]),
	poll func(who string, c context.Context, expr string),
	eval func(who string, c context.Context, expr string) string,
) {
	do = func(who string, c context.Context, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
	}
	poll = func(who string, c context.Context, expr string) {
		t.Helper()
		if _, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(pollTimeout))); err != nil {
			t.Fatalf("%s: waiting for %s: %v", who, expr, err)
		}
	}
	eval = func(who string, c context.Context, expr string) string {
		t.Helper()
		v, err := chromedp.Run(c, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %s: %v", who, expr, err)
		}
		return v
	}
	return do, poll, eval
}

// startBrowser starts headless Chromium for at most timeout, with a window
// 1100 px wide and height tall, and returns a function that opens a tab in
// a browser context of its own (separate storage, like another person).
func startBrowser(t *testing.T, chromium string, timeout time.Duration, height int) func() context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1100, height),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return func() context.Context {
		c, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		return c
	}
}

// artifactShooter returns a function saving a full-page screenshot as
// poker-NAME.png in $REACTOR_ARTIFACTS (CI keeps it) or a temp dir.
func artifactShooter(t *testing.T) func(who string, c context.Context, name string) {
	dir := os.Getenv("REACTOR_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return func(who string, c context.Context, name string) {
		t.Helper()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100)) // 100: PNG (below: JPEG)
		if err != nil {
			t.Fatalf("%s: screenshot: %v", who, err)
		}
		path := filepath.Join(dir, "poker-"+name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
}
