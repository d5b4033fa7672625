package poker_test

import (
	"context"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/poker"
)

// The census admits rooms up to the limit, counts an address once however
// often it is admitted (a retried create), frees a slot on Leave, and
// keeps its count across a restart (journaled).
func TestCensusCountsEachRoomOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rt, j := testutil.OpenDurable(t, dir, reactor.Config{}, poker.RegisterCensus)
	census := poker.CensusOf(rt)
	admit := func(addr string, want bool) {
		t.Helper()
		if ok, err := census.Admit(ctx, addr, 2); err != nil || ok != want {
			t.Fatalf("admit %s: %v, %v; want %v", addr, ok, err, want)
		}
	}
	admit("/rooms/a", true)
	admit("/rooms/a", true) // the same room again: still one
	admit("/rooms/b", true)
	admit("/rooms/c", false)
	if err := census.Leave(ctx, "/rooms/a"); err != nil {
		t.Fatal(err)
	}
	admit("/rooms/c", true)
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	j.Close()

	rt, j = testutil.OpenDurable(t, dir, reactor.Config{}, poker.RegisterCensus)
	defer j.Close()
	defer rt.Close(ctx)
	census = poker.CensusOf(rt)
	admit("/rooms/d", false) // b and c are still counted
	admit("/rooms/b", true)
}
