// Package jobsmetrics exports the jobs queues' Stats as Prometheus metrics:
// per queue depth, due and running jobs, age of the oldest due job,
// completions, failed attempts, attempts, dead letters, throughput, run
// latency p50/p99 and the Retry-After a refused enqueue would get.
//
//	reg.MustRegister(jobsmetrics.NewCollector(qs))
package jobsmetrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactorgo/reactor/jobs"
)

var (
	labels       = []string{"queue"}
	descDepth    = prometheus.NewDesc("jobs_queue_depth", "Pending and running jobs (what MaxDepth bounds).", labels, nil)
	descMax      = prometheus.NewDesc("jobs_queue_max_depth", "MaxDepth of the queue.", labels, nil)
	descPending  = prometheus.NewDesc("jobs_queue_pending", "Pending jobs, including those scheduled for later.", labels, nil)
	descDue      = prometheus.NewDesc("jobs_queue_due", "Pending jobs runnable now.", labels, nil)
	descRunning  = prometheus.NewDesc("jobs_queue_running", "Jobs leased to a worker.", labels, nil)
	descDead     = prometheus.NewDesc("jobs_queue_dead", "Jobs in the dead-letter set.", labels, nil)
	descOldest   = prometheus.NewDesc("jobs_queue_oldest_due_seconds", "How long the oldest runnable job has waited.", labels, nil)
	descDone     = prometheus.NewDesc("jobs_completed_total", "Jobs completed.", labels, nil)
	descFailed   = prometheus.NewDesc("jobs_failed_attempts_total", "Attempts that failed (errors and expired leases).", labels, nil)
	descAttempts = prometheus.NewDesc("jobs_attempts_total", "Attempts started (leases handed out).", labels, nil)
	descCancel   = prometheus.NewDesc("jobs_cancelled_total", "Jobs cancelled.", labels, nil)
	descThru     = prometheus.NewDesc("jobs_throughput_per_second", "Completions per second over the last minute.", labels, nil)
	descDrain    = prometheus.NewDesc("jobs_drain_per_second", "Jobs leaving the queue (completed, dead, cancelled) per second over the last minute.", labels, nil)
	descP50      = prometheus.NewDesc("jobs_run_seconds_p50", "Median run time (lease to completion) of the last 1024 completed attempts.", labels, nil)
	descP99      = prometheus.NewDesc("jobs_run_seconds_p99", "99th percentile run time of the last 1024 completed attempts.", labels, nil)
	descRetry    = prometheus.NewDesc("jobs_retry_after_seconds", "Retry-After a refused enqueue would carry now (depth / drain rate).", labels, nil)
	descUp       = prometheus.NewDesc("jobs_stats_up", "1 if the queues answered the scrape, else 0.", nil, nil)
)

// Collector reads jobs.Queues.Stats at scrape time.
type Collector struct {
	qs      *jobs.Queues
	timeout time.Duration
	log     *slog.Logger
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector for qs (each scrape asks every queue,
// waiting at most 5s).
func NewCollector(qs *jobs.Queues) *Collector {
	return &Collector{qs: qs, timeout: 5 * time.Second, log: slog.Default()}
}

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.qs.Stats(ctx)
	if err != nil {
		c.log.Warn("jobsmetrics: stats", "err", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for _, s := range st {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Queue)
		}
		n := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), s.Queue)
		}
		g(descDepth, float64(s.Depth))
		g(descMax, float64(s.MaxDepth))
		g(descPending, float64(s.Pending))
		g(descDue, float64(s.Due))
		g(descRunning, float64(s.Running))
		g(descDead, float64(s.Dead))
		g(descOldest, s.OldestDue.Seconds())
		n(descDone, s.Completed)
		n(descFailed, s.Failed)
		n(descAttempts, s.Attempts)
		n(descCancel, s.Cancelled)
		g(descThru, s.Throughput)
		g(descDrain, s.Drain)
		g(descP50, s.RunP50.Seconds())
		g(descP99, s.RunP99.Seconds())
		g(descRetry, s.RetryAfter.Seconds())
	}
}
