package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
)

type Note struct{ Text string }

// noop is for tests that lease by hand: no worker runs it.
var noop = jobs.Define("test.noop", func(context.Context, *jobs.Job[Note]) error { return nil }, jobs.Queue("manual"))

var manual = map[string]jobs.QueueConfig{"manual": {LeaseTime: 10 * time.Second, TickInterval: -1}}

// seen records the notes the worker kind ran, by job id.
var seen = struct {
	sync.Mutex
	runs map[string]int
}{runs: map[string]int{}}

var record = jobs.Define("test.record", func(_ context.Context, j *jobs.Job[Note]) error {
	seen.Lock()
	seen.runs[j.ID]++
	seen.Unlock()
	return nil
}, jobs.Queue("work"))

func runs(id string) int {
	seen.Lock()
	defer seen.Unlock()
	return seen.runs[id]
}

func state(t *testing.T, a *app, queue, id string) jobs.State {
	t.Helper()
	info, err := a.qs.Get(context.Background(), queue, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return info.State
}

func TestEnqueueRunComplete(t *testing.T) {
	a := openApp(t, appOpts{queues: map[string]jobs.QueueConfig{"work": {Workers: 4, PollInterval: 5 * time.Millisecond}}})
	defer a.close(t, false)
	seen.Lock()
	clear(seen.runs) // ids restart with every fresh journal (-count=N)
	seen.Unlock()
	ctx := context.Background()
	var ids []string
	for i := range 20 {
		id, err := record.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		waitFor(t, id+" completed", func() bool { return state(t, a, "work", id) == jobs.Completed })
		if n := runs(id); n != 1 {
			t.Errorf("%s ran %d times", id, n)
		}
	}
	st, _ := a.qs.Stats(ctx)
	if len(st) != 1 || st[0].Completed != 20 || st[0].Pending != 0 || st[0].Running != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// A lease past its deadline makes the job runnable again; the new lease has
// a higher fencing token, and the zombie's late heartbeat, completion and
// failure are all rejected.
func TestLeaseExpiryAndFencing(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	id, err := noop.Enqueue(ctx, a.qs, Note{"x"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.qs.Lease(ctx, "manual", "zombie", 1, 0)
	if err != nil || len(first) != 1 || first[0].ID != id || first[0].Attempt != 1 {
		t.Fatalf("first lease: %+v %v", first, err)
	}
	if again, _ := a.qs.Lease(ctx, "manual", "other", 1, 0); len(again) != 0 {
		t.Fatalf("a leased job was leased twice: %+v", again)
	}
	// A heartbeat within the lease extends it.
	clock.Advance(8 * time.Second)
	until, err := a.qs.Heartbeat(ctx, first[0], 0)
	if err != nil || !until.Equal(clock.Now().Add(10*time.Second)) {
		t.Fatalf("heartbeat: %v %v", until, err)
	}
	clock.Advance(9 * time.Second) // still inside the extended lease
	if again, _ := a.qs.Lease(ctx, "manual", "other", 1, 0); len(again) != 0 {
		t.Fatalf("leased while the heartbeat kept the lease: %+v", again)
	}
	clock.Advance(2 * time.Second) // past it: the zombie stopped heartbeating
	second, err := a.qs.Lease(ctx, "manual", "rescuer", 1, 0)
	if err != nil || len(second) != 1 || second[0].ID != id || second[0].Attempt != 2 || second[0].Token <= first[0].Token {
		t.Fatalf("lease after expiry: %+v %v", second, err)
	}
	if _, err := a.qs.Heartbeat(ctx, first[0], 0); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("zombie heartbeat: %v", err)
	}
	if err := a.qs.Complete(ctx, first[0]); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("zombie completion: %v", err)
	}
	if _, err := a.qs.Fail(ctx, first[0], errors.New("boom")); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("zombie failure: %v", err)
	}
	if err := a.qs.Complete(ctx, second[0]); err != nil {
		t.Fatalf("current completion: %v", err)
	}
	info, _ := a.qs.Get(ctx, "manual", id)
	if info.State != jobs.Completed || info.Attempt != 2 || len(info.Errors) != 1 {
		t.Fatalf("after completion: %+v", info)
	}
	if err := a.qs.Complete(ctx, second[0]); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("second completion: %v", err)
	}
}

// A completion after the deadline is rejected even if nobody took the job
// meanwhile: the token is valid until its deadline, not after.
func TestCompletionAfterDeadlineRejected(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	id, _ := noop.Enqueue(ctx, a.qs, Note{"late"})
	l, _ := a.qs.Lease(ctx, "manual", "slow", 1, time.Second)
	clock.Advance(2 * time.Second)
	if err := a.qs.Complete(ctx, l[0]); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("late completion: %v", err)
	}
	if s := state(t, a, "manual", id); s != jobs.Pending {
		t.Fatalf("state after a rejected late completion: %s", s)
	}
}

func TestBackoffMaxAttemptsDeadLetterRedrivePurge(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	id, _ := noop.Enqueue(ctx, a.qs, Note{"flaky"}, jobs.MaxAttempts(3), jobs.Backoff(time.Second, 3*time.Second))
	windows := []time.Duration{time.Second, 2 * time.Second}
	for attempt := 1; attempt <= 3; attempt++ {
		clock.Advance(time.Hour)
		l, err := a.qs.Lease(ctx, "manual", "w", 1, 0)
		if err != nil || len(l) != 1 || l[0].Attempt != attempt {
			t.Fatalf("attempt %d: %+v %v", attempt, l, err)
		}
		next, err := a.qs.Fail(ctx, l[0], fmt.Errorf("try %d", attempt))
		if err != nil {
			t.Fatal(err)
		}
		if attempt == 3 {
			if !next.IsZero() {
				t.Fatalf("the last attempt was rescheduled at %v", next)
			}
			break
		}
		if d := next.Sub(clock.Now()); d < 0 || d >= windows[attempt-1] {
			t.Fatalf("attempt %d: retry in %v, want in [0, %v)", attempt, d, windows[attempt-1])
		}
	}
	dead, err := a.qs.Dead(ctx, "manual", 0)
	if err != nil || len(dead) != 1 || dead[0].ID != id || len(dead[0].Errors) != 3 || dead[0].Errors[2].Error != "try 3" {
		t.Fatalf("dead letters: %+v %v", dead, err)
	}
	if l, _ := a.qs.Lease(ctx, "manual", "w", 1, 0); len(l) != 0 {
		t.Fatalf("a dead job was leased: %+v", l)
	}
	// Redrive: a fresh set of attempts.
	if n, err := a.qs.Redrive(ctx, "manual", id); n != 1 || err != nil {
		t.Fatalf("redrive: %d %v", n, err)
	}
	l, _ := a.qs.Lease(ctx, "manual", "w", 1, 0)
	if len(l) != 1 || l[0].ID != id || l[0].Attempt != 1 {
		t.Fatalf("lease after redrive: %+v", l)
	}
	// A permanent failure dead-letters at once; purge deletes it.
	if _, err := a.qs.Fail(ctx, l[0], jobs.Permanent(errors.New("bad input"))); err != nil {
		t.Fatal(err)
	}
	if s := state(t, a, "manual", id); s != jobs.Dead {
		t.Fatalf("after a permanent failure: %s", s)
	}
	if n, err := a.qs.Purge(ctx, "manual"); n != 1 || err != nil {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := a.qs.Get(ctx, "manual", id); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("get after purge: %v", err)
	}
}

// Full jitter: the first retry delays of many jobs are spread over [0, base).
func TestBackoffJitter(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	for i := range 40 {
		noop.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)}, jobs.Backoff(10*time.Second, time.Minute))
	}
	ls, _ := a.qs.Lease(ctx, "manual", "w", 40, 0)
	if len(ls) != 40 {
		t.Fatalf("leased %d", len(ls))
	}
	var lo, hi time.Duration = time.Hour, 0
	for _, l := range ls {
		next, err := a.qs.Fail(ctx, l, errors.New("x"))
		if err != nil {
			t.Fatal(err)
		}
		d := next.Sub(clock.Now())
		lo, hi = min(lo, d), max(hi, d)
		if d < 0 || d >= 10*time.Second {
			t.Fatalf("delay %v outside [0, 10s)", d)
		}
	}
	if hi-lo < 5*time.Second {
		t.Fatalf("delays not spread: %v..%v", lo, hi)
	}
}

func TestUniqueKeys(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	id1, _ := noop.Enqueue(ctx, a.qs, Note{"a"}, jobs.Unique("user-7"))
	id2, err := noop.Enqueue(ctx, a.qs, Note{"b"}, jobs.Unique("user-7"))
	if err != nil || id2 != id1 {
		t.Fatalf("duplicate enqueue: %q %v, want %q", id2, err, id1)
	}
	other, _ := noop.Enqueue(ctx, a.qs, Note{"c"}, jobs.Unique("user-8"))
	if other == id1 {
		t.Fatal("different keys, same job")
	}
	l, _ := a.qs.Lease(ctx, "manual", "w", 2, 0)
	for _, x := range l {
		a.qs.Complete(ctx, x)
	}
	id3, _ := noop.Enqueue(ctx, a.qs, Note{"d"}, jobs.Unique("user-7"))
	if id3 == id1 {
		t.Fatal("a finished job still holds its unique key")
	}
}

func TestRunAtAndPriorityOrder(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	enq := func(text string, opts ...jobs.Option) {
		if _, err := noop.Enqueue(ctx, a.qs, Note{text}, opts...); err != nil {
			t.Fatal(err)
		}
	}
	enq("at+3", jobs.Delay(3*time.Second))
	enq("at+1", jobs.RunAt(clock.Now().Add(time.Second)))
	enq("at+2", jobs.Delay(2*time.Second), jobs.Priority(9))
	enq("now")
	enq("now-urgent", jobs.Priority(5))
	enq("now-2")
	order := func() []string {
		ls, err := a.qs.Lease(ctx, "manual", "w", 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range ls {
			var n Note
			fmt.Sscanf(string(l.Args), `{"Text":%q}`, &n.Text)
			out = append(out, n.Text)
		}
		return out
	}
	if got := fmt.Sprint(order()); got != "[now-urgent now now-2]" {
		t.Fatalf("due now: %s", got)
	}
	clock.Advance(1500 * time.Millisecond)
	if got := fmt.Sprint(order()); got != "[at+1]" {
		t.Fatalf("after 1.5s: %s", got)
	}
	clock.Advance(5 * time.Second)
	if got := fmt.Sprint(order()); got != "[at+2 at+3]" {
		t.Fatalf("after 6.5s: %s", got)
	}
}

func TestQueueFullIsBusy(t *testing.T) {
	a := openApp(t, appOpts{queues: map[string]jobs.QueueConfig{"manual": {MaxDepth: 2, TickInterval: -1}}})
	defer a.close(t, false)
	ctx := context.Background()
	for i := range 2 {
		if _, err := noop.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := noop.Enqueue(ctx, a.qs, Note{"3"})
	if !errors.Is(err, reactor.ErrBusy) || reactor.CodeOf(err) != reactor.CodeUnavailable {
		t.Fatalf("third enqueue: %v", err)
	}
	l, _ := a.qs.Lease(ctx, "manual", "w", 1, 0)
	a.qs.Complete(ctx, l[0])
	if _, err := noop.Enqueue(ctx, a.qs, Note{"3"}); err != nil {
		t.Fatalf("after one completed: %v", err)
	}
}

func TestCancel(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	pending, _ := noop.Enqueue(ctx, a.qs, Note{"p"}, jobs.Delay(time.Minute))
	running, _ := noop.Enqueue(ctx, a.qs, Note{"r"})
	l, _ := a.qs.Lease(ctx, "manual", "w", 5, 0)
	if len(l) != 1 || l[0].ID != running {
		t.Fatalf("lease: %+v", l)
	}
	for _, id := range []string{pending, running} {
		if err := a.qs.Cancel(ctx, "manual", id); err != nil {
			t.Fatal(err)
		}
		if s := state(t, a, "manual", id); s != jobs.Cancelled {
			t.Fatalf("%s: %s", id, s)
		}
	}
	if err := a.qs.Complete(ctx, l[0]); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("completion of a cancelled job: %v", err)
	}
	if err := a.qs.Cancel(ctx, "manual", pending); !errors.Is(err, jobs.ErrFinished) {
		t.Fatalf("second cancel: %v", err)
	}
	clock.Advance(time.Hour)
	if l, _ := a.qs.Lease(ctx, "manual", "w", 5, 0); len(l) != 0 {
		t.Fatalf("a cancelled job was leased: %+v", l)
	}
}
