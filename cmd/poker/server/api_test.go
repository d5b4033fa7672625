package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

func TestCreateRoomContract(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", map[string]any{"capacity": 12, "deck": []string{"1", "2", "3", "5", "8", "13", "?"}})
	if len(c.Room) != 26 || c.Member == "" || len(c.Token) < 26 {
		t.Fatalf("credentials %+v", c)
	}
	r := e.do("GET", "/api/rooms/"+c.Room, c.Token, nil)
	if r.Status != 200 {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	var v struct {
		Room     string   `json:"room"`
		Title    string   `json:"title"`
		Capacity int      `json:"capacity"`
		Deck     []string `json:"deck"`
		Leader   string   `json:"leader"`
		Members  []struct {
			Member, Name string
			Voted        bool
		} `json:"members"`
		Session *json.RawMessage `json:"session"`
	}
	r.json(t, &v)
	if v.Room != c.Room || v.Title != "Sprint 42" || v.Capacity != 12 || len(v.Deck) != 7 || v.Leader != c.Member ||
		len(v.Members) != 1 || v.Members[0].Name != "ann" || v.Session != nil {
		t.Fatalf("state %s", r.Body)
	}
	if !strings.Contains(string(r.Body), `"session":null`) {
		t.Errorf("session must be null before a session: %s", r.Body)
	}

	// Defaults.
	d := e.create("bo", nil)
	r = e.do("GET", "/api/rooms/"+d.Room, "", nil)
	r.json(t, &v)
	if v.Capacity != 20 || strings.Join(v.Deck, " ") != "0 1 2 3 5 8 13 21 ?" {
		t.Fatalf("defaults: %s", r.Body)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t, server.Config{})
	long := strings.Repeat("x", 17<<10)
	deck21 := make([]string, 21)
	for i := range deck21 {
		deck21[i] = strconv.Itoa(i)
	}
	cases := []struct {
		name, ct, body string
		status         int
		code, field    string
	}{
		{"no content type", "", `{"title":"t","leader":"a"}`, 415, "unsupported_media_type", ""},
		{"text/plain", "text/plain", `{"title":"t","leader":"a"}`, 415, "unsupported_media_type", ""},
		{"too large", "application/json", `{"title":"` + long + `","leader":"a"}`, 413, "body_too_large", ""},
		{"malformed", "application/json", `{"title":`, 400, "invalid_body", ""},
		{"unknown field", "application/json", `{"title":"t","leader":"a","x":1}`, 400, "invalid_body", "x"},
		{"wrong type", "application/json", `{"title":"t","leader":"a","capacity":"3"}`, 400, "invalid_body", "capacity"},
		{"no title", "application/json", `{"leader":"a"}`, 400, "invalid_body", "title"},
		{"blank leader", "application/json", `{"title":"t","leader":"   "}`, 400, "invalid_body", "leader"},
		{"capacity 1", "application/json", `{"title":"t","leader":"a","capacity":1}`, 400, "invalid_body", "capacity"},
		{"capacity 101", "application/json", `{"title":"t","leader":"a","capacity":101}`, 400, "invalid_body", "capacity"},
		{"deck 1", "application/json", `{"title":"t","leader":"a","deck":["1"]}`, 400, "invalid_body", "deck"},
		{"deck 21", "application/json", `{"title":"t","leader":"a","deck":` + mustJSON(deck21) + `}`, 400, "invalid_body", "deck"},
		{"card 9 chars", "application/json", `{"title":"t","leader":"a","deck":["1","123456789"]}`, 400, "invalid_body", "deck"},
		{"duplicate card", "application/json", `{"title":"t","leader":"a","deck":["1","1"]}`, 400, "invalid_body", "deck"},
		{"two values", "application/json", `{"title":"t","leader":"a"}{}`, 400, "invalid_body", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url+"/api/rooms", strings.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var b struct{ Error, Message, Field string }
			if err := json.NewDecoder(res.Body).Decode(&b); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status || b.Error != tc.code || b.Field != tc.field || b.Message == "" {
				t.Fatalf("got %d %+v, want %d %s field %q", res.StatusCode, b, tc.status, tc.code, tc.field)
			}
		})
	}
	c := e.create("ann", nil)
	if r := e.do("POST", "/api/rooms/"+c.Room+"/members", "", `{"name":""}`); r.Status != 400 || r.code(t) != "invalid_body" {
		t.Fatalf("empty name: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/api/rooms/"+c.Room+"/session", c.Token, `{"story":" "}`); r.Status != 400 {
		t.Fatalf("empty story: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/api/rooms/"+c.Room+"/votes", c.Token, `{"value":"123456789"}`); r.Status != 400 {
		t.Fatalf("long value: %d %s", r.Status, r.Body)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestJoinErrors(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("Ann", map[string]any{"capacity": 3})
	for _, name := range []string{"ann", " ANN ", "aNn"} {
		r := e.do("POST", "/api/rooms/"+c.Room+"/members", "", map[string]string{"name": name})
		if r.Status != 409 || r.code(t) != "name_taken" {
			t.Fatalf("join %q: %d %s", name, r.Status, r.Body)
		}
	}
	e.join(c.Room, "bob")
	e.join(c.Room, "cid")
	r := e.do("POST", "/api/rooms/"+c.Room+"/members", "", map[string]string{"name": "dan"})
	if r.Status != 409 || r.code(t) != "room_full" {
		t.Fatalf("full: %d %s", r.Status, r.Body)
	}
	for _, room := range []string{"aaaaaaaaaaaaaaaaaaaaaaaaaa", "nope", strings.Repeat("z", 200)} {
		r = e.do("POST", "/api/rooms/"+room+"/members", "", map[string]string{"name": "dan"})
		if r.Status != 404 || r.code(t) != "room_not_found" {
			t.Fatalf("unknown room %s: %d %s", room, r.Status, r.Body)
		}
		if r = e.do("GET", "/api/rooms/"+room, "", nil); r.Status != 404 || r.code(t) != "room_not_found" {
			t.Fatalf("get unknown room: %d %s", r.Status, r.Body)
		}
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	bob := e.join(c.Room, "bob")
	cid := e.join(c.Room, "cid")
	base := "/api/rooms/" + c.Room
	for _, tc := range []struct {
		method, path, token string
		body                any
		status              int
		code                string
	}{
		{"POST", "/session", "", `{"story":"s"}`, 401, "unauthorized"},
		{"POST", "/session", "bogus", `{"story":"s"}`, 401, "unauthorized"},
		{"POST", "/session", bob.Token, `{"story":"s"}`, 403, "forbidden"},
		{"POST", "/session/finish", "", nil, 401, "unauthorized"},
		{"POST", "/session/finish", bob.Token, nil, 403, "forbidden"},
		{"POST", "/votes", "", `{"value":"5"}`, 401, "unauthorized"},
		{"POST", "/votes", c.Token + "x", `{"value":"5"}`, 401, "unauthorized"},
		{"DELETE", "/members/" + cid.Member, "", nil, 401, "unauthorized"},
		{"DELETE", "/members/" + cid.Member, bob.Token, nil, 403, "forbidden"},
		{"DELETE", "/members/nosuchmember", c.Token, nil, 404, "member_not_found"},
		{"GET", "", "bogus", nil, 401, "unauthorized"},
		{"GET", "/events", "", nil, 401, "unauthorized"},
		{"GET", "/events?token=bogus", "", nil, 401, "unauthorized"},
		{"GET", "/events?member=" + cid.Member, bob.Token, nil, 403, "forbidden"},
	} {
		r := e.do(tc.method, base+tc.path, tc.token, tc.body)
		if r.Status != tc.status || r.code(t) != tc.code {
			t.Errorf("%s %s (token %t): %d %s, want %d %s", tc.method, tc.path, tc.token != "", r.Status, r.Body, tc.status, tc.code)
		}
	}
	// A removed member's token stops working.
	e.accept("DELETE", base+"/members/"+cid.Member, c.Token, nil)
	if r := e.do("POST", base+"/votes", cid.Token, `{"value":"5"}`); r.Status != 401 {
		t.Fatalf("removed member votes: %d %s", r.Status, r.Body)
	}
	// A member may leave on their own.
	e.accept("DELETE", base+"/members/"+bob.Member, bob.Token, nil)
}

func TestFullRoundAndEvents(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	base := "/api/rooms/" + c.Room
	ann := e.stream(c.Room, c.Token, "")
	snap := ann.expect("snapshot")
	if snap.ID != "1" {
		t.Fatalf("snapshot id %s, want 1 (after member_joined of the leader)", snap.ID)
	}
	bob := e.join(c.Room, "bob")
	if ev := ann.expect("member_joined"); !strings.Contains(ev.Data, `"name":"bob"`) || ev.ID != "2" {
		t.Fatalf("member_joined %+v", ev)
	}
	bs := e.stream(c.Room, bob.Token, "")
	bs.expect("snapshot")

	// A vote with no session is accepted and rejected to bob only.
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	if ev := bs.expect("rejected"); !strings.Contains(ev.Data, `"error":"not_voting"`) {
		t.Fatalf("rejected %+v", ev)
	}
	e.accept("POST", base+"/session", c.Token, `{"story":"Login page"}`)
	for _, s := range []*stream{ann, bs} {
		if ev := s.expect("session_started"); ev.Data != `{"story":"Login page"}` {
			t.Fatalf("session_started %+v", ev)
		}
		s.expect("round_started") // every session_started is followed by it
	}
	e.accept("POST", base+"/votes", bob.Token, `{"value":"7"}`) // not in the deck
	if ev := bs.expect("rejected"); !strings.Contains(ev.Data, `"error":"invalid_vote"`) {
		t.Fatalf("rejected %+v", ev)
	}
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	e.accept("POST", base+"/votes", bob.Token, `{"value":"8"}`) // changed
	e.accept("POST", base+"/votes", c.Token, `{"value":"3"}`)
	for _, s := range []*stream{ann, bs} {
		for i := 0; i < 3; i++ {
			ev := s.expect("vote_cast")
			if strings.Contains(ev.Data, "value") || strings.Contains(ev.Data, `"8"`) {
				t.Fatalf("vote_cast leaks the value: %s", ev.Data)
			}
		}
	}
	ann.quiet(100 * time.Millisecond) // bob's rejections never reached ann

	// Values stay hidden while voting, except one's own.
	r := e.do("GET", base, bob.Token, nil)
	if strings.Contains(string(r.Body), `"votes"`) || !strings.Contains(string(r.Body), `"myVote":"8"`) {
		t.Fatalf("state while voting: %s", r.Body)
	}
	e.accept("POST", base+"/session/finish", c.Token, nil)
	for _, s := range []*stream{ann, bs} {
		ev := s.expect("session_finished")
		var d struct {
			Story string            `json:"story"`
			Votes map[string]string `json:"votes"`
			Stats struct {
				Average, Median *float64
				Consensus       bool
			} `json:"stats"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		if d.Story != "Login page" || d.Votes[bob.Member] != "8" || d.Votes[c.Member] != "3" ||
			*d.Stats.Average != 5.5 || *d.Stats.Median != 5.5 || d.Stats.Consensus {
			t.Fatalf("session_finished %s", ev.Data)
		}
	}
	// After finishing, a vote is rejected and a finish is rejected.
	e.accept("POST", base+"/votes", bob.Token, `{"value":"5"}`)
	bs.expect("rejected")
	r = e.do("GET", base, "", nil)
	if !strings.Contains(string(r.Body), `"status":"finished"`) || !strings.Contains(string(r.Body), `"votes":{`) {
		t.Fatalf("state after finish: %s", r.Body)
	}
	// A new session replaces the finished one.
	e.accept("POST", base+"/session", c.Token, `{"story":"Next"}`)
	ann.expect("session_started")
	ann.expect("round_started")
	r = e.do("GET", base, bob.Token, nil)
	if !strings.Contains(string(r.Body), `"myVote":null`) || !strings.Contains(string(r.Body), `"voted":false`) {
		t.Fatalf("state after restart: %s", r.Body)
	}

	// Leaving: everyone sees member_left; the leaver's stream ends.
	e.accept("DELETE", base+"/members/"+bob.Member, bob.Token, nil)
	ann.expect("member_left")
	bs.expect("session_started")
	bs.expect("round_started")
	bs.expect("member_left")
	if !bs.ended() {
		t.Fatal("a removed member's stream stays open")
	}
	// The leader leaving hands the room to the next member.
	cid := e.join(c.Room, "cid")
	ann.expect("member_joined")
	e.accept("DELETE", base+"/members/"+c.Member, c.Token, nil)
	ann.expect("member_left")
	r = e.do("GET", base, cid.Token, nil)
	if !strings.Contains(string(r.Body), `"leader":"`+cid.Member+`"`) {
		t.Fatalf("leader after the leader left: %s", r.Body)
	}
}

func TestResumeWithLastEventID(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", nil)
	base := "/api/rooms/" + c.Room
	s := e.stream(c.Room, c.Token, "")
	s.expect("snapshot")
	bob := e.join(c.Room, "bob")
	ev := s.expect("member_joined")
	s.close()
	e.accept("POST", base+"/session", c.Token, `{"story":"A"}`)
	e.accept("POST", base+"/votes", bob.Token, `{"value":"1"}`)
	e.accept("POST", base+"/votes", bob.Token, `{"value":"zz"}`) // rejected, for bob only
	e.accept("POST", base+"/votes", c.Token, `{"value":"2"}`)
	s2 := e.stream(c.Room, c.Token, ev.ID)
	last, _ := strconv.Atoi(ev.ID)
	for _, typ := range []string{"session_started", "round_started", "vote_cast", "vote_cast"} {
		got := s2.expect(typ)
		id, _ := strconv.Atoi(got.ID)
		if id <= last {
			t.Fatalf("ids not increasing: %d after %d", id, last)
		}
		last = id
	}
	s2.quiet(100 * time.Millisecond)
	// Bob resuming from before his rejection sees it.
	s3 := e.stream(c.Room, bob.Token, ev.ID)
	for _, typ := range []string{"session_started", "round_started", "vote_cast", "rejected", "vote_cast"} {
		s3.expect(typ)
	}
	// An id from the future (e.g. another server's) gets a fresh snapshot.
	s4 := e.stream(c.Room, c.Token, "999999")
	s4.expect("snapshot")
}

func TestConcurrentJoinsOneName(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", map[string]any{"capacity": 100})
	const n = 24
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"Zoe", "zoe", " ZOE", "zOe "}[i%4]
			codes[i] = e.do("POST", "/api/rooms/"+c.Room+"/members", "", map[string]string{"name": name}).Status
		}()
	}
	wg.Wait()
	created := 0
	for _, code := range codes {
		switch code {
		case 201:
			created++
		case 409:
		default:
			t.Fatalf("unexpected status %d", code)
		}
	}
	if created != 1 {
		t.Fatalf("%d joins with one name succeeded, want exactly 1", created)
	}
}

func TestCapacityUnderConcurrency(t *testing.T) {
	e := newEnv(t, server.Config{})
	c := e.create("ann", map[string]any{"capacity": 5})
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.do("POST", "/api/rooms/"+c.Room+"/members", "", map[string]string{"name": fmt.Sprint("m", i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == 201:
				created++
			case r.Status == 409 && strings.Contains(string(r.Body), "room_full"):
			default:
				t.Errorf("join: %d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if created != 4 {
		t.Fatalf("%d joined a room of 5 with a leader, want 4", created)
	}
}

func TestIdleRoomCloses(t *testing.T) {
	e := newEnv(t, server.Config{RoomTTL: 300 * time.Millisecond})
	c := e.create("ann", nil)
	s := e.stream(c.Room, c.Token, "")
	s.expect("snapshot")
	ev := s.expect("room_closed")
	if !strings.Contains(ev.Data, `"reason":"idle"`) {
		t.Fatalf("room_closed %+v", ev)
	}
	if !s.ended() {
		t.Fatal("stream of a closed room stays open")
	}
	for _, r := range []resp{
		e.do("GET", "/api/rooms/"+c.Room, c.Token, nil),
		e.do("POST", "/api/rooms/"+c.Room+"/members", "", `{"name":"bob"}`),
		e.do("POST", "/api/rooms/"+c.Room+"/votes", c.Token, `{"value":"1"}`),
		e.do("GET", "/api/rooms/"+c.Room+"/events?token="+c.Token, "", nil),
	} {
		if r.Status != 404 || r.code(t) != "room_not_found" {
			t.Fatalf("closed room: %d %s", r.Status, r.Body)
		}
	}
}

func TestActivityKeepsRoomOpen(t *testing.T) {
	e := newEnv(t, server.Config{RoomTTL: 400 * time.Millisecond})
	c := e.create("ann", nil)
	for range 4 {
		time.Sleep(150 * time.Millisecond)
		e.accept("POST", "/api/rooms/"+c.Room+"/session", c.Token, `{"story":"s"}`)
	}
	if r := e.do("GET", "/api/rooms/"+c.Room, "", nil); r.Status != 200 {
		t.Fatalf("active room closed: %d %s", r.Status, r.Body)
	}
}

func TestUIAndOps(t *testing.T) {
	e := newEnv(t, server.Config{})
	for _, p := range []string{"/", "/r/abc", "/app.js", "/app.css", "/favicon.svg", "/status"} {
		r := e.do("GET", p, "", nil)
		if r.Status != 200 {
			t.Fatalf("%s: %d", p, r.Status)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers missing: %v", p, r.Header)
		}
	}
	if r := e.do("GET", "/", "", nil); !strings.Contains(string(r.Body), "app.js") {
		t.Fatal("index does not load app.js")
	}
	if r := e.do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz %d", r.Status)
	}
	e.create("ann", nil)
	r := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`reactor_service_handled_total{service="/rooms"}`, "reactor_journal_fsyncs_total", "reactor_children_resident",
		"poker_rooms_created_total 1", "process_resident_memory_bytes", `poker_http_requests_total{code="201",route="POST /api/rooms"} 1`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if r := e.do("GET", "/status", "", nil); !strings.Contains(string(r.Body), "/rooms") || !strings.Contains(string(r.Body), "group commits") {
		t.Errorf("status page: %s", r.Body)
	}
	if r := e.do("GET", "/api/nothing", "", nil); r.Status != 404 {
		t.Errorf("unknown api: %d", r.Status)
	}
}
