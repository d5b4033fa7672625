package poker_test

import (
	"context"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/poker"
)

// startRooms starts a runtime configured by cfg with the rooms service
// registered with opt; both close when t ends (the rooms first).
func startRooms(t *testing.T, cfg reactor.Config, opt poker.Options) *poker.Rooms {
	t.Helper()
	ctx := context.Background()
	rt, err := reactor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := poker.Register(rt, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	t.Cleanup(func() { rooms.Close() })
	return rooms
}
