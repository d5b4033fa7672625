package reactor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
)

// TestDeliveryKeysHoldForTheWindow: a broker's message ids sent as
// delivery keys are all remembered for the window — a redelivery of the
// first of 3,000 is not applied again, before and after a restart — where
// client keys of one scope keep only the newest 64.
func TestDeliveryKeysHoldForTheWindow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*reactor.Runtime, func()) {
		rt, j := testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
			_, err := reactor.Register(rt, "/out", &relayOut{}, reactor.Journaled())
			return err
		})
		return rt, func() { rt.Close(ctx); j.Close() }
	}
	rt, closeAll := open()
	const n = 3000
	for i := range n {
		if err := relayOutAdd.Send(reactor.WithDeliveryKey(ctx, fmt.Sprintf("queue:m%d", i)), rt.Ref("/out"), 1); err != nil {
			t.Fatal(err)
		}
	}
	redeliver := func(what string) {
		t.Helper()
		if err := relayOutAdd.Send(reactor.WithDeliveryKey(ctx, "queue:m0"), rt.Ref("/out"), 1); err != nil {
			t.Fatal(err)
		}
		if got, err := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{}); got != n || err != nil {
			t.Fatalf("%s: %d applied (%v), want %d", what, got, err, n)
		}
	}
	redeliver("first message redelivered after 3,000")
	closeAll()
	rt, closeAll = open()
	defer closeAll()
	redeliver("after a restart")

	// The same with client keys forgets the oldest: the bound that keeps
	// one client from growing the table is what delivery keys skip.
	if err := relayOutAdd.Send(reactor.WithIdempotencyKey(ctx, "client:k0"), rt.Ref("/out"), 1); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		relayOutAdd.Send(reactor.WithIdempotencyKey(ctx, fmt.Sprintf("client:k%d", i)), rt.Ref("/out"), 1)
	}
	relayOutAdd.Send(reactor.WithIdempotencyKey(ctx, "client:k0"), rt.Ref("/out"), 1)
	if got, _ := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{}); got != n+102 {
		t.Fatalf("client keys: %d applied, want %d (k0 forgotten after 64 newer keys of its scope)", got, n+102)
	}
}
