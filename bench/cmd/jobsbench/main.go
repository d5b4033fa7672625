// Command jobsbench compares durable job queues on one workload, in one run:
// no-op jobs, a fixed number of concurrent workers, each job enqueued by one
// of as many concurrent producers, every enqueue durable before it returns
// (an fsync), measured from the first enqueue until the queue has recorded
// every job as completed. It prints jobs/s, the enqueue latency and the
// enqueue → run latency (p50, p99) of each system, with ratios to reactor.
//
//	cd bench && go run ./cmd/jobsbench -n 20000
//	go run ./cmd/jobsbench -n 2000 -only reactor,asynq
//
// Systems (see docs/BENCHMARKS.md for the method):
//
//   - reactor: package jobs, queue state in memory, journal with fdatasync
//     and group commit (files under -dir);
//   - river-pg: River with riverpgxv5 on PostgreSQL (-pg), tables in their
//     own schema (jobsbench), synchronous_commit as the server has it
//     (printed);
//   - river-sqlite: River with riversqlite on modernc.org/sqlite, WAL,
//     synchronous=FULL, one connection (the driver's advice);
//   - asynq: Asynq on a redis-server started for the run with
//     appendonly yes + appendfsync always (-redis spawn, the default), or on
//     the Redis at -redis host:port, whose fsync policy is printed (with
//     Redis's default policy an enqueue is not durable when it returns).
//
// Figures depend on the machine and on what else runs on it: compare the
// rows of one run, never figures across runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "jobsbench:", err)
		os.Exit(1)
	}
}

type options struct {
	n, workers, producers int
	dir                   string
	pg, redis             string
	riverCooldown         time.Duration
	timeout               time.Duration
	log                   *slog.Logger
}

// system is one queue under test. setup prepares it (schema, server) and
// returns the enqueue function and a count of completed jobs; the worker
// of each system calls rec.ran(i) when job i runs.
type system struct {
	name string
	run  func(ctx context.Context, o options, rec *recorder) (result, error)
}

type result struct {
	Name     string
	Jobs     int
	Elapsed  time.Duration
	Enqueue  []time.Duration // per job: the enqueue call
	ToRun    []time.Duration // per job: enqueue start → handler start
	Note     string
	Duplicat int // jobs that ran more than once (at least once delivery)
}

var systems = []system{
	{"reactor", runReactor},
	{"river-pg", runRiverPG},
	{"river-sqlite", runRiverSQLite},
	{"asynq", runAsynq},
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jobsbench", flag.ContinueOnError)
	o := options{}
	fs.IntVar(&o.n, "n", 20000, "jobs per system")
	fs.IntVar(&o.workers, "workers", 64, "concurrent workers per system")
	fs.IntVar(&o.producers, "producers", 64, "concurrent producers (each enqueue waits until durable)")
	fs.StringVar(&o.dir, "dir", "", "`directory` for the reactor journal and the SQLite database (default: a temporary one, removed)")
	fs.StringVar(&o.pg, "pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL `DSN` for river-pg")
	fs.StringVar(&o.redis, "redis", "spawn", "`spawn` a durable redis-server for asynq, or use the Redis at host:port as it is configured")
	fs.DurationVar(&o.riverCooldown, "river-fetch-cooldown", 0, "River's FetchCooldown (0: River's default, 100ms)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a system after this long")
	only := fs.String("only", "", "comma-separated `systems` to run (default: all: reactor,river-pg,river-sqlite,asynq)")
	verbose := fs.Bool("v", false, "log the libraries' warnings")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if o.n <= 0 || o.workers <= 0 || o.producers <= 0 {
		return errors.New("-n, -workers and -producers must be positive")
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelWarn
	}
	o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.dir == "" {
		d, err := os.MkdirTemp("", "jobsbench-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	fmt.Printf("jobsbench: %d no-op jobs per system, %d workers, %d producers, every enqueue durable before it returns\n\n", o.n, o.workers, o.producers)
	var results []result
	var failed []string
	for _, s := range systems {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "%s: running…\n", s.name)
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		rec := newRecorder(o.n)
		res, err := s.run(rctx, o, rec)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", s.name, err)
			failed = append(failed, s.name)
			continue
		}
		res.Name, res.Jobs = s.name, o.n
		res.Enqueue, res.ToRun, res.Duplicat = rec.latencies()
		results = append(results, res)
	}
	printTable(os.Stdout, results)
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// recorder keeps per-job timestamps: when its enqueue started and ended,
// and when a worker first ran it.
type recorder struct {
	start, enq, ran []atomic.Int64
	runs            []atomic.Int32
}

func newRecorder(n int) *recorder {
	return &recorder{start: make([]atomic.Int64, n), enq: make([]atomic.Int64, n), ran: make([]atomic.Int64, n), runs: make([]atomic.Int32, n)}
}

func (r *recorder) ranJob(i int) {
	if i < 0 || i >= len(r.ran) {
		return
	}
	if r.runs[i].Add(1) == 1 {
		r.ran[i].Store(time.Now().UnixNano())
	}
}

func (r *recorder) latencies() (enq, toRun []time.Duration, dup int) {
	for i := range r.start {
		s := r.start[i].Load()
		if e := r.enq[i].Load(); e != 0 {
			enq = append(enq, time.Duration(e-s))
		}
		if x := r.ran[i].Load(); x != 0 {
			toRun = append(toRun, time.Duration(x-s))
		}
		if r.runs[i].Load() > 1 {
			dup++
		}
	}
	return enq, toRun, dup
}

// produce enqueues jobs 0..n-1 from o.producers goroutines, recording
// each enqueue's start and end, and returns when all are enqueued or the
// first error.
func produce(ctx context.Context, o options, rec *recorder, enqueue func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range o.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.n || ctx.Err() != nil {
					return
				}
				rec.start[i].Store(time.Now().UnixNano())
				if err := enqueue(ctx, i); err != nil {
					once.Do(func() { first = fmt.Errorf("enqueue %d: %w", i, err) })
					return
				}
				rec.enq[i].Store(time.Now().UnixNano())
			}
		}()
	}
	wg.Wait()
	return first
}

// waitCompleted polls done until it reports n, or ctx ends.
func waitCompleted(ctx context.Context, n int, every time.Duration, done func(context.Context) (int, error)) error {
	for {
		got, err := done(ctx)
		if err != nil {
			return fmt.Errorf("count completed: %w", err)
		}
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d completed: %w", got, n, ctx.Err())
		case <-time.After(every):
		}
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func printTable(w *os.File, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tjobs\ttime\tjobs/s\treactor ×\tenqueue p50\tenqueue p99\tenqueue→run p50\tenqueue→run p99\tran twice\t")
	var base float64
	for _, r := range rs {
		if r.Name == "reactor" {
			base = float64(r.Jobs) / r.Elapsed.Seconds()
		}
	}
	for _, r := range rs {
		rate := float64(r.Jobs) / r.Elapsed.Seconds()
		ratio := "—"
		if base > 0 && r.Name != "reactor" {
			ratio = fmt.Sprintf("%.1f", base/rate)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t\n", r.Name, r.Jobs, round(r.Elapsed), rate, ratio,
			round(pct(r.Enqueue, .50)), round(pct(r.Enqueue, .99)), round(pct(r.ToRun, .50)), round(pct(r.ToRun, .99)), r.Duplicat)
	}
	tw.Flush()
	fmt.Fprintln(w, "\n\"reactor ×\": reactor's jobs/s divided by the system's, in this run.")
	for _, r := range rs {
		if r.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Name, r.Note)
		}
	}
}
