package poker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/poker"
)

// TestRepliesDoNotAliasState: what a room hands out — the history, the
// view, the webhook payload — is a copy: a caller writing into the maps
// and slices it got back changes nothing the room holds (replies, events
// and payloads are read on other goroutines while the room's next turn
// writes to its state).
func TestRepliesDoNotAliasState(t *testing.T) {
	ctx := context.Background()
	var hooked []poker.Finished
	rooms := startRooms(t, reactor.Config{}, poker.Options{OnFinished: func(c *reactor.Ctx, f poker.Finished) error {
		hooked = append(hooked, f) // one room, one turn at a time
		return nil
	}})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ann, err := rooms.Create(ctx, poker.CreateRequest{Title: "T", Leader: "ann", Webhook: "https://example.com/h"})
	must(err)
	bob, err := rooms.Join(ctx, ann.Room, poker.JoinRequest{Name: "bob"})
	must(err)
	must(rooms.Start(ctx, ann.Room, ann.Token, poker.StartRequest{Story: "Login"}))
	must(rooms.Vote(ctx, ann.Room, ann.Token, poker.VoteRequest{Value: "3"}))
	must(rooms.Vote(ctx, ann.Room, bob.Token, poker.VoteRequest{Value: "8"}))
	must(rooms.Finish(ctx, ann.Room, ann.Token))

	encode := func() string {
		h, err := rooms.History(ctx, ann.Room, ann.Token)
		must(err)
		v, err := rooms.State(ctx, ann.Room, ann.Token)
		must(err)
		b, _ := json.Marshal([]any{h, v})
		return string(b)
	}
	before := encode()

	h, err := rooms.History(ctx, ann.Room, ann.Token)
	must(err)
	r := &h[0]
	r.Votes[ann.Member] = "X"
	r.Names[bob.Member] = "mallory"
	r.Stats.Distribution[0].Count = 99
	r.Stats.MostCommon[0] = "X"
	r.Stats.Lowest[0] = "X"
	r.Stats.Highest[0] = "X"
	*r.Stats.Average, *r.Stats.Median, *r.Stats.Agreement = -1, -1, -1
	v, err := rooms.State(ctx, ann.Room, ann.Token)
	must(err)
	v.Deck[0] = "X"
	v.Session.Votes[bob.Member] = "X"
	v.Session.Stats.Distribution[0].Count = 99
	if len(hooked) != 1 {
		t.Fatalf("webhook payloads: %d", len(hooked))
	}
	p := hooked[0].Payload
	p.Votes[ann.Member] = "X"
	p.Stats.Distribution[0].Count = 99
	p.Stats.MostCommon[0] = "X"
	*p.Stats.Average = -1

	if after := encode(); after != before {
		t.Fatalf("the room's state changed through a reply:\nbefore %s\nafter  %s", before, after)
	}
}
