package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/state/redis"
)

// TestIdempotencyKeyAcrossNodes: two runtimes on the real Redis. The
// answer to a keyed request is written with the state in the same script,
// so a retry through the other node gets the first answer and is not
// applied again, also from a node that never saw the key and after the
// first node is gone.
func TestIdempotencyKeyAcrossNodes(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	store := redis.New(c, redis.Options{Prefix: p})
	a := node(t, store, reactor.Config{})
	b := node(t, store, reactor.Config{})
	ctx := context.Background()
	kctx := reactor.WithIdempotencyKey(ctx, "client:once")
	if n, err := add.Call(kctx, a.Ref("/counters/k"), 3); err != nil || n != 3 {
		t.Fatalf("first add through a = %d, %v", n, err)
	}
	// The stored value holds the answer (documented layout: state and
	// answers in field d of one hash).
	if d := c.HGet(ctx, p+"/counters/k", "d").Val(); !strings.Contains(d, "client:once") {
		t.Fatalf("stored value %q does not hold the remembered answer", d)
	}
	if n, err := add.Call(ctx, b.Ref("/counters/k"), 1); err != nil || n != 4 {
		t.Fatalf("unkeyed add through b = %d, %v", n, err)
	}
	a.Close(ctx)
	if n, err := add.Call(kctx, b.Ref("/counters/k"), 3); err != nil || n != 3 {
		t.Fatalf("retry through b = %d, %v; want the first answer 3", n, err)
	}
	if _, err := add.Call(kctx, b.Ref("/counters/k"), 9); !errors.Is(err, reactor.ErrKeyReused) {
		t.Fatalf("key reused = %v, want ErrKeyReused", err)
	}
	fresh := node(t, store, reactor.Config{})
	if n, err := add.Call(kctx, fresh.Ref("/counters/k"), 3); err != nil || n != 3 {
		t.Fatalf("retry through a fresh node = %d, %v; want 3", n, err)
	}
	if n, err := get.Call(ctx, fresh.Ref("/counters/k"), struct{}{}); err != nil || n != 4 {
		t.Fatalf("N = %d, %v; want 4", n, err)
	}
}
