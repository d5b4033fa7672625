package main

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/reactorgo/reactor/internal/testenv"
)

// BenchmarkJobs runs the jobsbench workload with b.N jobs per system and
// reports jobs/s and the enqueue → run p99 (the command prints the full
// table; this is for benchstat):
//
//	cd bench && go test -run '^$' -bench Jobs -benchtime 20000x ./cmd/jobsbench
//
// Systems whose server is not reachable are skipped (they fail with
// REACTOR_REQUIRE_SERVICES=1).
func BenchmarkJobs(b *testing.B) {
	for _, s := range systems {
		b.Run(s.name, func(b *testing.B) {
			o := options{n: b.N, workers: 64, producers: 64, dir: b.TempDir(), redis: "spawn",
				pg: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			switch s.name {
			case "river-pg":
				o.pg = testenv.PostgresDSN(b)
			case "asynq":
				if _, err := exec.LookPath("redis-server"); err != nil {
					testenv.Missing(b, "redis-server not installed: apt-get install -y redis-server to run the asynq benchmark")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			rec := newRecorder(b.N)
			b.ResetTimer()
			res, err := s.run(ctx, o, rec)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			_, toRun, _ := rec.latencies()
			b.ReportMetric(float64(b.N)/res.Elapsed.Seconds(), "jobs/s")
			b.ReportMetric(float64(pct(toRun, .99).Microseconds()), "p99-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}
