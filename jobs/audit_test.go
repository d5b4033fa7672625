package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// Signup is a journaled service whose handler enqueues a job with a unique
// key in its turn (a transactional enqueue).
type Signup struct{ qs *jobs.Queues }

func (s *Signup) Welcome(c *reactor.Ctx, user string) (string, error) {
	return noop.Enqueue(c, s.qs, Note{"welcome " + user}, jobs.Unique("welcome:"+user))
}

var signupWelcome = reactor.Method("test.signup.welcome", (*Signup).Welcome)

// TestUniqueKeyTransactional: a transactional enqueue whose unique key is
// held adds no job; the id it returns is an alias that Get and Cancel
// resolve to the job holding the key, also after a restart (the alias is
// part of the queue's durable state). Once that job is finished the key is
// free again.
func TestUniqueKeyTransactional(t *testing.T) {
	clock := testutil.NewClock()
	fsys := faultfs.New()
	opts := appOpts{fsys: fsys, clock: clock.Now, queues: manual, register: func(rt *reactor.Runtime, qs *jobs.Queues) error {
		_, err := reactor.Register(rt, "/signup", &Signup{qs: qs}, reactor.Journaled())
		return err
	}}
	a := openApp(t, opts)
	ctx := context.Background()
	held, _ := noop.Enqueue(ctx, a.qs, Note{"first"}, jobs.Unique("welcome:bob"))
	alias, err := signupWelcome.Call(ctx, a.rt.Ref("/signup"), "bob")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the transactional enqueue to arrive", func() bool {
		info, err := a.qs.Get(ctx, "manual", alias)
		return err == nil && info.ID == held
	})
	if alias == held {
		t.Fatalf("the transactional enqueue chose the held id %q", alias)
	}
	if st, _ := a.qs.Stats(ctx); st[0].Pending != 1 {
		t.Fatalf("a duplicate transactional enqueue added a job: %+v", st[0])
	}
	a.close(t, false)
	a = openApp(t, opts)
	defer a.close(t, false)
	if info, err := a.qs.Get(ctx, "manual", alias); err != nil || info.ID != held {
		t.Fatalf("alias after a restart: %+v %v", info, err)
	}
	if err := a.qs.Cancel(ctx, "manual", alias); err != nil {
		t.Fatalf("cancel by alias: %v", err)
	}
	if info, _ := a.qs.Get(ctx, "manual", held); info.State != jobs.Cancelled {
		t.Fatalf("cancel by alias left %+v", info)
	}
	// The key is free: the next transactional enqueue makes a new job.
	id, err := signupWelcome.Call(ctx, a.rt.Ref("/signup"), "bob")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new job", func() bool {
		info, err := a.qs.Get(ctx, "manual", id)
		return err == nil && info.ID == id && info.State == jobs.Pending
	})
}

// block runs until released or its context ends, and records how many of
// its jobs run at once.
var blocked = struct {
	running, peak atomic.Int32
	release       chan struct{}
	mu            sync.Mutex
	cancelled     map[string]bool
}{cancelled: map[string]bool{}}

var block = jobs.Define("test.block", func(ctx context.Context, j *jobs.Job[Note]) error {
	n := blocked.running.Add(1)
	defer blocked.running.Add(-1)
	for {
		p := blocked.peak.Load()
		if n <= p || blocked.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-blocked.release:
		return nil
	case <-ctx.Done():
		blocked.mu.Lock()
		blocked.cancelled[j.ID] = true
		blocked.mu.Unlock()
		return ctx.Err()
	}
}, jobs.Queue("pool"))

// TestPoolConcurrencyAndLostLease: a pool never runs more than Workers jobs
// of its queue at once; cancelling a running job voids its lease, and the
// worker's next heartbeat, rejected, cancels the handler's context.
func TestPoolConcurrencyAndLostLease(t *testing.T) {
	blocked.release = make(chan struct{})
	blocked.peak.Store(0)
	a := openApp(t, appOpts{queues: map[string]jobs.QueueConfig{"pool": {Workers: 2, LeaseTime: 150 * time.Millisecond, PollInterval: 5 * time.Millisecond}}})
	defer a.close(t, false)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id, err := block.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitFor(t, "two running", func() bool { return blocked.running.Load() == 2 })
	time.Sleep(50 * time.Millisecond) // the pool polls ten times meanwhile
	if p := blocked.peak.Load(); p != 2 {
		t.Fatalf("%d ran at once with Workers 2", p)
	}
	// Cancel a running one: its handler's context ends at the next
	// heartbeat (every LeaseTime/3 = 50ms).
	var victim string
	for _, id := range ids {
		if state(t, a, "pool", id) == jobs.Running {
			victim = id
			break
		}
	}
	if err := a.qs.Cancel(ctx, "pool", victim); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cancelled job's handler to see its context end", func() bool {
		blocked.mu.Lock()
		defer blocked.mu.Unlock()
		return blocked.cancelled[victim]
	})
	close(blocked.release)
	for _, id := range ids {
		if id == victim {
			continue
		}
		waitFor(t, id+" completed", func() bool { return state(t, a, "pool", id) == jobs.Completed })
	}
	if s := state(t, a, "pool", victim); s != jobs.Cancelled {
		t.Fatalf("the cancelled job ended %s", s)
	}
	if p := blocked.peak.Load(); p != 2 {
		t.Fatalf("peak %d with Workers 2", p)
	}
}

// TestLeaseExpiryRerunsInPool: a worker takes a job and goes silent; when
// its lease expires (fake clock), the worker pool runs the job again, as
// attempt 2 with the expiry recorded; the silent worker's late completion
// is rejected by its fencing token and changes nothing.
func TestLeaseExpiryRerunsInPool(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, noPool: true,
		queues: map[string]jobs.QueueConfig{"work": {Workers: 2, LeaseTime: 10 * time.Second, PollInterval: 2 * time.Millisecond, TickInterval: -1}}})
	defer a.close(t, false)
	seen.Lock()
	clear(seen.runs)
	seen.Unlock()
	ctx := context.Background()
	id, err := record.Enqueue(ctx, a.qs, Note{"z"})
	if err != nil {
		t.Fatal(err)
	}
	zombie, err := a.qs.Lease(ctx, "work", "zombie", 1, 5*time.Second)
	if err != nil || len(zombie) != 1 || zombie[0].ID != id {
		t.Fatalf("zombie lease: %+v %v", zombie, err)
	}
	if err := a.qs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the pool polls: the job is leased, not runnable
	if runs(id) != 0 {
		t.Fatal("the pool ran a job leased to another worker")
	}
	clock.Advance(5*time.Second + time.Nanosecond)
	waitFor(t, "the re-run", func() bool { return state(t, a, "work", id) == jobs.Completed })
	info, _ := a.qs.Get(ctx, "work", id)
	if runs(id) != 1 || info.Attempt != 2 || len(info.Errors) != 1 || !strings.Contains(info.Errors[0].Error, "lease expired (worker zombie") ||
		info.Token <= zombie[0].Token {
		t.Fatalf("after the re-run: runs %d, %+v", runs(id), info)
	}
	if err := a.qs.Complete(ctx, zombie[0]); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("the zombie's completion: %v", err)
	}
	if after, _ := a.qs.Get(ctx, "work", id); after.State != jobs.Completed || after.Token != info.Token || after.FinishedAt != info.FinishedAt {
		t.Fatalf("the zombie changed the job: %+v", after)
	}
}

// TestRedriveNamedTwice: an id named twice (or by an alias too) is
// redriven once — counted once in the depth, leased once.
func TestRedriveNamedTwice(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	id, _ := noop.Enqueue(ctx, a.qs, Note{"d"}, jobs.MaxAttempts(1))
	l, _ := a.qs.Lease(ctx, "manual", "w", 1, 0)
	a.qs.Fail(ctx, l[0], errors.New("x"))
	if n, err := a.qs.Redrive(ctx, "manual", id, id); n != 1 || err != nil {
		t.Fatalf("redrive: %d %v", n, err)
	}
	if st, _ := a.qs.Stats(ctx); st[0].Depth != 1 || st[0].Pending != 1 {
		t.Fatalf("after redrive: %+v", st[0])
	}
	if ls, _ := a.qs.Lease(ctx, "manual", "w", 5, 0); len(ls) != 1 {
		t.Fatalf("leased %d", len(ls))
	}
}
