package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker-load/load"
	"github.com/reactorgo/reactor/cmd/poker/server"
)

// TestSmallLoadLosesNoEvents runs the load generator's engine against the
// server: every member of every room must see every event of every round.
func TestSmallLoadLosesNoEvents(t *testing.T) {
	e := newEnv(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := load.Run(ctx, load.Config{URL: e.url, Rooms: 20, Members: 5, Rounds: 2, Concurrency: 16, EventTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.Print(&b)
	t.Log("\n" + b.String())
	if res.Lost != 0 || res.Errors != 0 {
		t.Fatalf("lost %d events, %d errors", res.Lost, res.Errors)
	}
	if want := 20 * 5 * 5 * 2; len(res.VoteCast) != want {
		t.Fatalf("%d vote_cast deliveries measured, want %d", len(res.VoteCast), want)
	}
	if want := 20 * 5 * 2; len(res.Finished) != want {
		t.Fatalf("%d session_finished deliveries measured, want %d", len(res.Finished), want)
	}
}
