package reactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/state"
)

// Tab is an External test state: a counter whose handlers send, reply,
// arm timers and record what they saw of Ctx.Now and Ctx.Rand.
type Tab struct {
	N     int
	Draws []uint64 // Ctx.Rand draws, in order
	Times []int64  // Ctx.Now, in order
	log   Ref      // where Add reports each new value (a memory-only service)
	sink  Ref
	runs  *atomic.Int64
}

// Ref aliases reactor.Ref to keep the state struct's unexported field short.
type Ref = reactor.Ref

func (t *Tab) Add(c *reactor.Ctx, n int) (int, error) {
	t.runs.Add(1)
	t.N += n
	t.Draws = append(t.Draws, c.Rand().Uint64())
	t.Times = append(t.Times, c.Now().UnixNano())
	if t.log.Addr() != "" {
		if err := record.Send(c, t.log, t.N); err != nil {
			return 0, err
		}
	}
	return t.N, nil
}

func (t *Tab) Get(_ *reactor.Ctx, _ struct{}) (int, error) { return t.N, nil }

func (t *Tab) Tick(c *reactor.Ctx, d time.Duration) (struct{}, error) {
	tallyAdd.After(c, d, 1)
	return struct{}{}, nil
}

func (t *Tab) Later(c *reactor.Ctx, _ struct{}) (int, error) {
	r := reactor.Defer[int](c)
	r.OK(t.N)
	return 0, nil
}

// Relay calls /sink/x Take asynchronously and adds its answer.
func (t *Tab) Relay(c *reactor.Ctx, n int) (struct{}, error) {
	sinkTake.Async(c, t.sink, n, func(c *reactor.Ctx, got int, err error) {
		if err == nil {
			t.N += got
		}
	})
	return struct{}{}, nil
}

var (
	tallyAdd   = reactor.Method("test.tally.add", (*Tab).Add)
	tallyGet   = reactor.Method("test.tally.get", (*Tab).Get, reactor.ReadOnly())
	tallyTick  = reactor.Method("test.tally.tick", (*Tab).Tick)
	tallyLater = reactor.Method("test.tally.later", (*Tab).Later)
	tallyRelay = reactor.Method("test.tally.relay", (*Tab).Relay)
)

// Log is a memory-only service recording what it was sent.
type Log struct{ Got []int }

func (l *Log) Record(_ *reactor.Ctx, n int) (struct{}, error) {
	l.Got = append(l.Got, n)
	return struct{}{}, nil
}
func (l *Log) All(_ *reactor.Ctx, _ struct{}) ([]int, error) {
	return append([]int(nil), l.Got...), nil
}

var (
	record   = reactor.Method("test.log.record", (*Log).Record)
	logAll   = reactor.Method("test.log.all", (*Log).All, reactor.ReadOnly())
	sinkTake = reactor.Method("test.sink.take", func(s *Sinker, c *reactor.Ctx, n int) (int, error) {
		s.Calls++
		return n, nil
	})
	sinkCalls = reactor.Method("test.sink.calls", func(s *Sinker, c *reactor.Ctx, _ struct{}) (int, error) { return s.Calls, nil }, reactor.ReadOnly())
)

type Sinker struct{ Calls int }

// testStore is a StateStore around a MemStore that counts calls and
// injects conflicts and errors.
type testStore struct {
	*state.MemStore
	loads, swaps atomic.Int64
	mu           sync.Mutex
	// beforeSwap runs before each CompareAndSwap (another writer's turn).
	beforeSwap func(key string, data []byte, n int64)
	failWith   error // the next CompareAndSwap fails with it
}

func newTestStore() *testStore { return &testStore{MemStore: state.NewMemStore()} }

func (s *testStore) Load(ctx context.Context, key string, known uint64) ([]byte, uint64, error) {
	s.loads.Add(1)
	return s.MemStore.Load(ctx, key, known)
}

func (s *testStore) CompareAndSwap(ctx context.Context, key string, data []byte, version uint64) (uint64, error) {
	n := s.swaps.Add(1)
	s.mu.Lock()
	hook, fail := s.beforeSwap, s.failWith
	s.failWith = nil
	s.mu.Unlock()
	if hook != nil {
		hook(key, data, n)
	}
	if fail != nil {
		return 0, fail
	}
	return s.MemStore.CompareAndSwap(ctx, key, data, version)
}

type tabs struct {
	rt    *reactor.Runtime
	store *testStore
	log   reactor.Ref
	runs  *atomic.Int64
}

func tallyRuntime(t *testing.T, store *testStore, cfg reactor.Config) *tabs {
	t.Helper()
	rt := newRuntime(t, cfg)
	logRef, err := reactor.Register(rt, "/log", &Log{})
	if err != nil {
		t.Fatal(err)
	}
	runs := &atomic.Int64{}
	if _, err := reactor.RegisterChildren(rt, "/tally", func(key string) *Tab {
		return &Tab{log: logRef, sink: rt.Ref("/sink/x"), runs: runs}
	}, reactor.External(store)); err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(rt, "/sink", func(string) *Sinker { return &Sinker{} }); err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	return &tabs{rt: rt, store: store, log: logRef, runs: runs}
}

func statsOf(t *testing.T, rt *reactor.Runtime, addr string) reactor.ServiceStats {
	t.Helper()
	for _, st := range rt.Stats() {
		if st.Addr == addr {
			return st
		}
	}
	t.Fatalf("no stats for %s", addr)
	return reactor.ServiceStats{}
}

func stored(t *testing.T, s *testStore, key string) Tab {
	t.Helper()
	var v Tab
	if err := json.Unmarshal(s.Get(key), &v); err != nil {
		t.Fatalf("stored state of %s: %v", key, err)
	}
	return v
}

func logged(t *testing.T, x *tabs) []int {
	t.Helper()
	got, err := logAll.Call(context.Background(), x.log, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestExternalWritesOncePerBatchAndCachesWithVersion(t *testing.T) {
	x := tallyRuntime(t, newTestStore(), reactor.Config{})
	ctx := context.Background()
	ref := x.rt.Ref("/tally/a")
	for i := 1; i <= 5; i++ {
		n, err := tallyAdd.Call(ctx, ref, 1)
		if err != nil || n != i {
			t.Fatalf("Add #%d = %d, %v", i, n, err)
		}
	}
	if got := stored(t, x.store, "/tally/a").N; got != 5 {
		t.Fatalf("stored N = %d, want 5", got)
	}
	// One load (the first message); each modifying batch one write, no read.
	if l, s := x.store.loads.Load(), x.store.swaps.Load(); l != 1 || s != 5 {
		t.Fatalf("loads %d swaps %d, want 1 and 5", l, s)
	}
	// A read-only batch writes nothing; it revalidates the cache.
	if n, err := tallyGet.Call(ctx, ref, struct{}{}); err != nil || n != 5 {
		t.Fatalf("Get = %d, %v", n, err)
	}
	if l, s := x.store.loads.Load(), x.store.swaps.Load(); l != 2 || s != 5 {
		t.Fatalf("after a read: loads %d swaps %d, want 2 and 5", l, s)
	}
	// Another writer: the read sees it.
	x.store.Put("/tally/a", []byte(`{"N":40}`))
	if n, err := tallyGet.Call(ctx, ref, struct{}{}); err != nil || n != 40 {
		t.Fatalf("Get after another writer = %d, %v; want 40", n, err)
	}
	// A batch of many sends: one write.
	before, batches := x.store.swaps.Load(), statsOf(t, x.rt, "/tally").Batches
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); tallyAdd.Call(ctx, ref, 1) }()
	}
	wg.Wait()
	if got := stored(t, x.store, "/tally/a").N; got != 140 {
		t.Fatalf("stored N = %d, want 140", got)
	}
	st := statsOf(t, x.rt, "/tally")
	if w := x.store.swaps.Load() - before; w != int64(st.Batches-batches) {
		t.Fatalf("%d writes for %d batches", w, st.Batches-batches)
	}
	if st.Conflicts != 0 || st.Reloads != 2 {
		t.Fatalf("stats %+v: want no conflict, 2 reloads", st)
	}
	t.Logf("100 concurrent adds: %d batches", st.Batches-batches)
}

func TestExternalConflictRerunsBatchAndReleasesOnlyTheCommittedRun(t *testing.T) {
	store := newTestStore()
	x := tallyRuntime(t, store, reactor.Config{})
	ctx := context.Background()
	ref := x.rt.Ref("/tally/a")
	if _, err := tallyAdd.Call(ctx, ref, 1); err != nil {
		t.Fatal(err)
	}
	// Before the next write, another process moves the counter to 100.
	store.beforeSwap = func(key string, _ []byte, n int64) {
		if n == 2 {
			store.Put(key, []byte(`{"N":100}`))
		}
	}
	n, err := tallyAdd.Call(ctx, ref, 1)
	if err != nil || n != 101 {
		t.Fatalf("Add across a conflict = %d, %v; want 101 (computed on the other writer's state)", n, err)
	}
	if r := x.runs.Load(); r != 3 {
		t.Fatalf("handler ran %d times, want 3 (1 + conflicted run + re-run)", r)
	}
	// The conflicted run's send (N = 2) never left: the log has 1 and 101.
	if got := logged(t, x); fmt.Sprint(got) != "[1 101]" {
		t.Fatalf("log = %v, want [1 101]", got)
	}
	st := statsOf(t, x.rt, "/tally")
	if st.Conflicts != 1 || st.Retries != 1 || st.Reloads != 2 || st.GaveUp != 0 {
		t.Fatalf("stats %+v, want 1 conflict, 1 retry, 2 reloads", st)
	}
	if got := stored(t, store, "/tally/a").N; got != 101 {
		t.Fatalf("stored %d", got)
	}
}

func TestExternalRerunSeesSameNowAndRand(t *testing.T) {
	store := newTestStore()
	tick := int64(0)
	x := tallyRuntime(t, store, reactor.Config{Clock: func() time.Time {
		return time.Unix(0, atomic.AddInt64(&tick, 1000))
	}})
	var first Tab
	store.beforeSwap = func(key string, data []byte, n int64) {
		if n == 1 { // what the first run computed; then another writer wins
			json.Unmarshal(data, &first)
			store.Put(key, []byte(`{"N":7}`))
		}
	}
	n, err := tallyAdd.Call(context.Background(), x.rt.Ref("/tally/a"), 1)
	if err != nil || n != 8 {
		t.Fatalf("Add = %d, %v; want 8", n, err)
	}
	if x.runs.Load() != 2 {
		t.Fatalf("runs = %d, want 2", x.runs.Load())
	}
	got := stored(t, store, "/tally/a")
	if len(first.Draws) != 1 || fmt.Sprint(got.Draws, got.Times) != fmt.Sprint(first.Draws, first.Times) {
		t.Fatalf("re-run saw rand %v time %v, first run %v %v", got.Draws, got.Times, first.Draws, first.Times)
	}
	if tick != 1000 {
		t.Fatalf("clock read %d times, want once (the re-run reuses the first reading)", tick/1000)
	}
}

func TestExternalConflictStormGivesUpWithErrBusy(t *testing.T) {
	store := newTestStore()
	x := tallyRuntime(t, store, reactor.Config{StateAttempts: 4})
	ctx := context.Background()
	ref := x.rt.Ref("/tally/a")
	if _, err := tallyAdd.Call(ctx, ref, 1); err != nil {
		t.Fatal(err)
	}
	// Every write loses to another writer.
	store.beforeSwap = func(key string, _ []byte, _ int64) { store.Put(key, []byte(`{"N":50}`)) }
	began := time.Now()
	_, err := tallyAdd.Call(ctx, ref, 1)
	if !errors.Is(err, reactor.ErrBusy) || !errors.Is(err, reactor.ErrConflict) {
		t.Fatalf("Add under a storm = %v, want ErrBusy (and ErrConflict)", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	st := statsOf(t, x.rt, "/tally")
	if st.Conflicts != 3 || st.Retries != 3 || st.GaveUp != 1 {
		t.Fatalf("stats %+v: want 3 conflicts + the last, 3 retries, 1 gave up", st)
	}
	if r := x.runs.Load(); r != 1+4 {
		t.Fatalf("handler ran %d times, want 1 + 4 attempts", r)
	}
	// Nothing any of the four runs produced left: the log has only the first add.
	if got := logged(t, x); fmt.Sprint(got) != "[1]" {
		t.Fatalf("log = %v, want [1]", got)
	}
	// The storm ends: the next call reloads and commits.
	store.beforeSwap = nil
	if n, err := tallyAdd.Call(ctx, ref, 1); err != nil || n != 51 {
		t.Fatalf("Add after the storm = %d, %v; want 51", n, err)
	}
}

func TestExternalStoreErrorFailsBatchAndReloads(t *testing.T) {
	store := newTestStore()
	x := tallyRuntime(t, store, reactor.Config{})
	ctx := context.Background()
	ref := x.rt.Ref("/tally/a")
	tallyAdd.Call(ctx, ref, 1)
	boom := errors.New("connection reset")
	store.failWith = boom
	if _, err := tallyAdd.Call(ctx, ref, 1); !errors.Is(err, boom) {
		t.Fatalf("Add with a failing store = %v, want %v", err, boom)
	}
	// The uncommitted run is not kept: the next add starts from the store.
	if n, err := tallyAdd.Call(ctx, ref, 1); err != nil || n != 2 {
		t.Fatalf("Add after the failure = %d, %v; want 2", n, err)
	}
	if got := logged(t, x); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("log = %v, want [1 2]", got)
	}
}

func TestExternalTimersAndAsyncHeldUntilCommit(t *testing.T) {
	store := newTestStore()
	x := tallyRuntime(t, store, reactor.Config{})
	ctx := context.Background()
	ref := x.rt.Ref("/tally/a")
	if _, err := tallyAdd.Call(ctx, ref, 1); err != nil {
		t.Fatal(err)
	}
	// From now on every first write of a batch conflicts.
	store.beforeSwap = func(key string, _ []byte, n int64) {
		if n%2 == 0 {
			store.Put(key, store.Get(key)) // same state, new version: a conflict
		}
	}
	// A timer armed by a conflicted run is not armed; the committed run's is.
	if _, err := tallyTick.Call(ctx, ref, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stored(t, store, "/tally/a").N == 2 })
	time.Sleep(20 * time.Millisecond)
	if n := stored(t, store, "/tally/a").N; n != 2 {
		t.Fatalf("N = %d after one tick, want 2 (one timer armed)", n)
	}
	// An async call made by a conflicted run is not sent; the continuation
	// of the committed run's call commits its change.
	if _, err := tallyRelay.Call(ctx, ref, 10); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stored(t, store, "/tally/a").N == 12 })
	if st := statsOf(t, x.rt, "/tally"); st.Conflicts != 4 {
		t.Fatalf("conflicts = %d, want 4 (tick, timer, relay, continuation)", st.Conflicts)
	}
	calls, err := sinkCalls.Call(ctx, x.rt.Ref("/sink/x"), struct{}{})
	if err != nil || calls != 1 {
		t.Fatalf("sink called %d times (%v), want 1", calls, err)
	}
}

func TestExternalRefusesDeferTopLevelAndWorkers(t *testing.T) {
	x := tallyRuntime(t, newTestStore(), reactor.Config{})
	_, err := tallyLater.Call(context.Background(), x.rt.Ref("/tally/a"), struct{}{})
	if !errors.Is(err, reactor.ErrPanic) {
		t.Fatalf("Defer in an External service = %v, want a panic error", err)
	}
	rt := newRuntime(t, reactor.Config{})
	if _, err := reactor.Register(rt, "/t", &Tab{}, reactor.External(state.NewMemStore())); err == nil {
		t.Fatal("Register with External accepted")
	}
	if _, err := reactor.RegisterChildren(rt, "/w", func(string) *Tab { return &Tab{} }, reactor.External(state.NewMemStore()), reactor.Workers(2)); err == nil {
		t.Fatal("External with Workers(2) accepted")
	}
	if _, err := reactor.RegisterChildren(rt, "/n", func(string) *Tab { return &Tab{} }, reactor.External(nil)); err == nil {
		t.Fatal("External(nil) accepted")
	}
	// The last placement wins.
	if _, err := reactor.RegisterChildren(rt, "/m", func(string) *Tab { return &Tab{} }, reactor.External(state.NewMemStore()), reactor.InMemory()); err != nil {
		t.Fatal(err)
	}
}

// TestExternalRuntimesShareKeys: several runtimes (as several processes
// would) increment shared keys concurrently through one store: the totals
// are exact and conflicts happen.
func TestExternalRuntimesShareKeys(t *testing.T) {
	store := newTestStore()
	const nodes, keys, perNode = 3, 5, 600
	var rts []*tabs
	for range nodes {
		rts = append(rts, tallyRuntime(t, store, reactor.Config{StateAttempts: 64}))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var busy atomic.Int64
	for i, x := range rts {
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := g; j < perNode; j += 4 {
					ref := x.rt.Ref("/tally/k" + strconv.Itoa((i+j)%keys))
					for {
						_, err := tallyAdd.Call(ctx, ref, 1)
						if err == nil {
							break
						}
						if !errors.Is(err, reactor.ErrBusy) {
							t.Error(err)
							return
						}
						busy.Add(1) // a 503: the client retries
					}
				}
			}()
		}
	}
	wg.Wait()
	total, conflicts := 0, uint64(0)
	for k := range keys {
		total += stored(t, store, "/tally/k"+strconv.Itoa(k)).N
	}
	for _, x := range rts {
		conflicts += statsOf(t, x.rt, "/tally").Conflicts
	}
	if total != nodes*perNode {
		t.Fatalf("total = %d, want %d", total, nodes*perNode)
	}
	t.Logf("%d increments, %d conflicts, %d busy", total, conflicts, busy.Load())
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
