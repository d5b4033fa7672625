package jobsmetrics_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobsmetrics"
	"github.com/reactorgo/reactor/reactortest"
)

// TestCollectorExportsEveryFigure drives a queue with a fake clock and
// checks every series the issue asks for on /metrics — depth, age of the
// oldest job, throughput, run latency p50/p99, attempts, dead letters —
// and the rest, with their values.
func TestCollectorExportsEveryFigure(t *testing.T) {
	ctx := context.Background()
	c := testutil.NewClock()
	quiet := slog.New(slog.DiscardHandler)
	rt, err := reactor.New(reactor.Config{Logger: quiet, Clock: c.Now, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := jobs.New(rt, jobs.Config{NoJournal: true, Logger: quiet, Clock: c.Now,
		Queues: map[string]jobs.QueueConfig{"mail": {MaxDepth: 10, TickInterval: -1, RetryAfterMax: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	enq := func() string {
		id, err := qs.EnqueueJSON(ctx, "mail", "email.send", []byte(`{}`), jobs.MaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Three completions in 10, 20 and 30ms, over 1s.
	for _, d := range []time.Duration{10, 20, 30} {
		enq()
		ls, _ := qs.Lease(ctx, "mail", "w", 1, 0)
		c.Advance(d * time.Millisecond)
		if err := qs.Complete(ctx, ls[0]); err != nil {
			t.Fatal(err)
		}
		c.Advance(440*time.Millisecond - d*time.Millisecond)
	}
	// One dead letter, one cancelled, one running, two due waiting 4s.
	enq()
	ls, _ := qs.Lease(ctx, "mail", "w", 1, 0)
	qs.Fail(ctx, ls[0], errors.New("boom"))
	qs.Cancel(ctx, "mail", enq())
	enq()
	qs.Lease(ctx, "mail", "w", 1, time.Hour)
	enq()
	enq()
	c.Advance(4 * time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(jobsmetrics.NewCollector(qs))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			got[mf.GetName()] = v
		}
	}
	// Completions at 0.01s, 0.46s and 0.91s after the first enqueue; the
	// rate counts them over the span since the first event in the window.
	for name, want := range map[string]float64{
		"jobs_stats_up":                 1,
		"jobs_queue_depth":              3,
		"jobs_queue_max_depth":          10,
		"jobs_queue_pending":            2,
		"jobs_queue_due":                2,
		"jobs_queue_running":            1,
		"jobs_queue_dead":               1,
		"jobs_queue_oldest_due_seconds": 4,
		"jobs_completed_total":          3,
		"jobs_failed_attempts_total":    1,
		"jobs_attempts_total":           5,
		"jobs_cancelled_total":          1,
		"jobs_run_seconds_p50":          0.02,
		"jobs_run_seconds_p99":          0.03,
	} {
		if v, ok := got[name]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (exported: %v), want %v", name, v, ok, want)
		}
	}
	for _, name := range []string{"jobs_throughput_per_second", "jobs_drain_per_second", "jobs_retry_after_seconds"} {
		if v, ok := got[name]; !ok || v <= 0 {
			t.Errorf("%s = %v (exported: %v), want > 0", name, v, ok)
		}
	}
	st, _ := qs.Stats(ctx)
	if got["jobs_throughput_per_second"] != st[0].Throughput || got["jobs_drain_per_second"] != st[0].Drain ||
		got["jobs_retry_after_seconds"] != st[0].RetryAfter.Seconds() {
		t.Errorf("rates differ from Stats: %v vs %+v", got, st[0])
	}
}
