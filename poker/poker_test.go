package poker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/poker"
	"github.com/reactorgo/reactor/reactortest"
)

func f(v float64) *float64 { return &v }

func TestComputeStats(t *testing.T) {
	for _, tc := range []struct {
		votes     map[string]string
		avg, med  *float64
		consensus bool
	}{
		{map[string]string{}, nil, nil, false},
		{map[string]string{"a": "?"}, nil, nil, true},
		{map[string]string{"a": "5", "b": "5"}, f(5), f(5), true},
		{map[string]string{"a": "1", "b": "2", "c": "13"}, f(16.0 / 3), f(2), false},
		{map[string]string{"a": "1", "b": "2", "c": "3", "d": "?"}, f(2), f(2), false},
		{map[string]string{"a": "0.5", "b": "8", "c": "3", "d": "1"}, f(3.125), f(2), false},
		{map[string]string{"a": "XL", "b": "XL"}, nil, nil, true},
		{map[string]string{"a": "Inf", "b": "NaN", "c": "2"}, f(2), f(2), false},
	} {
		st := poker.ComputeStats(tc.votes)
		eq := func(a, b *float64) bool {
			return (a == nil) == (b == nil) && (a == nil || fmt.Sprintf("%.6f", *a) == fmt.Sprintf("%.6f", *b))
		}
		if !eq(st.Average, tc.avg) || !eq(st.Median, tc.med) || st.Consensus != tc.consensus || st.Votes != len(tc.votes) {
			b, _ := json.Marshal(st)
			t.Errorf("%v: got %s", tc.votes, b)
		}
	}
}

func TestNormalize(t *testing.T) {
	r := poker.CreateRequest{Title: "  Sprint  ", Leader: "  Ann   Lee ", Deck: []string{" S ", "M", "L"}}
	if err := r.Normalize(); err != nil {
		t.Fatal(err)
	}
	if r.Title != "Sprint" || r.Leader != "Ann Lee" || r.Capacity != poker.DefaultCapacity || strings.Join(r.Deck, ",") != "S,M,L" {
		t.Fatalf("normalized %+v", r)
	}
	var inv *poker.InvalidError
	bad := poker.CreateRequest{Title: "t", Leader: "a\x00b"}
	if err := bad.Normalize(); !errors.As(err, &inv) || inv.Field != "leader" {
		t.Fatalf("control char: %v", err)
	}
}

// FuzzRequests checks that the request decoders (JSON + Normalize) never
// panic and that whatever they accept satisfies the documented limits.
func FuzzRequests(f *testing.F) {
	f.Add([]byte(`{"title":"Sprint 42","leader":"ann","capacity":12,"deck":["1","2","3","5","8","13","?"]}`))
	f.Add([]byte(`{"title":" ","leader":"ann"}`))
	f.Add([]byte(`{"name":"bob","story":"x","value":"5"}`))
	f.Add([]byte(`{"deck":["\u0000","a"],"capacity":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c poker.CreateRequest
		if json.Unmarshal(data, &c) == nil && c.Normalize() == nil {
			if c.Capacity < poker.MinCapacity || c.Capacity > poker.MaxCapacity || len(c.Deck) < poker.MinDeck || len(c.Deck) > poker.MaxDeck {
				t.Fatalf("accepted %+v", c)
			}
			seen := map[string]bool{}
			for _, v := range c.Deck {
				if v == "" || utf8.RuneCountInString(v) > poker.MaxCardLen || seen[v] || strings.TrimSpace(v) != v {
					t.Fatalf("accepted deck %q", c.Deck)
				}
				seen[v] = true
			}
			checkText(t, c.Title, poker.MaxTitleLen)
			checkText(t, c.Leader, poker.MaxNameLen)
		}
		var j poker.JoinRequest
		if json.Unmarshal(data, &j) == nil && j.Normalize() == nil {
			checkText(t, j.Name, poker.MaxNameLen)
		}
		var s poker.StartRequest
		if json.Unmarshal(data, &s) == nil && s.Normalize() == nil {
			checkText(t, s.Story, poker.MaxStoryLen)
		}
		var v poker.VoteRequest
		if json.Unmarshal(data, &v) == nil && v.Normalize() == nil {
			checkText(t, v.Value, poker.MaxCardLen)
		}
	})
}

func checkText(t *testing.T, s string, max int) {
	t.Helper()
	if s == "" || strings.TrimSpace(s) != s || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		t.Fatalf("accepted text %q", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("accepted control character in %q", s)
		}
	}
}

func TestTokensAndIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok := poker.NewToken()
		if len(tok) < 32 || seen[tok] {
			t.Fatalf("weak or repeated token %q", tok)
		}
		seen[tok] = true
	}
	id := poker.NewID(16)
	if !poker.ValidID(id) || poker.ValidID(id+"a") || poker.ValidID(strings.ToUpper(id)) {
		t.Fatalf("ValidID(%q)", id)
	}
}

func TestRoomStateHoldsNoToken(t *testing.T) {
	store := newStore()
	rt, err := reactor.New(reactor.Config{Store: store, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := poker.Register(rt, poker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := rooms.Create(ctx, poker.CreateRequest{Title: "t", Leader: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := rooms.Join(ctx, c.Room, poker.JoinRequest{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	rooms.Close()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Load(ctx, poker.Address+"/"+c.Room)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{c.Token, j.Token} {
		if strings.Contains(string(cp.Data), tok) {
			t.Fatal("checkpoint contains a token")
		}
	}
	if !strings.Contains(string(cp.Data), "bob") {
		t.Fatalf("checkpoint lacks the member: %s", cp.Data)
	}
}
