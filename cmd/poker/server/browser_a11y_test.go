package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/testenv"
)

// TestBrowserProduct drives what a team sees beyond the basic round, at
// phone (390×844) and desktop size: a custom T-shirt deck with seats and
// auto-reveal chosen in the create form, results for a non-numeric deck
// (most common value, agreement, distribution chart, lowest and highest
// voters), a countdown that reveals by itself, a reveal while the tab is
// in the background (the tab title says so), the offline banner during a
// server restart with a vote lost to the outage resent after it and the
// error cleared, the operator status page on a phone, and an axe-core
// accessibility audit of every page with zero serious or critical
// violations. Screenshots go to $REACTOR_ARTIFACTS.
func TestBrowserProduct(t *testing.T) {
	chromium := testenv.Chromium(t)
	srv := startRestartable(t)
	tab := startBrowser(t, chromium, 150*time.Second, 1000)
	phone, desk := tab(), tab()
	do, poll, eval := browserSteps(t, 20*time.Second)
	shot := artifactShooter(t)
	do("phone", phone, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))

	// The create form at phone size: a custom deck, seats, auto-reveal.
	do("phone", phone, chromedp.Navigate(srv.url+"/"), chromedp.WaitVisible(chromedp.CSS("#create-form")))
	axeAudit(t, "phone", phone, "create form")
	do("phone", phone,
		chromedp.SetValue(chromedp.CSS("#create-title"), "T-shirt sizing"),
		chromedp.SetValue(chromedp.CSS("#create-name"), "Ann"),
		chromedp.SetValue(chromedp.CSS("#create-deck"), "custom"),
	)
	eval("phone", phone, `(document.querySelector("#create-deck").dispatchEvent(new Event("change")), "")`)
	poll("phone", phone, `!document.querySelector("#custom-deck-field").hidden && document.activeElement.id === "create-custom-deck"`)
	do("phone", phone,
		chromedp.SetValue(chromedp.CSS("#create-custom-deck"), "XS S M L XL ?"),
		chromedp.SetValue(chromedp.CSS("#create-capacity"), "5"),
		chromedp.Click(chromedp.CSS("#create-autoreveal")),
	)
	shot("phone", phone, "phone-create")
	do("phone", phone, chromedp.Click(chromedp.CSS("#create-submit")))
	poll("phone", phone, `location.pathname.startsWith("/r/") && document.querySelector("#connection-status").dataset.state === "live"`)
	// Focus moved deliberately: the leader types the first story.
	poll("phone", phone, `document.activeElement.id === "story-input"`)
	poll("phone", phone, `document.querySelector("#member-count").textContent === "(1/5)" && document.querySelector("#autoreveal").checked`)
	link := eval("phone", phone, `document.querySelector("#share-link").value`)
	if want := "https://poker.example.test/r/"; !strings.HasPrefix(link, want) {
		t.Fatalf("invite link %q does not use the public URL (%s…)", link, want)
	}
	room := strings.TrimPrefix(link, "https://poker.example.test/r/")

	// Bob joins at desktop size.
	do("desk", desk, chromedp.Navigate(srv.url+"/r/"+room), chromedp.WaitVisible(chromedp.CSS("#join-name")))
	poll("desk", desk, `document.title.startsWith("Join T-shirt sizing")`)
	axeAudit(t, "desk", desk, "join page")
	do("desk", desk, chromedp.SetValue(chromedp.CSS("#join-name"), "Bob Lee-Anderson"), chromedp.Click(chromedp.CSS("#join-submit")))
	poll("desk", desk, `document.querySelector("#connection-status").dataset.state === "live" && !document.querySelector("#view-room").hidden`)

	// A round; both vote; the room reveals by itself.
	do("phone", phone, chromedp.SetValue(chromedp.CSS("#story-input"), "Checkout page"), chromedp.Click(chromedp.CSS("#start-voting")))
	poll("desk", desk, `!document.querySelector("#vote-area").hidden && document.querySelectorAll("#cards button").length === 6`)
	axeAudit(t, "desk", desk, "voting")
	axeAudit(t, "phone", phone, "leader while voting")
	shot("phone", phone, "phone-voting")
	// Bob's tab is in the background when the votes are revealed.
	eval("desk", desk, `(Object.defineProperty(document, "hidden", {value: true, configurable: true}), "")`)
	do("desk", desk, chromedp.Click(chromedp.CSS(`#cards button[data-value="XL"]`)))
	do("phone", phone, chromedp.Click(chromedp.CSS(`#cards button[data-value="S"]`)))
	poll("desk", desk, `document.querySelector("#session-status").dataset.status === "finished"`)
	if got := eval("desk", desk, `document.title`); !strings.HasPrefix(got, "● Votes revealed") {
		t.Fatalf("background tab title after a reveal: %q", got)
	}
	eval("desk", desk, `(Object.defineProperty(document, "hidden", {value: false, configurable: true}),
		document.dispatchEvent(new Event("visibilitychange")), "")`)
	poll("desk", desk, `document.title === "T-shirt sizing · Planning poker"`)
	poll("phone", phone, `document.querySelector("#session-status").dataset.status === "finished"`)
	got := eval("phone", phone, `JSON.stringify({
		reason: document.querySelector("#reveal-reason").textContent,
		common: document.querySelector("#stat-common").textContent,
		agreement: document.querySelector("#stat-agreement").textContent,
		averageShown: !document.querySelector("#stat-average-box").hidden,
		bars: [...document.querySelectorAll('[data-testid="dist-bar"]')].map(b => b.dataset.value + "=" + b.dataset.count),
		extremes: [...document.querySelectorAll('[data-testid="result-vote"]')].map(li => li.dataset.value + ":" + li.dataset.extreme).sort()
	})`)
	if want := `{"reason":"Revealed by itself: everyone had voted.","common":"S / XL","agreement":"50 %","averageShown":false,` +
		`"bars":["S=1","XL=1"],"extremes":["S:low","XL:high"]}`; got != want {
		t.Fatalf("results:\n got %s\nwant %s", got, want)
	}
	waitAnimations(t, "phone", phone)
	waitAnimations(t, "desk", desk)
	axeAudit(t, "phone", phone, "results")
	axeAudit(t, "desk", desk, "results")
	shot("phone", phone, "phone-results")
	shot("desk", desk, "desktop-results")

	// A countdown set by the leader reveals when it ends (5 s, the
	// shortest, set through the API the leader's page uses).
	do("phone", phone, chromedp.Click(chromedp.CSS("#revote")))
	poll("phone", phone, `document.querySelector("#session-status").dataset.status === "voting" && !document.querySelector("#timer-start").disabled`)
	token := eval("phone", phone, `JSON.parse(localStorage.getItem("poker:room:`+room+`")).token`)
	if r := srv.post("/api/rooms/"+room+"/session/timer", token, `{"seconds":5}`); r != http.StatusAccepted {
		t.Fatalf("timer: %d", r)
	}
	poll("desk", desk, `!document.querySelector("#countdown").hidden && /^0:0[0-5]$/.test(document.querySelector("#countdown-value").textContent)`)
	poll("phone", phone, `!document.querySelector("#timer-stop").hidden`)
	shot("desk", desk, "desktop-countdown")
	do("desk", desk, chromedp.Click(chromedp.CSS(`#cards button[data-value="M"]`)))
	poll("desk", desk, `document.querySelector("#session-status").dataset.status === "finished" &&
		document.querySelector("#reveal-reason").textContent === "Revealed when the countdown ended." &&
		document.querySelector("#countdown").hidden`)

	// The server restarts while Bob's vote is on its way: the banner shows,
	// the cards are disabled, the vote is kept and resent with its key once
	// the connection is back, and the error goes away.
	do("phone", phone, chromedp.Click(chromedp.CSS("#revote")))
	poll("desk", desk, `document.querySelector("#session-status").dataset.status === "voting" && !document.querySelector('#cards button[data-value="L"]').disabled`)
	// The vote's requests fail as they would with the server gone (the
	// page retries them first), while the stream still looks live.
	// Every attempt's Idempotency-Key is recorded, the failed ones and the
	// one resent after the restart.
	eval("desk", desk, `(window.__fetch = window.fetch, window.__keys = [], window.__down = true,
		window.fetch = (u, o) => {
			if (!String(u).endsWith("/votes")) return window.__fetch(u, o);
			window.__keys.push((o && o.headers && o.headers["Idempotency-Key"]) || "");
			return window.__down ? Promise.reject(new TypeError("Failed to fetch")) : window.__fetch(u, o);
		}, "")`)
	do("desk", desk, chromedp.Click(chromedp.CSS(`#cards button[data-value="L"]`)))
	poll("desk", desk, `document.querySelector("#error-message").dataset.kind === "conn" &&
		document.querySelector("#error-message").textContent.includes("not sent yet")`)
	eval("desk", desk, `(window.__down = false, "")`)
	srv.stop()
	poll("desk", desk, `!document.querySelector("#offline-banner").hidden &&
		document.querySelector("#offline-banner").dataset.pendingVote === "L" &&
		document.querySelector('#cards button[data-value="M"]').disabled`)
	shot("desk", desk, "desktop-offline")
	axeAudit(t, "desk", desk, "offline")
	srv.start()
	poll("desk", desk, `document.querySelector("#connection-status").dataset.state === "live" &&
		document.querySelector("#offline-banner").hidden &&
		document.querySelector('#cards button[data-value="L"]').getAttribute("aria-pressed") === "true" &&
		document.querySelector("#error-message").dataset.kind !== "conn"`)
	poll("phone", phone, `document.querySelector('[data-testid="member"][data-me="false"]').dataset.voted === "true"`)
	// The vote was resent with the key of its first attempt: the server
	// applies it once even if an attempt did arrive.
	var keys []string
	if err := json.Unmarshal([]byte(eval("desk", desk, `JSON.stringify(window.__keys)`)), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) < 2 || keys[0] == "" || strings.Count(strings.Join(keys, " ")+" ", keys[0]+" ") != len(keys) {
		t.Fatalf("Idempotency-Keys of the vote's attempts: %q, want one key throughout", keys)
	}
	eval("desk", desk, `(window.fetch = window.__fetch, "")`)
	if r := srv.post("/api/rooms/"+room+"/session/finish", token, ""); r != http.StatusAccepted {
		t.Fatalf("finish: %d", r)
	}
	poll("phone", phone, `[...document.querySelectorAll('[data-testid="result-vote"]')].some(li => li.dataset.value === "L")`)

	// The operator's status page, on the phone (loopback: allowed).
	do("phone", phone, chromedp.Navigate(srv.url+"/status"))
	poll("phone", phone, `document.body.dataset.charts === "ready" && document.querySelectorAll("figure.chart svg").length === 6`)
	status := eval("phone", phone, `JSON.stringify({
		rooms: document.querySelector('[data-testid="status-rooms"]').textContent,
		wide: document.documentElement.scrollWidth > window.innerWidth + 1
	})`)
	if status != `{"rooms":"1 room","wide":false}` {
		t.Fatalf("status page on a phone: %s", status)
	}
	axeAudit(t, "phone", phone, "status page")
	shot("phone", phone, "phone-status")
}

// waitAnimations waits until the page runs no animation (the reveal's card
// flip), so that the audit sees the final colours.
func waitAnimations(t *testing.T, who string, c context.Context) {
	t.Helper()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](`document.getAnimations().every(a => a.playState === "finished" || a.effect.getTiming().iterations === Infinity)`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("%s: animations still running: %v", who, err)
	}
}

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	return string(b), err
})

// axeAudit runs axe-core (vendored in testdata/axe) on the page and fails
// the test for every serious or critical violation of WCAG 2.x A/AA and
// axe's best practices; milder ones are logged.
func axeAudit(t *testing.T, who string, c context.Context, page string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(c, chromedp.Evaluate[bool](`typeof axe === "object" || (function(){`+src+`
		;return true})()`)); err != nil {
		t.Fatalf("%s: inject axe-core: %v", who, err)
	}
	out, err := chromedp.Run(c, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
		resultTypes: ["violations"]
	}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
		nodes: v.nodes.slice(0, 4).map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: axe.run on %s: %v", who, page, err)
	}
	var vs []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("%s: axe result %s: %v", who, out, err)
	}
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s, %s: accessibility (%s) %s: %s on %v", who, page, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			t.Logf("%s, %s: accessibility (%s) %s: %s on %v", who, page, v.Impact, v.ID, v.Help, v.Nodes)
		}
	}
}

// restartable is a poker server on a fixed loopback port that a test can
// stop and start again on the same data directory (a browser reconnects
// to the same address).
type restartable struct {
	t    *testing.T
	dir  string
	addr string
	url  string
	srv  *server.Server
	hs   *http.Server
}

func startRestartable(t *testing.T) *restartable {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &restartable{t: t, dir: t.TempDir(), addr: ln.Addr().String()}
	r.url = "http://" + r.addr
	ln.Close()
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	srv, err := server.New(context.Background(), server.Config{DataDir: r.dir, PublicURL: "https://poker.example.test/",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CheckpointInterval: time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the port was ours a moment ago
		if ln, err = net.Listen("tcp", r.addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		_ = srv.Close(context.Background())
		r.t.Fatal(err)
	}
	r.srv, r.hs = srv, srv.HTTPServer()
	go func() { _ = r.hs.Serve(ln) }()
}

func (r *restartable) stop() {
	if r.srv == nil {
		return
	}
	r.srv.CloseStreams()
	_ = r.hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.srv.Close(ctx); err != nil {
		r.t.Errorf("close: %v", err)
	}
	r.srv = nil
}

// post sends a member command and returns the status code.
func (r *restartable) post(path, token, body string) int {
	r.t.Helper()
	req, err := http.NewRequest("POST", r.url+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
