package poker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// TestCountdown: a countdown set by the leader reveals the round when it
// ends — also when the process stopped meanwhile: the deadline is in the
// room's durable state and the restarted room arms it again.
func TestCountdown(t *testing.T) {
	ctx := context.Background()
	store, dir := checkpoint.NewMemStore(), t.TempDir()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	open := func() (*reactor.Runtime, *poker.Rooms, *journal.Journal) {
		j, err := journal.Open(ctx, journal.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := reactor.New(reactor.Config{Store: store, Journal: j, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		rooms, err := poker.Register(rt, poker.Options{Extra: []reactor.Option{reactor.Journaled()}})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return rt, rooms, j
	}
	rt, rooms, j := open()
	c, err := rooms.Create(ctx, poker.CreateRequest{Title: "t", Leader: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rooms.Start(ctx, c.Room, c.Token, poker.StartRequest{Story: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := rooms.Vote(ctx, c.Room, c.Token, poker.VoteRequest{Value: "3"}); err != nil {
		t.Fatal(err)
	}
	if err := rooms.Timer(ctx, c.Room, c.Token, poker.TimerRequest{Seconds: 60}); err != nil {
		t.Fatal(err)
	}
	v, err := rooms.State(ctx, c.Room, c.Token)
	if err != nil {
		t.Fatal(err)
	}
	if v.Session.Deadline == nil || *v.Session.RemainingMs != 60_000 || v.Session.Status != poker.StatusVoting {
		t.Fatalf("after the timer: %+v", v.Session)
	}
	rooms.Close()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	j.Close()

	now.Add(int64(61 * time.Second)) // the countdown ended while the server was down
	rt, rooms, j = open()
	defer j.Close()
	defer rt.Close(ctx)
	defer rooms.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err = rooms.State(ctx, c.Room, c.Token)
		if err != nil {
			t.Fatal(err)
		}
		if v.Session.Status == poker.StatusFinished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not revealed after the countdown: %+v", v.Session)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h, err := rooms.History(ctx, c.Room, c.Token)
	if err != nil || len(h) != 1 || h[0].Votes[c.Member] != "3" || v.Session.Deadline != nil {
		t.Fatalf("history %+v, %v; session %+v", h, err, v.Session)
	}
}
