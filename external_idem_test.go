package reactor_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/reactorgo/reactor"
)

// TestExternalIdempotencyKeyAcrossRuntimes: the answer to a keyed request
// is stored with the state, so a retry through another runtime (another
// node behind the load balancer) gets the first answer and is not applied
// again; the same key with another request is refused with ErrKeyReused.
func TestExternalIdempotencyKeyAcrossRuntimes(t *testing.T) {
	store := newTestStore()
	a := tallyRuntime(t, store, reactor.Config{})
	b := tallyRuntime(t, store, reactor.Config{})
	kctx := reactor.WithIdempotencyKey(context.Background(), "client:req-1")
	n, err := tallyAdd.Call(kctx, a.rt.Ref("/tally/x"), 5)
	if err != nil || n != 5 {
		t.Fatalf("first Add = %d, %v", n, err)
	}
	if n, err := tallyAdd.Call(context.Background(), b.rt.Ref("/tally/x"), 1); err != nil || n != 6 {
		t.Fatalf("unkeyed Add on b = %d, %v; want 6", n, err)
	}
	// The retry through b: b's cache holds the state with the answer.
	if n, err := tallyAdd.Call(kctx, b.rt.Ref("/tally/x"), 5); err != nil || n != 5 {
		t.Fatalf("retry through b = %d, %v; want the first answer 5", n, err)
	}
	// A third runtime loads it from the store.
	c := tallyRuntime(t, store, reactor.Config{})
	if n, err := tallyAdd.Call(kctx, c.rt.Ref("/tally/x"), 5); err != nil || n != 5 {
		t.Fatalf("retry through c = %d, %v; want 5", n, err)
	}
	// And a runtime whose cache is stale (a wrote meanwhile) re-runs on
	// the newer state after the conflict and finds the answer there.
	k2 := reactor.WithIdempotencyKey(context.Background(), "client:req-2")
	if n, err := tallyAdd.Call(k2, a.rt.Ref("/tally/x"), 10); err != nil || n != 16 {
		t.Fatalf("Add req-2 on a = %d, %v; want 16", n, err)
	}
	if n, err := tallyAdd.Call(k2, c.rt.Ref("/tally/x"), 10); err != nil || n != 16 {
		t.Fatalf("retry of req-2 through stale c = %d, %v; want 16", n, err)
	}
	if st := statsOf(t, c.rt, "/tally"); st.Conflicts != 1 {
		t.Fatalf("c's stats %+v: want the stale write's 1 conflict", st)
	}
	if _, err := tallyAdd.Call(kctx, b.rt.Ref("/tally/x"), 7); !errors.Is(err, reactor.ErrKeyReused) {
		t.Fatalf("key reused for another request = %v, want ErrKeyReused", err)
	}
	if n, err := tallyGet.Call(context.Background(), a.rt.Ref("/tally/x"), struct{}{}); err != nil || n != 16 {
		t.Fatalf("N = %d, %v; want 16 (each keyed request applied once)", n, err)
	}
}

// TestExternalIdempotencyConcurrentRetries: the same keyed request sent
// through three runtimes at once is applied once, and every caller gets
// the same answer.
func TestExternalIdempotencyConcurrentRetries(t *testing.T) {
	store := newTestStore()
	var nodes []*tabs
	for range 3 {
		nodes = append(nodes, tallyRuntime(t, store, reactor.Config{StateAttempts: 64}))
	}
	for round := range 20 {
		key := reactor.WithIdempotencyKey(context.Background(), "client:r"+string(rune('a'+round)))
		var wg sync.WaitGroup
		got := make([]int, 6)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := tallyAdd.Call(key, nodes[i%3].rt.Ref("/tally/c"), 1)
				if err != nil {
					t.Error(err)
				}
				got[i] = n
			}()
		}
		wg.Wait()
		for _, n := range got {
			if n != round+1 {
				t.Fatalf("round %d: answers %v, want all %d", round, got, round+1)
			}
		}
	}
}

// TestExternalRetryInRerunAnsweredOnce: a keyed retry and a write in one
// batch whose commit conflicts: the retry's remembered answer leaves once,
// from the committed run.
func TestExternalRetryInRerunAnsweredOnce(t *testing.T) {
	store := newTestStore()
	x := tallyRuntime(t, store, reactor.Config{})
	kctx := reactor.WithIdempotencyKey(context.Background(), "client:k")
	ref := x.rt.Ref("/tally/a")
	if _, err := tallyAdd.Call(kctx, ref, 1); err != nil {
		t.Fatal(err)
	}
	swaps := store.swaps.Load()
	store.beforeSwap = func(key string, data []byte, n int64) {
		if n == swaps+1 { // another process writes the same state: a new version
			store.Put(key, store.Get(key))
		}
	}
	var wg sync.WaitGroup
	var retry, add int
	var errRetry, errAdd error
	wg.Add(2)
	go func() { defer wg.Done(); retry, errRetry = tallyAdd.Call(kctx, ref, 1) }()
	go func() { defer wg.Done(); add, errAdd = tallyAdd.Call(context.Background(), ref, 2) }()
	wg.Wait()
	if errRetry != nil || retry != 1 || errAdd != nil || add != 3 {
		t.Fatalf("retry = %d, %v (want 1); add = %d, %v (want 3)", retry, errRetry, add, errAdd)
	}
}
