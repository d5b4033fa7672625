package server_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/poker"
)

type roomView struct {
	Leader  string `json:"leader"`
	Members []struct {
		Member string `json:"member"`
		Name   string `json:"name"`
		Role   string `json:"role"`
		Voted  bool   `json:"voted"`
	} `json:"members"`
	Session *struct {
		Round    int               `json:"round"`
		Story    string            `json:"story"`
		Status   string            `json:"status"`
		Votes    map[string]string `json:"votes"`
		Estimate *string           `json:"estimate"`
	} `json:"session"`
	Queue  []string `json:"queue"`
	Rounds int      `json:"rounds"`
}

func (e *env) view(room, token string) roomView {
	e.t.Helper()
	r := e.do("GET", "/api/rooms/"+room, token, nil)
	if r.Status != 200 {
		e.t.Fatalf("get room: %d %s", r.Status, r.Body)
	}
	var v roomView
	r.json(e.t, &v)
	return v
}

func (v roomView) role(member string) string {
	for _, m := range v.Members {
		if m.Member == member {
			return m.Role
		}
	}
	return ""
}

func (e *env) joinAs(room, name, role string) creds {
	e.t.Helper()
	r := e.do("POST", "/api/rooms/"+room+"/members", "", map[string]string{"name": name, "role": role})
	if r.Status != 201 {
		e.t.Fatalf("join %s as %s: %d %s", name, role, r.Status, r.Body)
	}
	var c creds
	r.json(e.t, &c)
	c.Room = room
	return c
}

// expectError checks a refusal's status and code.
func expectError(t *testing.T, what string, r resp, status int, code string) {
	t.Helper()
	if r.Status != status || r.code(t) != code {
		t.Errorf("%s: %d %s, want %d %s", what, r.Status, r.Body, status, code)
	}
}

type historyRound struct {
	Round      int               `json:"round"`
	Story      string            `json:"story"`
	Votes      map[string]string `json:"votes"`
	Names      map[string]string `json:"names"`
	Stats      map[string]any    `json:"stats"`
	Estimate   *string           `json:"estimate"`
	FinishedAt time.Time         `json:"finishedAt"`
}

func (e *env) history(room, token string) []historyRound {
	e.t.Helper()
	r := e.do("GET", "/api/rooms/"+room+"/history", token, nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		e.t.Fatalf("history: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	var h struct {
		Rounds []historyRound `json:"rounds"`
	}
	r.json(e.t, &h)
	if h.Rounds == nil {
		e.t.Fatalf("history without a rounds list: %s", r.Body)
	}
	return h.Rounds
}

func TestObserverContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	base := "/api/rooms/" + c.Room
	s := e.stream(c.Room, c.Token, "")
	s.expect("snapshot")
	obs := e.joinAs(c.Room, "olga", "observer")
	if ev := s.expect("member_joined"); !strings.Contains(ev.Data, `"role":"observer"`) {
		t.Fatalf("member_joined %s", ev.Data)
	}
	bob := e.join(c.Room, "bob") // no role: a voter
	if ev := s.expect("member_joined"); !strings.Contains(ev.Data, `"role":"voter"`) {
		t.Fatalf("member_joined %s", ev.Data)
	}
	v := e.view(c.Room, "")
	if v.role(c.Member) != "voter" || v.role(obs.Member) != "observer" || v.role(bob.Member) != "voter" {
		t.Fatalf("roles in the view: %+v", v.Members)
	}
	expectError(t, "bad role", e.do("POST", base+"/members", "", `{"name":"x","role":"boss"}`), 400, "invalid_body")

	e.accept("POST", base+"/session", c.Token, `{"story":"A"}`)
	expectError(t, "observer votes", e.do("POST", base+"/votes", obs.Token, `{"value":"5"}`), 403, "forbidden")
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	e.accept("POST", base+"/session/finish", c.Token, nil)
	h := e.history(c.Room, obs.Token)
	if len(h) != 1 || h[0].Votes[bob.Member] != "5" || len(h[0].Votes) != 1 {
		t.Fatalf("history %+v", h)
	}
	if _, ok := h[0].Names[obs.Member]; ok {
		t.Errorf("an observer is named in the round: %+v", h[0].Names)
	}
	if h[0].Names[c.Member] != "ann" || h[0].Names[bob.Member] != "bob" {
		t.Errorf("names %+v", h[0].Names)
	}

	// Switching roles: oneself, or the leader for anyone.
	s2 := e.stream(c.Room, c.Token, "")
	s2.expect("snapshot")
	e.accept("POST", base+"/session", c.Token, `{"story":"B"}`)
	s2.expect("session_started")
	s2.expect("round_started")
	e.accept("POST", base+"/votes", bob.Token, `{"value":"8"}`)
	s2.expect("vote_cast")
	e.accept("POST", base+"/members/"+bob.Member+"/role", bob.Token, `{"role":"observer"}`)
	if ev := s2.expect("role_changed"); ev.Data != `{"member":"`+bob.Member+`","role":"observer"}` {
		t.Fatalf("role_changed %s", ev.Data)
	}
	if v := e.view(c.Room, bob.Token); v.Members[2].Voted || v.role(bob.Member) != "observer" {
		t.Fatalf("an observer's vote stays: %+v", v.Members)
	}
	expectError(t, "other's role", e.do("POST", base+"/members/"+obs.Member+"/role", bob.Token, `{"role":"voter"}`), 403, "forbidden")
	expectError(t, "no token", e.do("POST", base+"/members/"+obs.Member+"/role", "", `{"role":"voter"}`), 401, "unauthorized")
	expectError(t, "unknown member", e.do("POST", base+"/members/nobody/role", c.Token, `{"role":"voter"}`), 404, "member_not_found")
	expectError(t, "no role", e.do("POST", base+"/members/"+obs.Member+"/role", c.Token, `{}`), 400, "invalid_body")
	expectError(t, "bad role", e.do("POST", base+"/members/"+obs.Member+"/role", c.Token, `{"role":"leader"}`), 400, "invalid_body")
	e.accept("POST", base+"/members/"+obs.Member+"/role", c.Token, `{"role":"voter"}`)
	s2.expect("role_changed")
	e.accept("POST", base+"/votes", obs.Token, `{"value":"3"}`)
	s2.expect("vote_cast")

	// A leader who facilitates without voting.
	d := e.create("dora", map[string]any{"role": "observer"})
	if v := e.view(d.Room, ""); v.role(d.Member) != "observer" || v.Leader != d.Member {
		t.Fatalf("observer leader: %+v", v)
	}
	e.accept("POST", "/api/rooms/"+d.Room+"/session", d.Token, `{"story":"s"}`)
	expectError(t, "observer leader votes", e.do("POST", "/api/rooms/"+d.Room+"/votes", d.Token, `{"value":"1"}`), 403, "forbidden")
}

func TestEstimateAndHistoryContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	bob := e.join(c.Room, "bob")
	base := "/api/rooms/" + c.Room
	s := e.stream(c.Room, bob.Token, "")
	s.expect("snapshot")

	if h := e.history(c.Room, bob.Token); len(h) != 0 {
		t.Fatalf("history of a new room: %+v", h)
	}
	expectError(t, "estimate before a round", e.do("POST", base+"/estimate", c.Token, `{"value":"5"}`), 409, "no_round")
	e.accept("POST", base+"/session", c.Token, `{"story":"=Login page"}`)
	s.expect("session_started")
	if ev := s.expect("round_started"); ev.Data != `{"round":1,"story":"=Login page","revote":false}` {
		t.Fatalf("round_started %s", ev.Data)
	}
	e.accept("POST", base+"/votes", bob.Token, `{"value":"8"}`)
	e.accept("POST", base+"/votes", c.Token, `{"value":"3"}`)
	e.accept("POST", base+"/session/finish", c.Token, nil)
	s.expect("vote_cast")
	s.expect("vote_cast")
	if ev := s.expect("session_finished"); !strings.Contains(ev.Data, `"round":1`) || !strings.Contains(ev.Data, `"finishedAt":"`) {
		t.Fatalf("session_finished %s", ev.Data)
	}

	// Authorisation and bad input.
	expectError(t, "non-leader estimate", e.do("POST", base+"/estimate", bob.Token, `{"value":"5"}`), 403, "forbidden")
	expectError(t, "no token", e.do("POST", base+"/estimate", "", `{"value":"5"}`), 401, "unauthorized")
	expectError(t, "bad token", e.do("POST", base+"/estimate", "nope", `{"value":"5"}`), 401, "unauthorized")
	expectError(t, "empty value", e.do("POST", base+"/estimate", c.Token, `{"value":""}`), 400, "invalid_body")
	expectError(t, "long value", e.do("POST", base+"/estimate", c.Token, `{"value":"123456789"}`), 400, "invalid_body")
	expectError(t, "unknown field", e.do("POST", base+"/estimate", c.Token, `{"estimate":"5"}`), 400, "invalid_body")
	expectError(t, "unknown room", e.do("POST", "/api/rooms/aaaaaaaaaaaaaaaaaaaaaaaaaa/estimate", c.Token, `{"value":"5"}`), 404, "room_not_found")

	if r := e.do("POST", base+"/estimate", c.Token, `{"value":"5"}`); r.Status != 202 {
		t.Fatalf("estimate: %d %s", r.Status, r.Body)
	}
	if ev := s.expect("estimate_recorded"); ev.Data != `{"round":1,"story":"=Login page","estimate":"5"}` {
		t.Fatalf("estimate_recorded %s", ev.Data)
	}
	if v := e.view(c.Room, ""); v.Session == nil || v.Session.Estimate == nil || *v.Session.Estimate != "5" || v.Rounds != 1 {
		t.Fatalf("view after the estimate: %+v", v.Session)
	}

	// A re-vote: a new round of the same story; the first stays in the history.
	expectError(t, "non-leader re-vote", e.do("POST", base+"/session/revote", bob.Token, nil), 403, "forbidden")
	e.accept("POST", base+"/session/revote", c.Token, nil)
	s.expect("session_started")
	if ev := s.expect("round_started"); ev.Data != `{"round":2,"story":"=Login page","revote":true}` {
		t.Fatalf("round_started %s", ev.Data)
	}
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	e.accept("POST", base+"/session/finish", c.Token, nil) // ann did not vote this time
	e.accept("POST", base+"/estimate", c.Token, `{"value":"5"}`)

	h := e.history(c.Room, bob.Token)
	if len(h) != 2 || h[0].Round != 1 || h[1].Round != 2 || h[0].Story != "=Login page" || h[1].Story != h[0].Story {
		t.Fatalf("history %+v", h)
	}
	if h[0].Votes[bob.Member] != "8" || h[0].Votes[c.Member] != "3" || *h[0].Estimate != "5" ||
		h[0].Names[bob.Member] != "bob" || h[0].Stats["average"] != 5.5 || h[0].FinishedAt.IsZero() {
		t.Fatalf("first round %+v", h[0])
	}
	if len(h[1].Votes) != 1 || h[1].Names[c.Member] != "ann" || h[1].Stats["consensus"] != true {
		t.Fatalf("second round %+v", h[1])
	}
	r := e.do("GET", base+"/history", bob.Token, nil)
	if !strings.Contains(string(r.Body), `"estimate":"5"`) {
		t.Fatalf("history body %s", r.Body)
	}
	// An estimate is null until recorded.
	e.accept("POST", base+"/session/revote", c.Token, nil)
	e.accept("POST", base+"/session/finish", c.Token, nil)
	if r := e.do("GET", base+"/history", bob.Token, nil); !strings.Contains(string(r.Body), `"estimate":null`) {
		t.Fatalf("history body %s", r.Body)
	}

	// CSV.
	r = e.do("GET", base+"/history?format=csv", bob.Token, nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", r.Status, r.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
	if err != nil {
		t.Fatalf("csv %s: %v", r.Body, err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != "round,story,estimate,votes,average,median,consensus,finished_at" {
		t.Fatalf("csv rows %q", rows)
	}
	if got := strings.Join(rows[1], "|"); !strings.HasPrefix(got, "1|'=Login page|5|ann: 3; bob: 8|5.5|5.5|false|") {
		t.Fatalf("csv row 1 %q", got) // a formula-looking story is quoted
	}
	if got := strings.Join(rows[2][:7], "|"); got != "2|'=Login page|5|ann: -; bob: 5|5|5|true" {
		t.Fatalf("csv row 2 %q", got)
	}
	if rows[3][2] != "" {
		t.Fatalf("csv row 3 %q", rows[3])
	}
	if _, err := time.Parse(time.RFC3339, rows[1][7]); err != nil {
		t.Fatalf("finished_at %q: %v", rows[1][7], err)
	}

	// History authorisation and bad input.
	expectError(t, "history without token", e.do("GET", base+"/history", "", nil), 401, "unauthorized")
	expectError(t, "history with bad token", e.do("GET", base+"/history", "nope", nil), 401, "unauthorized")
	expectError(t, "csv without token", e.do("GET", base+"/history?format=csv", "", nil), 401, "unauthorized")
	expectError(t, "history bad format", e.do("GET", base+"/history?format=xml", bob.Token, nil), 400, "invalid_query")
	expectError(t, "history unknown room", e.do("GET", "/api/rooms/aaaaaaaaaaaaaaaaaaaaaaaaaa/history", bob.Token, nil), 404, "room_not_found")
	if r := e.do("POST", base+"/history", bob.Token, nil); r.Status != 405 {
		t.Errorf("POST history: %d", r.Status)
	}
}

func TestQueueContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	bob := e.join(c.Room, "bob")
	base := "/api/rooms/" + c.Room
	s := e.stream(c.Room, bob.Token, "")
	s.expect("snapshot")

	expectError(t, "next on an empty queue", e.do("POST", base+"/session/next", c.Token, nil), 409, "queue_empty")
	expectError(t, "non-leader re-vote", e.do("POST", base+"/session/revote", bob.Token, nil), 403, "forbidden")
	ls := e.stream(c.Room, c.Token, "")
	ls.expect("snapshot")
	e.accept("POST", base+"/session/revote", c.Token, nil) // nothing to re-vote: rejected, to the leader only
	if ev := ls.expect("rejected"); !strings.Contains(ev.Data, `"error":"not_voting"`) {
		t.Fatalf("rejected %s", ev.Data)
	}
	expectError(t, "non-leader queues", e.do("POST", base+"/queue", bob.Token, `{"stories":["a"]}`), 403, "forbidden")
	expectError(t, "non-leader replaces", e.do("PUT", base+"/queue", bob.Token, `{"stories":[]}`), 403, "forbidden")
	expectError(t, "non-leader next", e.do("POST", base+"/session/next", bob.Token, nil), 403, "forbidden")
	expectError(t, "no token", e.do("POST", base+"/queue", "", `{"stories":["a"]}`), 401, "unauthorized")
	expectError(t, "empty story", e.do("POST", base+"/queue", c.Token, `{"stories":["a"," "]}`), 400, "invalid_body")
	expectError(t, "not a list", e.do("POST", base+"/queue", c.Token, `{"stories":"a"}`), 400, "invalid_body")
	expectError(t, "long story", e.do("POST", base+"/queue", c.Token, map[string]any{"stories": []string{strings.Repeat("x", poker.MaxStoryLen+1)}}), 400, "invalid_body")

	e.accept("POST", base+"/queue", c.Token, `{"stories":["Login","Logout"]}`)
	if ev := s.expect("queue_changed"); ev.Data != `{"queue":["Login","Logout"]}` {
		t.Fatalf("queue_changed %s", ev.Data)
	}
	e.accept("POST", base+"/queue", c.Token, `{"stories":["Signup"]}`)
	s.expect("queue_changed")
	if v := e.view(c.Room, ""); strings.Join(v.Queue, ",") != "Login,Logout,Signup" {
		t.Fatalf("queue %q", v.Queue)
	}
	e.accept("PUT", base+"/queue", c.Token, `{"stories":["Signup","Login","Logout"]}`) // reordered
	s.expect("queue_changed")
	e.accept("POST", base+"/session/next", c.Token, nil)
	if ev := s.expect("queue_changed"); ev.Data != `{"queue":["Login","Logout"]}` {
		t.Fatalf("queue_changed %s", ev.Data)
	}
	if ev := s.expect("session_started"); ev.Data != `{"story":"Signup"}` {
		t.Fatalf("session_started %s", ev.Data)
	}
	if ev := s.expect("round_started"); ev.Data != `{"round":1,"story":"Signup","revote":false}` {
		t.Fatalf("round_started %s", ev.Data)
	}
	v := e.view(c.Room, "")
	if v.Session == nil || v.Session.Story != "Signup" || v.Session.Round != 1 || strings.Join(v.Queue, ",") != "Login,Logout" {
		t.Fatalf("view %+v", v)
	}

	// Bounded: MaxQueue stories.
	many := make([]string, poker.MaxQueue-1)
	for i := range many {
		many[i] = "story"
	}
	expectError(t, "queue full", e.do("POST", base+"/queue", c.Token, map[string]any{"stories": many}), 409, "queue_full")
	too := append(many, "a", "b")
	expectError(t, "too many at once", e.do("PUT", base+"/queue", c.Token, map[string]any{"stories": too}), 400, "invalid_body")
	e.accept("PUT", base+"/queue", c.Token, map[string]any{"stories": too[:poker.MaxQueue]})
	s.expect("queue_changed")
	e.accept("PUT", base+"/queue", c.Token, `{"stories":[]}`)
	if ev := s.expect("queue_changed"); ev.Data != `{"queue":[]}` {
		t.Fatalf("queue_changed %s", ev.Data)
	}
	if r := e.do("GET", base, "", nil); !strings.Contains(string(r.Body), `"queue":[]`) {
		t.Fatalf("an empty queue is not []: %s", r.Body)
	}
}

func TestLeaderHandOffContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	bob := e.join(c.Room, "bob")
	cid := e.join(c.Room, "cid")
	base := "/api/rooms/" + c.Room
	s := e.stream(c.Room, cid.Token, "")
	s.expect("snapshot")

	expectError(t, "non-leader hands over", e.do("POST", base+"/leader", bob.Token, map[string]string{"member": bob.Member}), 403, "forbidden")
	expectError(t, "no token", e.do("POST", base+"/leader", "", map[string]string{"member": bob.Member}), 401, "unauthorized")
	expectError(t, "unknown member", e.do("POST", base+"/leader", c.Token, map[string]string{"member": "nobody"}), 404, "member_not_found")
	expectError(t, "no member", e.do("POST", base+"/leader", c.Token, `{}`), 400, "invalid_body")
	e.accept("POST", base+"/leader", c.Token, map[string]string{"member": bob.Member})
	ev := s.expect("leader_changed")
	var d struct{ Leader, Previous, Reason string }
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.Leader != bob.Member || d.Previous != c.Member || d.Reason != "handed_over" {
		t.Fatalf("leader_changed %s", ev.Data)
	}
	if v := e.view(c.Room, ""); v.Leader != bob.Member {
		t.Fatalf("leader %s", v.Leader)
	}
	// The old leader lost the role, the new one has it.
	expectError(t, "old leader starts", e.do("POST", base+"/session", c.Token, `{"story":"s"}`), 403, "forbidden")
	e.accept("POST", base+"/session", bob.Token, `{"story":"s"}`)
	// The leader leaving hands the role on, saying so.
	e.accept("DELETE", base+"/members/"+bob.Member, bob.Token, nil)
	s.expect("session_started")
	s.expect("round_started")
	s.expect("member_left")
	ev = s.expect("leader_changed")
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil || d.Leader != c.Member || d.Reason != "left" {
		t.Fatalf("leader_changed %s", ev.Data)
	}
}

// TestTenStoryMeeting is the meeting the product is for: three people, ten
// queued stories, a re-vote where they disagree, an estimate recorded for
// each story, and a CSV of the estimates at the end.
func TestTenStoryMeeting(t *testing.T) {
	e := newEnv(t, server.Config{})
	ann := e.create("Ann", nil)
	bob, cid := e.join(ann.Room, "Bob"), e.join(ann.Room, "Cid")
	base := "/api/rooms/" + ann.Room
	stories := make([]string, 10)
	for i := range stories {
		stories[i] = fmt.Sprintf("Story %d", i+1)
	}
	e.accept("POST", base+"/queue", ann.Token, map[string]any{"stories": stories})
	deck := []string{"1", "2", "3", "5", "8", "13"}
	for i := range stories {
		e.accept("POST", base+"/session/next", ann.Token, nil)
		agreed := deck[i%len(deck)]
		if i%3 == 0 { // they disagree first, and vote again
			e.accept("POST", base+"/votes", bob.Token, map[string]string{"value": "13"})
			e.accept("POST", base+"/session/finish", ann.Token, nil)
			e.accept("POST", base+"/session/revote", ann.Token, nil)
		}
		for _, m := range []creds{ann, bob, cid} {
			e.accept("POST", base+"/votes", m.Token, map[string]string{"value": agreed})
		}
		e.accept("POST", base+"/session/finish", ann.Token, nil)
		e.accept("POST", base+"/estimate", ann.Token, map[string]string{"value": agreed})
	}
	expectError(t, "the queue is done", e.do("POST", base+"/session/next", ann.Token, nil), 409, "queue_empty")

	r := e.do("GET", base+"/history?format=csv", cid.Token, nil)
	rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
	if err != nil || r.Status != 200 {
		t.Fatalf("csv: %d %v %s", r.Status, err, r.Body)
	}
	if want := 1 + 10 + 4; len(rows) != want { // header, ten stories, four re-voted
		t.Fatalf("%d rows, want %d: %q", len(rows), want, rows)
	}
	final := map[string]string{} // story → estimate of its last round
	for _, row := range rows[1:] {
		if row[2] != "" {
			final[row[1]] = row[2]
		}
	}
	for i, s := range stories {
		if want := deck[i%len(deck)]; final[s] != want {
			t.Errorf("%s: estimate %q, want %q (rows %q)", s, final[s], want, rows)
		}
	}
	if got := rows[len(rows)-1][3]; got != "Ann: 5; Bob: 5; Cid: 5" {
		t.Errorf("votes of the last round: %q", got)
	}
}
