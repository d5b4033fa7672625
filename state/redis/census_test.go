package redis_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/state/redis"
)

// TestCensus: Admit bounds the live children of a parent across stores
// (processes) under concurrency; a write keeps a child counted for the TTL
// after it (the script sets its expiry); an expired child leaves the
// count; Leave frees a slot.
func TestCensus(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	ctx := context.Background()
	ttl := 400 * time.Millisecond
	stores := []*redis.Store{
		redis.New(c, redis.Options{Prefix: p, TTL: ttl, Census: true}),
		redis.New(c, redis.Options{Prefix: p, TTL: ttl, Census: true}),
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := stores[i%2].Admit(ctx, "/rooms/r"+string(rune('a'+i)), 5)
			if err != nil {
				t.Error(err)
			}
			if ok {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 5 {
		t.Fatalf("admitted %d of 20 with a limit of 5", admitted.Load())
	}
	if n, err := stores[1].Live(ctx, "/rooms"); err != nil || n != 5 {
		t.Fatalf("live: %d %v", n, err)
	}
	// A written child stays counted past the admission's expiry while it is written.
	s := stores[0]
	if ok, err := s.Admit(ctx, "/other/x", 1); !ok || err != nil {
		t.Fatalf("admit /other/x: %v %v", ok, err)
	}
	var v uint64
	for range 4 {
		time.Sleep(ttl / 2)
		nv, err := s.CompareAndSwap(ctx, "/other/x", []byte(`{}`), v)
		if err != nil {
			t.Fatal(err)
		}
		v = nv
	}
	if ok, _ := s.Admit(ctx, "/other/y", 1); ok {
		t.Fatal("a second child admitted while the first is written within its TTL")
	}
	time.Sleep(ttl + 100*time.Millisecond) // /other/x expires
	if n, _ := s.Live(ctx, "/other"); n != 0 {
		t.Fatalf("live after expiry: %d", n)
	}
	if ok, _ := s.Admit(ctx, "/other/y", 1); !ok {
		t.Fatal("not admitted after the first child expired")
	}
	if err := s.Leave(ctx, "/other/y"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Admit(ctx, "/other/z", 1); !ok {
		t.Fatal("not admitted after Leave")
	}
	// Events writes count too.
	if _, err := s.CompareAndSwapEvents(ctx, "/ev/a", []byte(`{}`), 0, []reactor.StateEvent{{ID: 1, Data: []byte("e")}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Live(ctx, "/ev"); n != 1 {
		t.Fatalf("live after an events write: %d", n)
	}
	// Without a census: a clear error.
	if _, err := redis.New(c, redis.Options{Prefix: p}).Admit(ctx, "/rooms/q", 1); err == nil {
		t.Fatal("Admit without Options.Census succeeded")
	}
}
