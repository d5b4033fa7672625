package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

// NCounter is a journaled keyed child of /counters.
type NCounter struct{ N int }

var errNegative = reactor.NewError("test.node.negative", reactor.CodeInvalidArgument, "counter: negative increment")

func (c *NCounter) Add(_ *reactor.Ctx, n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("add %d: %w", n, errNegative)
	}
	c.N += n
	return c.N, nil
}
func (c *NCounter) Get(_ *reactor.Ctx, _ struct{}) (int, error) { return c.N, nil }

// Spread adds 1 to each of /counters/c0..c<n-1>, by Send from this
// journaled handler: most targets live in other partitions, on either node.
func (c *NCounter) Spread(ctx *reactor.Ctx, n int) (struct{}, error) {
	for k := range n {
		nAdd.Send(ctx, ctx.Self().Parent().Child("c"+strconv.Itoa(k)), 1)
	}
	return struct{}{}, nil
}

// NSlow is a top-level service with an inbox of one whose Hold blocks
// until its gate opens.
type NSlow struct {
	entered chan struct{}
	gate    chan struct{}
}

func (s *NSlow) Hold(_ *reactor.Ctx, _ int) (int, error) {
	s.entered <- struct{}{}
	<-s.gate
	return 1, nil
}

var (
	nAdd    = reactor.Method("test.node.add", (*NCounter).Add)
	nGet    = reactor.Method("test.node.get", (*NCounter).Get, reactor.ReadOnly())
	nSpread = reactor.Method("test.node.spread", (*NCounter).Spread)
	nHold   = reactor.Method("test.node.hold", (*NSlow).Hold)
)

type nodeEnv struct {
	slow *NSlow
}

func (e *nodeEnv) open(t *testing.T, nc *nats.Conn, cl, id string, ttl time.Duration) *cluster.Node {
	t.Helper()
	n, err := cluster.OpenNode(ctxT(t, 10*time.Second), cluster.NodeConfig{
		Conn: nc, Cluster: cl, Node: id, Partitions: 4, LeaseTTL: ttl,
		Groups: []string{"/counters"}, Services: []string{"/slow"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Setup: func(rt *reactor.Runtime) error {
			if _, err := reactor.RegisterChildren(rt, "/counters", func(string) *NCounter { return &NCounter{} }, reactor.Journaled()); err != nil {
				return err
			}
			_, err := reactor.Register(rt, "/slow", e.slow, reactor.InboxSize(1))
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// waitOwned waits until the nodes together own want partitions, each at
// most once, and returns how many each owns.
func waitOwned(t *testing.T, want int, d time.Duration, nodes ...*cluster.Node) []int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		seen := map[cluster.Partition]int{}
		counts := make([]int, len(nodes))
		for i, n := range nodes {
			for _, p := range n.Owned() {
				seen[p]++
				counts[i]++
			}
		}
		dup := false
		for _, c := range seen {
			dup = dup || c > 1
		}
		if len(seen) == want && !dup {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions owned %v (want %d, each once) after %v", counts, want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeCallsFailover: two nodes share /counters (4 partitions) and
// /slow. Calls through either node reach the owner; a full remote inbox
// answers ErrBusy and a registered error keeps its identity across the
// wire. Node a dies (its NATS connection closed, its leases lapse); b
// takes every partition over within a few TTLs, calls made meanwhile
// wait rather than fail, and every acknowledged increment is there
// exactly once.
func TestNodeCallsFailover(t *testing.T) {
	srv := clustertest.Single(t)
	const cl, ttl = "nodes", time.Second
	env := &nodeEnv{slow: &NSlow{entered: make(chan struct{}, 4), gate: make(chan struct{})}}
	ncA := srv.Connect(t)
	a := env.open(t, ncA, cl, "a", ttl)
	waitOwned(t, 5, 10*time.Second, a)
	b := env.open(t, srv.Connect(t), cl, "b", ttl)
	counts := waitOwned(t, 5, 10*time.Second, a, b)
	// Rebalancing: a hands partitions to b, one at a time, until fair.
	deadline := time.Now().Add(15 * time.Second)
	for counts[1] < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no rebalance: owned %v", counts)
		}
		time.Sleep(50 * time.Millisecond)
		counts = waitOwned(t, 5, 10*time.Second, a, b)
	}

	ctx := ctxT(t, 60*time.Second)
	want := map[string]int{}
	var mu sync.Mutex
	inc := func(via *cluster.Node, i int) {
		key := "c" + strconv.Itoa(i%8)
		kctx := reactor.WithIdempotencyKey(ctx, "inc-"+strconv.Itoa(i))
		if _, err := nAdd.Call(kctx, via.Ref("/counters/"+key), 1); err != nil {
			t.Errorf("increment %d via node: %v", i, err)
			return
		}
		mu.Lock()
		want[key]++
		mu.Unlock()
	}
	for i := range 40 {
		inc([]*cluster.Node{a, b}[i%2], i)
	}
	for key, n := range want {
		for _, via := range []*cluster.Node{a, b} {
			if got, err := nGet.Call(ctx, via.Ref("/counters/"+key), struct{}{}); err != nil || got != n {
				t.Fatalf("%s: %d, %v; want %d", key, got, err, n)
			}
		}
	}

	// Errors cross the wire.
	if _, err := nAdd.Call(ctx, b.Ref("/counters/c0"), -1); !errors.Is(err, errNegative) || reactor.CodeOf(err) != reactor.CodeInvalidArgument {
		t.Fatalf("registered error: %v (code %v)", err, reactor.CodeOf(err))
	}
	held := make(chan error, 2)
	go func() { _, err := nHold.Call(ctx, a.Ref("/slow"), 1); held <- err }()
	<-env.slow.entered
	var busy error
	for range 50 {
		// The first try is admitted to the inbox of one and gives up
		// waiting for its reply; the next finds the inbox full.
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, busy = nHold.TryCall(tctx, b.Ref("/slow"), 3)
		cancel()
		if errors.Is(busy, reactor.ErrBusy) {
			break
		}
	}
	if !errors.Is(busy, reactor.ErrBusy) {
		t.Fatalf("full remote inbox: %v, want ErrBusy", busy)
	}
	close(env.slow.gate)
	for range 1 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}

	// Journaled handlers send to other partitions, and a dies while some
	// are in flight: b replays a's inputs and sends them again; each is
	// applied once (its origin key) and none is lost (owed until delivered).
	for i := range 8 {
		kctx := reactor.WithIdempotencyKey(ctx, "spread-"+strconv.Itoa(i))
		if _, err := nSpread.Call(kctx, []*cluster.Node{a, b}[i%2].Ref("/counters/s"+strconv.Itoa(i%4)), 8); err != nil {
			t.Fatalf("spread %d: %v", i, err)
		}
		for k := range 8 {
			want["c"+strconv.Itoa(k)]++
		}
	}

	// Node a dies. Calls through b during the takeover wait, then land.
	ncA.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 40; i < 60; i++ {
		wg.Go(func() { inc(b, i) })
	}
	waitOwned(t, 5, 10*ttl, b)
	t.Logf("b owns every partition %v after a died", time.Since(start).Round(time.Millisecond))
	wg.Wait()
	for i := 60; i < 70; i++ {
		inc(b, i)
	}
	// The spreads' sends are asynchronous: wait for them, never past.
	deadline = time.Now().Add(10 * time.Second)
	for done := false; !done; {
		done = true
		for key, n := range want {
			got, err := nGet.Call(ctx, b.Ref("/counters/"+key), struct{}{})
			if err != nil || got > n {
				t.Fatalf("after failover %s: %d, %v; want %d", key, got, err, n)
			}
			if got < n {
				done = false
				if time.Now().After(deadline) {
					t.Fatalf("after failover %s: %d; want %d", key, got, n)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNodeConfigValidate(t *testing.T) {
	setup := func(*reactor.Runtime) error { return nil }
	nc := &nats.Conn{} // never used: Validate does not connect
	for name, cfg := range map[string]cluster.NodeConfig{
		"no conn":       {Cluster: "c", Node: "n", Partitions: 4, Groups: []string{"/g"}, Setup: setup},
		"bad cluster":   {Conn: nc, Cluster: "a.b", Node: "n", Partitions: 4, Groups: []string{"/g"}, Setup: setup},
		"bad node":      {Conn: nc, Cluster: "c", Node: "a.b", Partitions: 4, Groups: []string{"/g"}, Setup: setup},
		"no setup":      {Conn: nc, Cluster: "c", Node: "n", Partitions: 4, Groups: []string{"/g"}},
		"nothing":       {Conn: nc, Cluster: "c", Node: "n", Partitions: 4, Setup: setup},
		"no partitions": {Conn: nc, Cluster: "c", Node: "n", Groups: []string{"/g"}, Setup: setup},
	} {
		if err := cfg.Validate(); !errors.Is(err, cluster.ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ok := cluster.NodeConfig{Conn: nc, Cluster: "c", Node: "n", Partitions: 4, Groups: []string{"/g"}, Setup: setup}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestNodeLeaves: a node that closes hands its partitions off (checkpoint,
// close, release): the other serves them at once, keyed calls made during
// the handoff wait and land, and every acknowledged increment — and every
// send of a journaled handler — is there exactly once. A front-end node
// owns nothing and reaches every partition.
func TestNodeLeaves(t *testing.T) {
	srv := clustertest.Single(t)
	const cl, ttl = "leave", time.Second
	env := &nodeEnv{slow: &NSlow{entered: make(chan struct{}, 4), gate: make(chan struct{})}}
	a := env.open(t, srv.Connect(t), cl, "a", ttl)
	waitOwned(t, 5, 10*time.Second, a)
	b := env.open(t, srv.Connect(t), cl, "b", ttl)
	ctx := ctxT(t, 60*time.Second)
	want := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			key := "c" + strconv.Itoa(i%8)
			kctx := reactor.WithIdempotencyKey(ctx, "inc-"+strconv.Itoa(i))
			if i%10 == 0 {
				if _, err := nSpread.Call(kctx, b.Ref("/counters/s"+key), 8); err != nil {
					t.Errorf("spread %d: %v", i, err)
					return
				}
				mu.Lock()
				for k := range 8 {
					want["c"+strconv.Itoa(k)]++
				}
				mu.Unlock()
				return
			}
			if _, err := nAdd.Call(kctx, b.Ref("/counters/"+key), 1); err != nil {
				t.Errorf("increment %d: %v", i, err)
				return
			}
			mu.Lock()
			want[key]++
			mu.Unlock()
		})
		if i == 20 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := a.Close(cctx); err != nil {
				t.Errorf("close a: %v", err)
			}
			cancel()
		}
	}
	wg.Wait()
	waitOwned(t, 5, 5*ttl, b)
	// A front-end node owns nothing and reaches everything.
	front, err := cluster.OpenNode(ctx, cluster.NodeConfig{Conn: srv.Connect(t), Cluster: cl, Node: "front", Partitions: 4,
		Groups: []string{"/counters"}, Services: []string{"/slow"}, LeaseTTL: ttl, FrontEnd: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close(ctx)
	if _, err := nAdd.Call(reactor.WithIdempotencyKey(ctx, "front-1"), front.Ref("/counters/c1"), 1); err != nil {
		t.Fatal(err)
	}
	want["c1"]++
	if len(front.Owned()) != 0 {
		t.Fatalf("front end owns %v", front.Owned())
	}
	deadline := time.Now().Add(10 * time.Second)
	for done := false; !done; {
		done = true
		for key, n := range want {
			got, err := nGet.Call(ctx, b.Ref("/counters/"+key), struct{}{})
			if err != nil || got > n {
				t.Fatalf("%s: %d, %v; want %d", key, got, err, n)
			}
			if got < n {
				done = false
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d; want %d", key, got, n)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NodeConfig.Serve runs once per partition taken over, with a context that ends when
// the partition closes; its stop runs when the partition closes, before
// the runtime does.
func TestNodeServeRunsWhilePartitionsAreServed(t *testing.T) {
	srv := clustertest.Single(t)
	var mu sync.Mutex
	serving := map[*reactor.Runtime]bool{}
	var stops int
	var ctxs []context.Context
	n, err := cluster.OpenNode(ctxT(t, 10*time.Second), cluster.NodeConfig{
		Conn: srv.Connect(t), Cluster: "serve", Node: "a", Partitions: 4, LeaseTTL: time.Second,
		Groups: []string{"/counters"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Setup: func(rt *reactor.Runtime) error {
			_, err := reactor.RegisterChildren(rt, "/counters", func(string) *NCounter { return &NCounter{} }, reactor.Journaled())
			return err
		},
		Serve: func(ctx context.Context, rt *reactor.Runtime) (func(context.Context), error) {
			mu.Lock()
			serving[rt] = true
			ctxs = append(ctxs, ctx)
			mu.Unlock()
			return func(context.Context) {
				mu.Lock()
				delete(serving, rt)
				stops++
				mu.Unlock()
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitOwned(t, 4, 10*time.Second, n)
	mu.Lock()
	if len(serving) != 4 {
		t.Errorf("Serve running on %d runtimes, want 4", len(serving))
	}
	mu.Unlock()
	if err := n.Close(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if stops != 4 || len(serving) != 0 {
		t.Fatalf("%d stops, %d still serving; want 4, 0", stops, len(serving))
	}
	for _, ctx := range ctxs {
		if ctx.Err() == nil {
			t.Fatal("a Serve context outlives its partition")
		}
	}
}
