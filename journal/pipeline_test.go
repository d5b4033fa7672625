package journal_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// The writer does not wait for done callbacks: batch N+1 is written and synced
// while the callbacks of batch N still run. Its callbacks still wait for N's
// (seq order), and a fail-stop on batch N+2 while N's callbacks run neither
// acknowledges N+2 nor fails the already synced N and N+1.
func TestCallbacksPipelinedFailStop(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys})
	defer j.Close()
	ctx := context.Background()
	var (
		mu    sync.Mutex
		order []uint64
		errs  = map[uint64]error{}
		wg    sync.WaitGroup
	)
	record := func(seq uint64, err error) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := errs[seq]; dup {
			t.Errorf("done called twice for seq %d", seq)
		}
		order = append(order, seq)
		errs[seq] = err
	}
	inCb, unblock := make(chan struct{}), make(chan struct{})
	var later atomic.Int64 // callbacks of N+1, N+2 that fired
	wg.Add(3)
	// Batch N: its callback blocks until unblock.
	if _, err := j.Append(ctx, rec(0), func(seq uint64, err error) {
		record(seq, err)
		close(inCb)
		<-unblock
		wg.Done()
	}); err != nil {
		t.Fatal(err)
	}
	<-inCb
	// Batch N+1 is written and synced although N's callback still runs.
	fsyncs := j.Stats().Fsyncs
	if _, err := j.Append(ctx, rec(1), func(seq uint64, err error) {
		later.Add(1)
		record(seq, err)
		wg.Done()
	}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return j.Stats().Fsyncs > fsyncs })
	// Batch N+2's fsync fails with EIO: fail-stop while N's callback runs.
	fsys.FailNth(faultfs.OpSync, 1, syscall.EIO)
	if _, err := j.Append(ctx, rec(2), func(seq uint64, err error) {
		later.Add(1)
		record(seq, err)
		wg.Done()
	}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return j.Stats().Err != nil })
	if _, err := j.Append(ctx, rec(3), nil); !errors.Is(err, journal.ErrFailed) {
		t.Fatalf("Append after fail-stop: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := later.Load(); n != 0 {
		t.Fatalf("%d later callbacks ran before batch N's returned", n)
	}
	if st := j.Stats(); st.Pending != 3 {
		t.Fatalf("pending %d, want 3 (room is freed after the callbacks)", st.Pending)
	}
	close(unblock)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("done order %v", order)
	}
	if errs[1] != nil || errs[2] != nil {
		t.Fatalf("synced batches failed: %v, %v", errs[1], errs[2])
	}
	if !errors.Is(errs[3], journal.ErrFailed) || !errors.Is(errs[3], syscall.EIO) {
		t.Fatalf("seq 3: %v, want ErrFailed wrapping EIO", errs[3])
	}
	testutil.WaitFor(t, func() bool { return j.Stats().Pending == 0 })
	if st := j.Stats(); st.Acked != 2 || st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Close returns only after every done callback has returned.
func TestCloseWaitsForCallbacks(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys})
	inCb, unblock := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	for i := 0; i < 10; i++ {
		cb := func(uint64, error) { calls.Add(1) }
		if i == 0 {
			cb = func(uint64, error) { close(inCb); <-unblock; calls.Add(1) }
		}
		if _, err := j.Append(context.Background(), rec(i), cb); err != nil {
			t.Fatal(err)
		}
	}
	<-inCb
	closed := make(chan error)
	go func() { closed <- j.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a callback was running", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(unblock)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 10 {
		t.Fatalf("%d callbacks after Close", n)
	}
}

// Append encodes records for the active segment. A batch that spans segments
// (rolled while it is written) and records queued while the writer creates a
// segment must be re-checksummed for the new segment's salt: reopening
// verifies every checksum.
func TestRollReencodesQueued(t *testing.T) {
	fsys := faultfs.New()
	opts := journal.Options{Dir: "/j", FS: fsys, SegmentSize: 4096}
	j := open(t, opts)
	var (
		syncGate, dirGate       = make(chan struct{}), make(chan struct{})
		syncBlocked, dirBlocked = make(chan struct{}), make(chan struct{})
		syncOnce, dirOnce       sync.Once
	)
	fsys.SetHook(func(op faultfs.Op, name string) error {
		switch {
		case op == faultfs.OpSync && strings.HasSuffix(name, ".wal"):
			syncOnce.Do(func() { close(syncBlocked); <-syncGate })
		case op == faultfs.OpSyncDir:
			dirOnce.Do(func() { close(dirBlocked); <-dirGate })
		}
		return nil
	})
	const n1, n2 = 200, 100
	var wg sync.WaitGroup
	var failed atomic.Int64
	app := func(i int) {
		wg.Add(1)
		if _, err := j.Append(context.Background(), rec(i), func(_ uint64, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	app(0)
	<-syncBlocked // first batch in fdatasync: queue one spanning several segments
	for i := 1; i < n1; i++ {
		app(i)
	}
	close(syncGate)
	<-dirBlocked // the writer is creating the next segment: queue more under the old salt
	for i := n1; i < n1+n2; i++ {
		app(i)
	}
	close(dirGate)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d records failed", n)
	}
	if st := j.Stats(); st.Segments < 4 {
		t.Fatalf("only %d segments", st.Segments)
	}
	if got := replayAll(t, j, 0); len(got) != n1+n2 {
		t.Fatalf("replay: %d records", len(got))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	fsys.Crash()
	j = open(t, opts)
	defer j.Close()
	got := replayAll(t, j, 0)
	if len(got) != n1+n2 {
		t.Fatalf("after reopen: %d records", len(got))
	}
	for k := range got {
		checkRec(t, &got[k], k, uint64(k+1))
	}
}
