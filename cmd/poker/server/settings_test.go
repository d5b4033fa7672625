package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// TestSettingsContract: POST …/settings {autoReveal} (leader) answers 202
// and publishes settings_changed; auto-reveal reveals by itself once every
// voter voted (session_finished reason "auto"), and turning it on when
// every voter already voted reveals at once; bad input and authorisation.
func TestSettingsContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	bob := e.join(c.Room, "bob")
	obs := e.joinAs(c.Room, "olga", "observer")
	base := "/api/rooms/" + c.Room
	s := e.stream(c.Room, bob.Token, "")
	s.expect("snapshot")

	expectError(t, "non-leader", e.do("POST", base+"/settings", bob.Token, `{"autoReveal":true}`), 403, "forbidden")
	expectError(t, "observer", e.do("POST", base+"/settings", obs.Token, `{"autoReveal":true}`), 403, "forbidden")
	expectError(t, "no token", e.do("POST", base+"/settings", "", `{"autoReveal":true}`), 401, "unauthorized")
	expectError(t, "bad token", e.do("POST", base+"/settings", "nope", `{"autoReveal":true}`), 401, "unauthorized")
	expectError(t, "no setting", e.do("POST", base+"/settings", c.Token, `{}`), 400, "invalid_body")
	expectError(t, "not a bool", e.do("POST", base+"/settings", c.Token, `{"autoReveal":"yes"}`), 400, "invalid_body")
	expectError(t, "unknown field", e.do("POST", base+"/settings", c.Token, `{"autoReveal":true,"x":1}`), 400, "invalid_body")
	expectError(t, "unknown room", e.do("POST", "/api/rooms/aaaaaaaaaaaaaaaaaaaaaaaaaa/settings", c.Token, `{"autoReveal":true}`), 404, "room_not_found")

	// Off (the default): everyone voting reveals nothing.
	e.accept("POST", base+"/session", c.Token, `{"story":"A"}`)
	s.expect("session_started")
	s.expect("round_started")
	e.accept("POST", base+"/votes", c.Token, `{"value":"3"}`)
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	s.expect("vote_cast")
	s.expect("vote_cast")
	s.quiet(200 * time.Millisecond)

	// On, with every voter done: revealed at once; the observer is not waited for.
	e.accept("POST", base+"/settings", c.Token, `{"autoReveal":true}`)
	if ev := s.expect("settings_changed"); ev.Data != `{"autoReveal":true}` {
		t.Fatalf("settings_changed %s", ev.Data)
	}
	if ev := s.expect("session_finished"); !strings.Contains(ev.Data, `"reason":"auto"`) {
		t.Fatalf("session_finished %s", ev.Data)
	}
	if r := e.do("GET", base, "", nil); !strings.Contains(string(r.Body), `"autoReveal":true`) {
		t.Fatalf("view without autoReveal: %s", r.Body)
	}

	// The next round reveals with the last vote.
	e.accept("POST", base+"/session/revote", c.Token, nil)
	s.expect("session_started")
	s.expect("round_started")
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	s.expect("vote_cast")
	s.quiet(200 * time.Millisecond)
	e.accept("POST", base+"/votes", c.Token, `{"value":"5"}`)
	s.expect("vote_cast")
	if ev := s.expect("session_finished"); !strings.Contains(ev.Data, `"reason":"auto"`) {
		t.Fatalf("session_finished %s", ev.Data)
	}

	// Off again; a reveal by the leader says so.
	e.accept("POST", base+"/settings", c.Token, `{"autoReveal":false}`)
	if ev := s.expect("settings_changed"); ev.Data != `{"autoReveal":false}` {
		t.Fatalf("settings_changed %s", ev.Data)
	}
	e.accept("POST", base+"/session/revote", c.Token, nil)
	s.expect("session_started")
	s.expect("round_started")
	e.accept("POST", base+"/session/finish", c.Token, nil)
	if ev := s.expect("session_finished"); !strings.Contains(ev.Data, `"reason":"leader"`) {
		t.Fatalf("session_finished %s", ev.Data)
	}

	// Chosen at creation.
	d := e.create("dora", map[string]any{"autoReveal": true})
	if r := e.do("GET", "/api/rooms/"+d.Room, "", nil); !strings.Contains(string(r.Body), `"autoReveal":true`) {
		t.Fatalf("created with autoReveal: %s", r.Body)
	}
}

// TestTimerContract: POST …/session/timer {seconds} (leader) starts a
// countdown on the open round (timer_set with endsAt; the view carries
// deadline and remainingMs) or stops it (seconds 0: endsAt null); when it
// ends the votes are revealed (session_finished reason "timer"); bad input,
// authorisation, and a timer without an open round (rejected, to the
// leader only).
func TestTimerContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	bob := e.join(c.Room, "bob")
	base := "/api/rooms/" + c.Room
	ls := e.stream(c.Room, c.Token, "")
	ls.expect("snapshot")
	s := e.stream(c.Room, bob.Token, "")
	s.expect("snapshot")

	// No open round: refused to the leader alone.
	e.accept("POST", base+"/session/timer", c.Token, `{"seconds":30}`)
	if ev := ls.expect("rejected"); !strings.Contains(ev.Data, `"error":"not_voting"`) {
		t.Fatalf("rejected %s", ev.Data)
	}
	s.quiet(100 * time.Millisecond)

	e.accept("POST", base+"/session", c.Token, `{"story":"A"}`)
	s.expect("session_started")
	s.expect("round_started")
	for _, tc := range []struct{ what, body string }{
		{"too short", `{"seconds":4}`}, {"too long", `{"seconds":3601}`}, {"negative", `{"seconds":-5}`},
		{"not a number", `{"seconds":"30"}`}, {"unknown field", `{"secs":30}`}, {"not JSON", `{`},
	} {
		expectError(t, tc.what, e.do("POST", base+"/session/timer", c.Token, tc.body), 400, "invalid_body")
	}
	expectError(t, "non-leader", e.do("POST", base+"/session/timer", bob.Token, `{"seconds":30}`), 403, "forbidden")
	expectError(t, "no token", e.do("POST", base+"/session/timer", "", `{"seconds":30}`), 401, "unauthorized")
	expectError(t, "unknown room", e.do("POST", "/api/rooms/aaaaaaaaaaaaaaaaaaaaaaaaaa/session/timer", c.Token, `{"seconds":30}`), 404, "room_not_found")

	// Start a long countdown, look at it, stop it.
	before := time.Now()
	e.accept("POST", base+"/session/timer", c.Token, `{"seconds":600}`)
	var te struct {
		Round   int        `json:"round"`
		EndsAt  *time.Time `json:"endsAt"`
		Seconds int        `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(s.expect("timer_set").Data), &te); err != nil || te.Round != 1 || te.Seconds != 600 || te.EndsAt == nil ||
		te.EndsAt.Before(before.Add(599*time.Second)) || te.EndsAt.After(time.Now().Add(601*time.Second)) {
		t.Fatalf("timer_set %+v (%v)", te, err)
	}
	var v struct {
		Session struct {
			Deadline    *time.Time `json:"deadline"`
			RemainingMs *int64     `json:"remainingMs"`
		} `json:"session"`
	}
	e.do("GET", base, bob.Token, nil).json(t, &v)
	if v.Session.Deadline == nil || !v.Session.Deadline.Equal(*te.EndsAt) || v.Session.RemainingMs == nil ||
		*v.Session.RemainingMs <= 0 || *v.Session.RemainingMs > 600_000 {
		t.Fatalf("view of a countdown: %+v", v.Session)
	}
	e.accept("POST", base+"/session/timer", c.Token, `{"seconds":0}`)
	if ev := s.expect("timer_set"); ev.Data != `{"round":1,"endsAt":null,"seconds":0}` {
		t.Fatalf("timer stopped: %s", ev.Data)
	}
	if r := e.do("GET", base, "", nil); strings.Contains(string(r.Body), `"deadline"`) {
		t.Fatalf("a stopped countdown stays in the view: %s", r.Body)
	}

	// The shortest countdown reveals by itself when it ends.
	e.accept("POST", base+"/votes", bob.Token, `{"value":"8"}`)
	s.expect("vote_cast")
	e.accept("POST", base+"/session/timer", c.Token, `{"seconds":5}`)
	s.expect("timer_set")
	select {
	case ev, ok := <-s.events:
		if !ok || ev.Type != "session_finished" || !strings.Contains(ev.Data, `"reason":"timer"`) {
			t.Fatalf("after the countdown: %s %s (stream open: %v)", ev.Type, ev.Data, ok)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the countdown did not reveal")
	}
	// A timer on a finished round is refused like one without a round.
	e.accept("POST", base+"/session/timer", c.Token, `{"seconds":30}`)
	for {
		ev := ls.next()
		if ev.Type == "rejected" {
			break
		}
	}
}
