package reactor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/reactorgo/reactor"
)

// TestIdempotencyKeysBoundedPerScope: one caller flooding keys ("scope:key")
// cannot grow a service's remembered answers past the per-scope bound, nor
// push another caller's answer out; the bound holds after a restart too.
func TestIdempotencyKeysBoundedPerScope(t *testing.T) {
	dir := t.TempDir()
	app, err := openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	keyed := func(k string) context.Context { return reactor.WithIdempotencyKey(context.Background(), k) }
	ref := app.rt.Ref("/total")
	if n, err := totalAdd.Call(keyed("ann:first"), ref, 1000); err != nil || n != 1000 {
		t.Fatalf("ann: %d %v", n, err)
	}
	const flood = 300
	for i := range flood {
		if _, err := totalAdd.Call(keyed(fmt.Sprintf("bob:%d", i)), ref, 1); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		// ann's answer is still remembered: the retry is not applied.
		if n, err := totalAdd.Call(keyed("ann:first"), ref, 1000); err != nil || n != 1000 {
			t.Fatalf("%s: ann's retry answered %d %v, want the first answer 1000", when, n, err)
		}
		// bob's newest is remembered, his oldest forgotten (applied again).
		before, _ := totalGet.Call(context.Background(), ref, struct{}{})
		if n, _ := totalAdd.Call(keyed(fmt.Sprintf("bob:%d", flood-1)), ref, 1); n != 1000+flood {
			t.Fatalf("%s: bob's newest retry answered %d, want %d", when, n, 1000+flood)
		}
		if after, _ := totalGet.Call(context.Background(), ref, struct{}{}); after != before {
			t.Fatalf("%s: bob's newest retry applied again", when)
		}
	}
	check("live")
	if n, _ := totalAdd.Call(keyed("bob:0"), ref, 1); n != 1000+flood+1 {
		t.Fatalf("bob's oldest key is still remembered (answer %d): the scope is not bounded", n)
	}
	app.close(t)
	app, err = openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer app.close(t)
	ref = app.rt.Ref("/total")
	check("after restart")
}
