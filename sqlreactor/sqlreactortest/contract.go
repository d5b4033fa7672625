// Package sqlreactortest is the contract suite every sqlreactor backend
// runs: batching with a savepoint per request, rollback of one request
// (database and cache) on error or panic, answers only after commit, a
// failed commit failing the whole batch, the read pool never touching the
// writer, the bounded cache, and durability across reopen.
package sqlreactortest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/reactortest"
	"github.com/reactorgo/reactor/sqlreactor"
)

// Schema is the tables the suite needs; a backend's Open must run it.
// The child table's foreign key is checked at COMMIT, which is how the suite
// makes a commit fail for real.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS parent (id BIGINT PRIMARY KEY)`,
	`CREATE TABLE IF NOT EXISTS child (id BIGINT PRIMARY KEY,
		parent BIGINT NOT NULL REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)`,
}

// Opener opens the backend's DB on the same database each time it is
// called within one test (with Schema, and the given cache size).
type Opener func(t *testing.T, cacheSize int) *sqlreactor.DB

// KV is a request argument.
type KV struct {
	K    string
	V    int64
	Fail bool // return an error after writing
	Boom bool // panic after writing
	// Put only: Fresh writes with a plain INSERT, which fails when K
	// exists; Optimistic does so only while tx.Deferring(), and upserts
	// when the request is run again.
	Fresh, Optimistic bool
}

var errRequested = errors.New("sqlreactortest: failure requested")

func loadKV(k string) func(tx *sqlreactor.Tx) (int64, error) {
	return func(tx *sqlreactor.Tx) (int64, error) {
		var v int64
		err := tx.QueryRow(`SELECT v FROM kv WHERE k = ?`, k).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return v, err
	}
}

var (
	// Set writes k=v through the cache, then fails or panics if asked.
	Set = sqlreactor.Method("sqlreactortest.set", func(tx *sqlreactor.Tx, r KV) (int64, error) {
		old, err := sqlreactor.Cached(tx, "kv:"+r.K, loadKV(r.K))
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(`INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, r.K, r.V); err != nil {
			return 0, err
		}
		tx.Put("kv:"+r.K, r.V)
		if r.Boom {
			panic("boom " + r.K)
		}
		if r.Fail {
			return 0, errRequested
		}
		return old, nil
	})
	// Put is Set with tx.Write: on a pipelining backend the write is
	// queued and runs with the batch's other statements.
	Put = sqlreactor.Method("sqlreactortest.put", func(tx *sqlreactor.Tx, r KV) (int64, error) {
		old, err := sqlreactor.Cached(tx, "kv:"+r.K, loadKV(r.K))
		if err != nil {
			return 0, err
		}
		q := `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`
		if r.Fresh || (r.Optimistic && tx.Deferring()) {
			q = `INSERT INTO kv (k, v) VALUES (?, ?)`
		}
		if err := tx.Write(q, r.K, r.V); err != nil {
			return 0, err
		}
		tx.Put("kv:"+r.K, r.V)
		if r.Fail {
			return 0, errRequested
		}
		return old, nil
	})
	// Get reads k through the cache.
	Get = sqlreactor.Method("sqlreactortest.get", func(tx *sqlreactor.Tx, k string) (int64, error) {
		return sqlreactor.Cached(tx, "kv:"+k, loadKV(k))
	})
	// Cached reports whether k is in the cache and its cached value.
	Peek = sqlreactor.Method("sqlreactortest.peek", func(tx *sqlreactor.Tx, k string) (int64, error) {
		v, ok := tx.Get("kv:" + k)
		if !ok {
			return -1, nil
		}
		return v.(int64), nil
	})
	// Orphan inserts a child whose parent does not exist: the request
	// succeeds, the deferred foreign key fails the commit.
	Orphan = sqlreactor.Method("sqlreactortest.orphan", func(tx *sqlreactor.Tx, id int64) (bool, error) {
		_, err := tx.Exec(`INSERT INTO child (id, parent) VALUES (?, ?)`, id, id+1_000_000)
		return err == nil, err
	})
	// Hold blocks the turn until the channel it is given is closed, after
	// writing hold=1 (so the batch transaction is open and has written).
	Hold = sqlreactor.Method("sqlreactortest.hold", func(tx *sqlreactor.Tx, h HoldReq) (bool, error) {
		if _, err := tx.Exec(`INSERT INTO kv (k, v) VALUES ('hold', 1) ON CONFLICT (k) DO UPDATE SET v = kv.v + 1`); err != nil {
			return false, err
		}
		tx.Evict("kv:hold")
		close(h.Started)
		<-h.Gate
		return true, nil
	})
)

// HoldReq makes Hold signal Started once it has written, then wait for Gate.
type HoldReq struct{ Started, Gate chan struct{} }

type env struct {
	rt  *reactor.Runtime
	db  *sqlreactor.DB
	ref reactor.Ref
}

func start(t *testing.T, open Opener, cacheSize int) *env {
	t.Helper()
	db := open(t, cacheSize)
	rt, err := reactor.New(reactor.Config{CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reactor.Register(rt, "/db", db, reactor.BatchSize(512), reactor.InboxSize(4096))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{rt: rt, db: db, ref: ref}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.rt.Close(ctx)
	_ = e.db.Close()
}

func readKV(t *testing.T, db *sqlreactor.DB, k string) (int64, bool) {
	t.Helper()
	var v int64
	found := true
	err := db.View(context.Background(), func(r *sqlreactor.ReadTx) error {
		err := r.QueryRow(`SELECT v FROM kv WHERE k = ?`, k).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", k, err)
	}
	return v, found
}

type result struct {
	v   int64
	err error
}

// batch holds the reactor's turn with Hold, queues reqs behind it so they
// are handled as one batch, releases the turn and returns each answer.
func (e *env) batch(t *testing.T, reqs []func(ctx context.Context) (int64, error)) []result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := HoldReq{Started: make(chan struct{}), Gate: make(chan struct{})}
	gate := h.Gate
	held := make(chan error, 1)
	go func() { _, err := Hold.Call(ctx, e.ref, h); held <- err }()
	select {
	case <-h.Started:
	case <-ctx.Done():
		t.Fatal("Hold never started")
	}
	out := make([]result, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() { defer wg.Done(); v, err := r(ctx); out[i] = result{v, err} }()
		// One at a time, so the batch runs them in order.
		for deadline := time.Now().Add(5 * time.Second); inbox(e.rt) < i+1; {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d requests queued", inbox(e.rt), len(reqs))
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(gate)
	if err := <-held; err != nil {
		t.Fatalf("Hold: %v", err)
	}
	wg.Wait()
	return out
}

func inbox(rt *reactor.Runtime) int {
	for _, s := range rt.Stats() {
		if s.Addr == "/db" {
			return s.InboxDepth
		}
	}
	return 0
}

func set(e *env, r KV) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) { return Set.Call(ctx, e.ref, r) }
}

// Run runs the contract suite against the backend open returns.
func Run(t *testing.T, open Opener) {
	t.Run("CommitThenAnswer", func(t *testing.T) { testCommit(t, open) })
	t.Run("FailingRequestRolledBackAlone", func(t *testing.T) { testFailAlone(t, open) })
	t.Run("PanicRolledBackAlone", func(t *testing.T) { testPanic(t, open) })
	t.Run("CacheUndoneWithSavepoint", func(t *testing.T) { testCacheUndo(t, open) })
	t.Run("FailedCommitFailsBatch", func(t *testing.T) { testCommitFailure(t, open) })
	t.Run("ReadPoolDoesNotWaitForWriter", func(t *testing.T) { testReadPool(t, open) })
	t.Run("CacheBoundedLRU", func(t *testing.T) { testCacheLRU(t, open) })
	t.Run("DurableAcrossReopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("QueuedWriteFailsAlone", func(t *testing.T) { testQueuedFail(t, open) })
	t.Run("QueuedWriteRerunRecovers", func(t *testing.T) { testRerun(t, open) })
	t.Run("QueuedWritesFailedCommit", func(t *testing.T) { testQueuedCommitFailure(t, open) })
}

func put(e *env, r KV) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) { return Put.Call(ctx, e.ref, r) }
}

func get(e *env, k string) func(ctx context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) { return Get.Call(ctx, e.ref, k) }
}

// testQueuedFail: in one batch, a write that fails when it runs (a
// duplicate key) fails its own request only, even when the next request
// reads the key it changed in the cache, and after it.
func testQueuedFail(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	if _, err := Set.Call(ctx, e.ref, KV{K: "dup", V: 1}); err != nil {
		t.Fatal(err)
	}
	res := e.batch(t, []func(context.Context) (int64, error){
		put(e, KV{K: "qa", V: 10}),
		put(e, KV{K: "dup", V: 2, Fresh: true}), // fails at execution
		get(e, "dup"),                           // must not see 2
		put(e, KV{K: "qb", V: 20}),
		put(e, KV{K: "qa", V: 11}), // reads qa=10, written by request 0
		put(e, KV{K: "qc", V: 30, Fail: true}),
		put(e, KV{K: "qd", V: 40}),
	})
	if res[1].err == nil {
		t.Errorf("duplicate insert succeeded")
	}
	for i, want := range map[int]int64{0: 0, 2: 1, 3: 0, 4: 10, 6: 0} {
		if res[i].err != nil || res[i].v != want {
			t.Errorf("request %d = %d, %v; want %d", i, res[i].v, res[i].err, want)
		}
	}
	if !errors.Is(res[5].err, errRequested) {
		t.Errorf("request 5: %v", res[5].err)
	}
	for k, want := range map[string]int64{"dup": 1, "qa": 11, "qb": 20, "qd": 40, "qc": -1} {
		v, found := readKV(t, e.db, k)
		if !found {
			v = -1
		}
		if v != want {
			t.Errorf("database %s = %d, want %d", k, v, want)
		}
		if c, _ := Peek.Call(ctx, e.ref, k); c != want {
			t.Errorf("cache %s = %d, want %d", k, c, want)
		}
	}
	if st := e.db.Stats(); st.MaxBatch < 7 {
		t.Errorf("stats %+v: want one batch of ≥7", st)
	}
}

// testRerun: a request whose optimistic queued write fails is run again
// with statements sent at once, and succeeds.
func testRerun(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	if _, err := Set.Call(ctx, e.ref, KV{K: "o", V: 1}); err != nil {
		t.Fatal(err)
	}
	res := e.batch(t, []func(context.Context) (int64, error){
		put(e, KV{K: "o1", V: 5}),
		put(e, KV{K: "o", V: 2, Optimistic: true}),
		put(e, KV{K: "o2", V: 6}),
	})
	for i, r := range res {
		if r.err != nil {
			t.Errorf("request %d: %v", i, r.err)
		}
	}
	if res[1].v != 1 {
		t.Errorf("rerun answered %d, want the old value 1", res[1].v)
	}
	for k, want := range map[string]int64{"o": 2, "o1": 5, "o2": 6} {
		if v, _ := readKV(t, e.db, k); v != want {
			t.Errorf("%s = %d, want %d", k, v, want)
		}
		if c, _ := Peek.Call(ctx, e.ref, k); c != want {
			t.Errorf("cache %s = %d, want %d", k, c, want)
		}
	}
}

// testQueuedCommitFailure: queued writes and a failing COMMIT: every
// request fails and the cache is undone.
func testQueuedCommitFailure(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	if _, err := Put.Call(ctx, e.ref, KV{K: "w", V: 1}); err != nil {
		t.Fatal(err)
	}
	orphan := func(ctx context.Context) (int64, error) { _, err := Orphan.Call(ctx, e.ref, 7); return 0, err }
	res := e.batch(t, []func(context.Context) (int64, error){put(e, KV{K: "w", V: 2}), orphan, put(e, KV{K: "x", V: 3})})
	for i, r := range res {
		if !errors.Is(r.err, sqlreactor.ErrCommit) {
			t.Errorf("request %d: err = %v, want ErrCommit", i, r.err)
		}
	}
	for k, want := range map[string]int64{"w": 1, "x": -1} {
		v, found := readKV(t, e.db, k)
		if !found {
			v = -1
		}
		if v != want {
			t.Errorf("database %s = %d, want %d", k, v, want)
		}
		if c, _ := Peek.Call(ctx, e.ref, k); c != want {
			t.Errorf("cache %s = %d, want %d", k, c, want)
		}
	}
}

func testCommit(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	if _, err := Set.Call(ctx, e.ref, KV{K: "a", V: 7}); err != nil {
		t.Fatal(err)
	}
	if v, ok := readKV(t, e.db, "a"); !ok || v != 7 {
		t.Fatalf("read pool sees a=%d (found %v) after the answer, want 7", v, ok)
	}
	old, err := Set.Call(ctx, e.ref, KV{K: "a", V: 9})
	if err != nil || old != 7 {
		t.Fatalf("second set: old=%d err=%v, want 7", old, err)
	}
	if v, err := Get.Call(ctx, e.ref, "a"); err != nil || v != 9 {
		t.Fatalf("get a = %d, %v; want 9", v, err)
	}
	if st := e.db.Stats(); st.Cache.Hits == 0 {
		t.Fatalf("no cache hit after write-through: %+v", st.Cache)
	}
}

func testFailAlone(t *testing.T, open Opener) {
	e := start(t, open, 0)
	var reqs []func(context.Context) (int64, error)
	for i := range 20 {
		reqs = append(reqs, set(e, KV{K: fmt.Sprint("f", i), V: int64(i), Fail: i%5 == 2}))
	}
	res := e.batch(t, reqs)
	for i, r := range res {
		v, found := readKV(t, e.db, fmt.Sprint("f", i))
		if i%5 == 2 {
			if !errors.Is(r.err, errRequested) {
				t.Errorf("request %d: err = %v, want its own error", i, r.err)
			}
			if found {
				t.Errorf("failed request %d left f%d=%d in the database", i, i, v)
			}
			continue
		}
		if r.err != nil || !found || v != int64(i) {
			t.Errorf("request %d: err=%v, f%d=%d found=%v", i, r.err, i, v, found)
		}
	}
	if st := e.db.Stats(); st.MaxBatch < 20 || st.Failed != 4 {
		t.Errorf("stats %+v: want one batch of ≥20 with 4 failures", st)
	}
}

func testPanic(t *testing.T, open Opener) {
	e := start(t, open, 0)
	res := e.batch(t, []func(context.Context) (int64, error){
		set(e, KV{K: "p1", V: 1}), set(e, KV{K: "p2", V: 2, Boom: true}), set(e, KV{K: "p3", V: 3}),
	})
	if res[0].err != nil || res[2].err != nil {
		t.Fatalf("neighbours of a panic failed: %v, %v", res[0].err, res[2].err)
	}
	if !errors.Is(res[1].err, sqlreactor.ErrPanic) || !errors.Is(res[1].err, reactor.ErrPanic) {
		t.Fatalf("panicking request: err = %v, want ErrPanic", res[1].err)
	}
	if _, found := readKV(t, e.db, "p2"); found {
		t.Fatal("panicking request's write was committed")
	}
	for _, k := range []string{"p1", "p3"} {
		if _, found := readKV(t, e.db, k); !found {
			t.Fatalf("%s lost", k)
		}
	}
	if v, _ := Peek.Call(context.Background(), e.ref, "p2"); v != -1 {
		t.Fatalf("cache kept the panicking request's value %d", v)
	}
}

func testCacheUndo(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	if _, err := Set.Call(ctx, e.ref, KV{K: "u", V: 1}); err != nil {
		t.Fatal(err)
	}
	// Same batch: a failing write of u, then a read of u through the cache.
	res := e.batch(t, []func(context.Context) (int64, error){
		set(e, KV{K: "u", V: 666, Fail: true}),
	})
	if !errors.Is(res[0].err, errRequested) {
		t.Fatalf("err = %v", res[0].err)
	}
	if v, _ := Peek.Call(ctx, e.ref, "u"); v != 1 {
		t.Fatalf("cache holds u=%d after the rollback, want 1", v)
	}
	if v, _ := readKV(t, e.db, "u"); v != 1 {
		t.Fatalf("database holds u=%d, want 1", v)
	}
	if e.db.Stats().Cache.Undone == 0 {
		t.Fatal("no cache change counted as undone")
	}
	// A request that loaded and failed leaves no entry behind.
	if _, err := Set.Call(ctx, e.ref, KV{K: "fresh", V: 5, Fail: true}); !errors.Is(err, errRequested) {
		t.Fatal(err)
	}
	if v, _ := Peek.Call(ctx, e.ref, "fresh"); v != -1 {
		t.Fatalf("cache holds fresh=%d from a rolled-back request", v)
	}
}

func testCommitFailure(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	if _, err := Set.Call(ctx, e.ref, KV{K: "c", V: 1}); err != nil {
		t.Fatal(err)
	}
	orphan := func(ctx context.Context) (int64, error) {
		ok, err := Orphan.Call(ctx, e.ref, 1)
		if ok {
			return 1, err
		}
		return 0, err
	}
	res := e.batch(t, []func(context.Context) (int64, error){set(e, KV{K: "c", V: 2}), orphan, set(e, KV{K: "d", V: 3})})
	for i, r := range res {
		if !errors.Is(r.err, sqlreactor.ErrCommit) {
			t.Errorf("request %d of a batch whose commit failed: err = %v, want ErrCommit", i, r.err)
		}
	}
	if v, _ := readKV(t, e.db, "c"); v != 1 {
		t.Fatalf("c = %d after a failed commit, want 1", v)
	}
	if _, found := readKV(t, e.db, "d"); found {
		t.Fatal("d committed by a failed batch")
	}
	if v, _ := Peek.Call(ctx, e.ref, "c"); v != 1 {
		t.Fatalf("cache c = %d after a failed commit, want 1", v)
	}
	if v, _ := Peek.Call(ctx, e.ref, "d"); v != -1 {
		t.Fatalf("cache d = %d after a failed commit, want absent", v)
	}
	// The reactor goes on.
	if _, err := Set.Call(ctx, e.ref, KV{K: "d", V: 4}); err != nil {
		t.Fatal(err)
	}
	if st := e.db.Stats(); st.CommitFailures != 1 {
		t.Fatalf("CommitFailures = %d", st.CommitFailures)
	}
}

func testReadPool(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Set.Call(ctx, e.ref, KV{K: "hold", V: 100}); err != nil {
		t.Fatal(err)
	}
	h := HoldReq{Started: make(chan struct{}), Gate: make(chan struct{})}
	gate := h.Gate
	done := make(chan error, 1)
	go func() { _, err := Hold.Call(ctx, e.ref, h); done <- err }()
	// While Hold keeps the writer's transaction open with hold=101 written,
	// the read pool answers at once with the committed value.
	<-h.Started
	readDone := make(chan int64, 1)
	go func() { v, _ := readKV(t, e.db, "hold"); readDone <- v }()
	select {
	case v := <-readDone:
		if v != 100 {
			t.Errorf("read pool saw uncommitted hold=%d, want 100", v)
		}
	case <-time.After(3 * time.Second):
		t.Error("read pool blocked behind the writer")
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, _ := readKV(t, e.db, "hold"); v != 101 {
		t.Fatalf("after commit hold=%d, want 101", v)
	}
}

func testCacheLRU(t *testing.T, open Opener) {
	e := start(t, open, 4)
	ctx := context.Background()
	for i := range 6 {
		if _, err := Set.Call(ctx, e.ref, KV{K: fmt.Sprint("l", i), V: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	st := e.db.Cache().Stats()
	if st.Len != 4 || st.Evictions < 2 {
		t.Fatalf("cache %+v: want 4 entries and ≥2 evictions", st)
	}
	if v, _ := Peek.Call(ctx, e.ref, "l0"); v != -1 {
		t.Fatal("least recently used entry l0 not evicted")
	}
	if v, _ := Peek.Call(ctx, e.ref, "l5"); v != 5 {
		t.Fatalf("most recent entry l5 = %d", v)
	}
	// An evicted row is loaded again from the database, correctly.
	if v, err := Get.Call(ctx, e.ref, "l0"); err != nil || v != 0 {
		t.Fatalf("reload l0 = %d, %v", v, err)
	}
	if v, err := Get.Call(ctx, e.ref, "l1"); err != nil || v != 1 {
		t.Fatalf("reload l1 = %d, %v", v, err)
	}
}

func testReopen(t *testing.T, open Opener) {
	e := start(t, open, 0)
	ctx := context.Background()
	for i := range 10 {
		if _, err := Set.Call(ctx, e.ref, KV{K: fmt.Sprint("r", i), V: int64(i * i)}); err != nil {
			t.Fatal(err)
		}
	}
	e.close()
	e2 := start(t, open, 0)
	for i := range 10 {
		if v, err := Get.Call(ctx, e2.ref, fmt.Sprint("r", i)); err != nil || v != int64(i*i) {
			t.Fatalf("after reopen r%d = %d, %v", i, v, err)
		}
	}
}
