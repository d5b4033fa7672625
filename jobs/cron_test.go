package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// TestCronScheduleFakeClock drives an hourly schedule with a fake clock:
// nothing before the tick, one job at the tick (its id and unique key carry
// the tick time), missed ticks coalesced into the latest, and the schedule
// survives a crash without running a tick twice.
func TestCronScheduleFakeClock(t *testing.T) {
	clock := testutil.NewClock() // 2026-01-02 03:04:05 UTC
	fsys := faultfs.New()
	proc := faultfs.NewProcess(fsys)
	a := openApp(t, appOpts{fsys: proc, clock: clock.Now, queues: manual})
	ctx := context.Background()
	if err := noop.Schedule(ctx, a.qs, "hourly", "0 * * * *", Note{"tick"}, jobs.Priority(3)); err != nil {
		t.Fatal(err)
	}
	if err := noop.Schedule(ctx, a.qs, "bad", "61 * * * *", Note{"x"}); err == nil {
		t.Fatal("an invalid spec was accepted")
	}
	lease := func() []jobs.Lease {
		t.Helper()
		ls, err := a.qs.Lease(ctx, "manual", "w", 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	at := func(h, m int) time.Time { return time.Date(2026, 1, 2, h, m, 0, 0, time.UTC) }
	cronID := func(tick time.Time) string { return "cron:hourly:" + strconv.FormatInt(tick.UnixNano(), 10) }

	if ls := lease(); len(ls) != 0 {
		t.Fatalf("leased before the first tick: %+v", ls)
	}
	sc, _ := a.qs.Schedules(ctx, "manual")
	if len(sc) != 1 || !sc[0].Next.Equal(at(4, 0)) {
		t.Fatalf("schedules: %+v", sc)
	}
	clock.Advance(at(4, 0).Sub(clock.Now()) - time.Nanosecond)
	if ls := lease(); len(ls) != 0 {
		t.Fatalf("leased 1ns before the tick: %+v", ls)
	}
	clock.Advance(time.Nanosecond)
	ls := lease()
	if len(ls) != 1 || ls[0].ID != cronID(at(4, 0)) || !ls[0].RunAt.Equal(at(4, 0)) || ls[0].Priority != 3 ||
		ls[0].Unique != cronID(at(4, 0)) || string(ls[0].Args) != `{"Text":"tick"}` {
		t.Fatalf("lease at the tick: %+v", ls)
	}
	a.qs.Complete(ctx, ls[0])

	// Down from 04:10 to 07:30: the 05:00, 06:00 and 07:00 ticks passed;
	// only the latest runs.
	clock.Advance(3*time.Hour + 30*time.Minute)
	ls = lease()
	if len(ls) != 1 || ls[0].ID != cronID(at(7, 0)) {
		t.Fatalf("after the gap: %+v", ls)
	}
	sc, _ = a.qs.Schedules(ctx, "manual")
	if sc[0].Missed != 2 || !sc[0].Next.Equal(at(8, 0)) || sc[0].LastJob != cronID(at(7, 0)) {
		t.Fatalf("after the gap: %+v", sc[0])
	}
	a.qs.Complete(ctx, ls[0])

	// Crash right after the 08:00 tick was enqueued (the lease that fired it
	// returned, so it is durable). After recovery the schedule points at
	// 09:00 and the 08:00 job exists once; re-declaring the schedule at
	// start-up changes nothing.
	clock.Advance(30 * time.Minute)
	if ls := lease(); len(ls) != 1 || ls[0].ID != cronID(at(8, 0)) {
		t.Fatalf("08:00: %+v", ls)
	}
	proc.Kill()
	fsys.Crash()
	a.close(t, true)
	a = openApp(t, appOpts{fsys: faultfs.NewProcess(fsys), clock: clock.Now, queues: manual})
	defer a.close(t, false)
	if err := noop.Schedule(ctx, a.qs, "hourly", "0 * * * *", Note{"tick"}, jobs.Priority(3)); err != nil {
		t.Fatal(err)
	}
	sc, _ = a.qs.Schedules(ctx, "manual")
	if len(sc) != 1 || !sc[0].Next.Equal(at(9, 0)) {
		t.Fatalf("after the crash: %+v", sc)
	}
	info, err := a.qs.Get(ctx, "manual", cronID(at(8, 0)))
	if err != nil || info.State != jobs.Running {
		t.Fatalf("08:00 job after the crash: %+v %v", info, err)
	}
	// Its lease expires and it runs again: the same job, not a second one.
	clock.Advance(20 * time.Second)
	ls = lease()
	if len(ls) != 1 || ls[0].ID != cronID(at(8, 0)) || ls[0].Attempt != 2 {
		t.Fatalf("after the lease expired: %+v", ls)
	}
	st, _ := a.qs.Stats(ctx)
	if st[0].Pending+st[0].Running != 1 || st[0].Schedules != 1 {
		t.Fatalf("stats: %+v", st[0])
	}

	// A changed spec recomputes the next tick; Unschedule stops it.
	if err := noop.Schedule(ctx, a.qs, "hourly", "*/15 * * * *", Note{"tick"}); err != nil {
		t.Fatal(err)
	}
	sc, _ = a.qs.Schedules(ctx, "manual")
	if !sc[0].Next.Equal(at(8, 15)) {
		t.Fatalf("after the spec changed at %v: next %v", clock.Now(), sc[0].Next)
	}
	if err := a.qs.Unschedule(ctx, "manual", "hourly"); err != nil {
		t.Fatal(err)
	}
	if err := a.qs.Unschedule(ctx, "manual", "hourly"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("second unschedule: %v", err)
	}
	clock.Advance(2 * time.Hour)
	if ls := lease(); len(ls) != 1 || ls[0].ID != cronID(at(8, 0)) { // only the expired 08:00 lease again
		t.Fatalf("after unschedule: %+v", ls)
	}
}

// TestCronSecondsAndZones: the optional seconds field, descriptors and
// CRON_TZ.
func TestCronSecondsAndZones(t *testing.T) {
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Time{
		"*/20 * * * * *":                base.Add(20 * time.Second),
		"@every 90s":                    base.Add(90 * time.Second),
		"@daily":                        time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC),
		"30 6 * * *":                    time.Date(2026, 3, 2, 6, 30, 0, 0, time.UTC),
		"CRON_TZ=Asia/Tokyo 0 20 * * *": time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC),
	} {
		got, err := jobs.ParseSpec(spec, base)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if !got.Equal(want) {
			t.Errorf("%s: next %v, want %v", spec, got, want)
		}
	}
	if _, err := jobs.ParseSpec("every day", base); err == nil {
		t.Fatal("nonsense accepted")
	}
}

// A worker pool runs a schedule's jobs by itself once the fake clock
// reaches the tick (the pool peeks the schedules' next tick).
func TestCronRunsInPool(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: map[string]jobs.QueueConfig{"work": {Workers: 2, PollInterval: 2 * time.Millisecond, TickInterval: -1}}})
	defer a.close(t, false)
	seen.Lock()
	clear(seen.runs) // the fake clock makes the same cron ids in every run (-count=N)
	seen.Unlock()
	ctx := context.Background()
	if err := record.Schedule(ctx, a.qs, "every-minute", "* * * * *", Note{"m"}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		clock.Advance(time.Minute)
		waitFor(t, fmt.Sprintf("tick %d ran", i), func() bool {
			st, _ := a.qs.Stats(ctx)
			return st[0].Completed == uint64(i+1)
		})
	}
	sc, _ := a.qs.Schedules(ctx, "work")
	id := sc[0].LastJob
	if runs(id) != 1 {
		t.Fatalf("%s ran %d times", id, runs(id))
	}
}

// TestRateLimitPerKind: a kind limited to 10/s with a burst of 2 starts two
// jobs, then one per 100ms of the (fake) clock, while an unlimited kind in
// the same queue runs at once although the throttled jobs are ahead of it.
func TestRateLimitPerKind(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: map[string]jobs.QueueConfig{"rl": {Workers: 4, PollInterval: 2 * time.Millisecond, TickInterval: -1}}})
	defer a.close(t, false)
	ctx := context.Background()
	var ids []string
	for i := range 6 {
		id, err := limited.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)}, jobs.Priority(9))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	completed := func() int {
		st, _ := a.qs.Stats(ctx)
		return int(st[0].Completed)
	}
	waitFor(t, "burst", func() bool { return completed() == 2 })
	free, err := record.Enqueue(ctx, a.qs, Note{"free"}, jobs.Queue("rl"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unlimited kind", func() bool { return state(t, a, "rl", free) == jobs.Completed })
	time.Sleep(30 * time.Millisecond) // the pool polls many times meanwhile: still no token
	if n := completed(); n != 3 {
		t.Fatalf("%d completed without a new token", n)
	}
	clock.Advance(100 * time.Millisecond)
	waitFor(t, "one token", func() bool { return completed() == 4 })
	clock.Advance(time.Second) // refills to the burst (2), not 10
	waitFor(t, "refill", func() bool { return completed() == 6 })
	clock.Advance(100 * time.Millisecond)
	waitFor(t, "last", func() bool { return completed() == 7 })
	for _, id := range ids {
		if s := state(t, a, "rl", id); s != jobs.Completed {
			t.Fatalf("%s: %s", id, s)
		}
	}
}

var limited = jobs.Define("test.limited", func(context.Context, *jobs.Job[Note]) error { return nil },
	jobs.Queue("rl"), jobs.RateLimit(10, 2))

// TestMaxRunning caps the running jobs of a queue across workers.
func TestMaxRunning(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: map[string]jobs.QueueConfig{"manual": {MaxRunning: 2, TickInterval: -1}}})
	defer a.close(t, false)
	ctx := context.Background()
	for i := range 5 {
		noop.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)})
	}
	ls, _ := a.qs.Lease(ctx, "manual", "w1", 5, 0)
	if len(ls) != 2 {
		t.Fatalf("leased %d, MaxRunning 2", len(ls))
	}
	if more, _ := a.qs.Lease(ctx, "manual", "w2", 5, 0); len(more) != 0 {
		t.Fatalf("another worker leased %d beyond MaxRunning", len(more))
	}
	a.qs.Complete(ctx, ls[0])
	if more, _ := a.qs.Lease(ctx, "manual", "w2", 5, 0); len(more) != 1 {
		t.Fatalf("after a completion: %d", len(more))
	}
}

// TestBusyRetryAfterLittlesLaw: a full queue refuses with a BusyError whose
// Retry-After is depth / drain rate, clamped, and which survives the
// runtime's error encoding.
func TestBusyRetryAfterLittlesLaw(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: map[string]jobs.QueueConfig{"manual": {MaxDepth: 4, TickInterval: -1, RetryAfterMax: time.Minute}}})
	defer a.close(t, false)
	ctx := context.Background()
	fill := func() {
		for {
			if _, err := noop.Enqueue(ctx, a.qs, Note{"x"}); err != nil {
				return
			}
		}
	}
	fill()
	_, err := noop.Enqueue(ctx, a.qs, Note{"over"})
	var be *jobs.BusyError
	if !errors.As(err, &be) || !errors.Is(err, reactor.ErrBusy) || reactor.CodeOf(err) != reactor.CodeUnavailable {
		t.Fatalf("over the depth: %v", err)
	}
	if be.Wait != time.Minute || be.Depth != 4 || jobs.RetryAfterSeconds(err) != 60 {
		t.Fatalf("nothing drained yet: %+v", be)
	}
	// Drain 2 jobs over 10s: 0.2 jobs/s; refill to 4: W = 4 / 0.2 = 20s.
	for range 2 {
		ls, _ := a.qs.Lease(ctx, "manual", "w", 1, time.Hour)
		clock.Advance(5 * time.Second)
		if err := a.qs.Complete(ctx, ls[0]); err != nil {
			t.Fatal(err)
		}
	}
	fill()
	_, err = noop.Enqueue(ctx, a.qs, Note{"over"})
	if !errors.As(err, &be) || be.Wait != 20*time.Second || jobs.RetryAfter(err) != 20*time.Second {
		t.Fatalf("after draining: %v (%+v)", err, be)
	}
	st, _ := a.qs.Stats(ctx)
	if st[0].RetryAfter != 20*time.Second || st[0].Depth != 4 || st[0].MaxDepth != 4 {
		t.Fatalf("stats: %+v", st[0])
	}
	// Across the runtime's error encoding (idempotency table, replay).
	b, _ := json.Marshal(reactor.ErrorOf(err))
	var back reactor.Error
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var be2 *jobs.BusyError
	if !errors.As(&back, &be2) || be2.Wait != 20*time.Second || !errors.Is(&back, reactor.ErrBusy) || jobs.RetryAfterSeconds(&back) != 20 {
		t.Fatalf("restored: %#v", back)
	}
	// Fast drain: clamped to at least a second.
	for range 4 {
		ls, _ := a.qs.Lease(ctx, "manual", "w", 1, time.Hour)
		a.qs.Complete(ctx, ls[0])
	}
	for range 200 {
		ls, _ := noop.Enqueue(ctx, a.qs, Note{"y"})
		l, _ := a.qs.Lease(ctx, "manual", "w", 1, time.Hour)
		_ = ls
		a.qs.Complete(ctx, l[0])
	}
	fill()
	_, err = noop.Enqueue(ctx, a.qs, Note{"over"})
	if !errors.As(err, &be) || be.Wait != time.Second {
		t.Fatalf("fast drain: %+v", be)
	}
}

// TestStatsLatencyThroughput: run-time percentiles and throughput from the
// queue's clock.
func TestStatsLatencyThroughput(t *testing.T) {
	clock := testutil.NewClock()
	a := openApp(t, appOpts{clock: clock.Now, queues: manual})
	defer a.close(t, false)
	ctx := context.Background()
	for i := range 100 {
		noop.Enqueue(ctx, a.qs, Note{fmt.Sprint(i)})
	}
	for i := range 100 {
		ls, _ := a.qs.Lease(ctx, "manual", "w", 1, 0)
		clock.Advance(time.Duration(i+1) * time.Millisecond) // runs of 1..100ms
		if err := a.qs.Complete(ctx, ls[0]); err != nil {
			t.Fatal(err)
		}
	}
	ls, _ := noop.Enqueue(ctx, a.qs, Note{"dead"}, jobs.MaxAttempts(1))
	l, _ := a.qs.Lease(ctx, "manual", "w", 1, 0)
	a.qs.Fail(ctx, l[0], errors.New("boom"))
	_ = ls
	st, _ := a.qs.Stats(ctx)
	s := st[0]
	if s.RunP50 != 51*time.Millisecond || s.RunP99 != 100*time.Millisecond {
		t.Fatalf("p50 %v p99 %v", s.RunP50, s.RunP99)
	}
	// 100 completions over 5.05s (the whole span since the first).
	if s.Throughput < 19 || s.Throughput > 21 || s.Attempts != 101 || s.Dead != 1 || s.Completed != 100 {
		t.Fatalf("stats: %+v", s)
	}
}
