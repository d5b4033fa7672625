package main

import (
	"os"
	"regexp"
	"testing"
	"time"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseBench(t *testing.T) {
	res := ParseBench(read(t, "gotest-goactor.txt"))
	if len(res) != 6 {
		t.Fatalf("%d results, want 6 (the truncated IdleActors line has no figures): %+v", len(res), res)
	}
	r := res[2]
	if r.Pkg != "github.com/reactorgo/reactor/bench/goactor" || r.Name != "BenchmarkFireAndForget/impl=goactor-unbounded" || r.N != 100 {
		t.Errorf("result 2 = %+v", r)
	}
	if r.Metrics["msgs/s"] != 939585 || r.Metrics["ns/op"] != 1064 || r.Metrics["allocs/op"] != 0 {
		t.Errorf("metrics = %v", r.Metrics)
	}
	if res[3].Name != "BenchmarkRoundTrip/impl=channel" || res[3].Metrics["ns/op"] != 932.9 {
		t.Errorf("result 3 = %+v", res[3])
	}
}

func TestParseBenchInterleavedAndCustomUnits(t *testing.T) {
	res := ParseBench(read(t, "gotest-interleaved.txt"))
	byName := map[string]Bench{}
	for _, r := range res {
		byName[r.Name] = r
	}
	if len(res) != 4 {
		t.Fatalf("%d results, want 4: %+v", len(res), res)
	}
	if v := byName["BenchmarkSend"].Metrics["msgs/s"]; v != 12658227 {
		t.Errorf("Send msgs/s = %v", v)
	}
	// Name without a -P suffix (GOMAXPROCS=1), figures after a log line.
	if v := byName["BenchmarkIdleChildren"].Metrics["bytes/child-over-state"]; v != 232 {
		t.Errorf("IdleChildren over state = %v (%+v)", v, byName["BenchmarkIdleChildren"])
	}
	js := byName["BenchmarkJournalSync/producers=64,inflight=64"]
	if js.Metrics["%-of-raw"] != 89.58 || js.Metrics["µs/fsync"] != 120 || js.Metrics["MB/s"] != 0.43 || js.Metrics["raw-msgs/s"] != 4.8e6 {
		t.Errorf("JournalSync = %+v", js)
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{
		"BenchmarkSend-2":                       "BenchmarkSend",
		"BenchmarkSend":                         "BenchmarkSend",
		"BenchmarkX/impl=goakt-unbounded-16":    "BenchmarkX/impl=goakt-unbounded",
		"BenchmarkX/impl=goakt-unbounded":       "BenchmarkX/impl=goakt-unbounded",
		"BenchmarkIdleActors/impl=goakt-100k-2": "BenchmarkIdleActors/impl=goakt-100k",
		"BenchmarkIdleActors/impl=reactor-100k": "BenchmarkIdleActors/impl=reactor-100k",
		"BenchmarkRawWriteFdatasync/batch=32-2": "BenchmarkRawWriteFdatasync/batch=32",
	} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSQLBench(t *testing.T) {
	m := ParseSQLBench(read(t, "sqlbench.txt"))
	if len(m) != 4 {
		t.Fatalf("%d modes, want 4: %+v", len(m), m)
	}
	if r := m["reactor-sqlite"]; r.XfersPerS != 8412 || r.P50 != 6210*time.Microsecond || r.P99 != 14020*time.Microsecond || r.Invariant != "ok (sum 10000000000)" {
		t.Errorf("reactor-sqlite = %+v", r)
	}
	if r := m["conv-serializable"]; r.XfersPerS != 2011 {
		t.Errorf("conv-serializable = %+v", r)
	}
	if r := m["reactor-sqlite-cgo"]; r.Err == "" {
		t.Errorf("reactor-sqlite-cgo error not parsed: %+v", r)
	}
}

func TestParsePokerLoad(t *testing.T) {
	p, err := ParsePokerLoad(read(t, "pokerload.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Members != 10000 || p.VoteN != 27000 || p.VoteP50 != 920*time.Microsecond || p.VoteP99 != 5800*time.Microsecond || p.VoteMax != 26*time.Millisecond {
		t.Errorf("vote = %+v", p)
	}
	if p.FinishP99 != 4*time.Millisecond || p.Lost != 0 || p.Errors != 0 || p.RSSPerMemberKiB != 10.7 || p.JoinN != 10000 {
		t.Errorf("poker = %+v", p)
	}
	if _, err := ParsePokerLoad("poker-load: dial tcp: connection refused\n"); err == nil {
		t.Error("no error for an output without a summary")
	}
}

func TestParseJobsBench(t *testing.T) {
	m := ParseJobsBench(read(t, "jobsbench.txt"))
	if len(m) != 2 {
		t.Fatalf("%d systems, want 2: %+v", len(m), m)
	}
	if r := m["reactor"]; r.JobsPerS != 9234 || r.EnqueueP99 != 14700*time.Microsecond || r.RanTwice != 0 {
		t.Errorf("reactor = %+v", r)
	}
	if r := m["river-pg"]; r.JobsPerS != 632 {
		t.Errorf("river-pg = %+v", r)
	}
}

func TestRatioRowAndTargets(t *testing.T) {
	s := samples{"a": {10, 12, 11}, "b": {20, 20, 10}}
	r := ratioRow("w", s, "a", "b", rate, atLeast(1.0))
	if r.Ratio != "0.50× – 1.10×" || r.Met != "NO" {
		t.Errorf("row = %+v", r)
	}
	r = valueRow("w", samples{"p99": {5e6, 30e6, 6e6}}, "p99", nanos, valueAtMost(25e6, "ns"))
	if r.Met != "yes" || r.Target != "≤ 25ms" {
		t.Errorf("row = %+v", r)
	}
	if tg, err := parseTarget(">=6", false, ""); err != nil || tg.String() != "≥ 6×" {
		t.Errorf("parseTarget = %+v, %v", tg, err)
	}
}

// TestClusterRows: the cluster group's rows read the figures the cluster
// package's benchmarks print (a 200x smoke run on a busy machine, kept as
// test data, not a measurement), and its -bench pattern selects exactly
// those benchmarks.
func TestClusterRows(t *testing.T) {
	res := ParseBench(read(t, "gotest-cluster.txt"))
	if len(res) != 8 {
		t.Fatalf("%d results, want 8: %+v", len(res), res)
	}
	re := regexp.MustCompile(clusterBenchRE)
	for _, b := range res {
		if b.Pkg != "github.com/reactorgo/reactor/cluster" || !re.MatchString(b.Name) {
			t.Errorf("%s (%s) not selected by %s", b.Name, b.Pkg, clusterBenchRE)
		}
	}
	for _, name := range []string{"BenchmarkRemoteCallX", "BenchmarkRawRequestParallel/x", "BenchmarkJournaledSend"} {
		if re.MatchString(name) {
			t.Errorf("%s selected by %s", name, clusterBenchRE)
		}
	}
	s := samples{}
	s.addBench(res)
	rows := clusterRows(s)
	for _, r := range rows {
		if r.Subject == "n/a" || r.Baseline == "n/a" {
			t.Errorf("row without figures: %+v", r)
		}
	}
	call := rows[0]
	if call.Subject != "125µs" || call.Baseline != "76µs" || call.Ratio != "1.65×" || call.Target != "≤ 1.5×" || call.Met != "NO" {
		t.Errorf("remote call row = %+v", call)
	}
	if r := rows[1]; r.Subject != "41" {
		t.Errorf("allocs row = %+v", r)
	}
	if r := rows[2]; r.Ratio != "0.51×" || r.Target != "—" {
		t.Errorf("parallel row = %+v", r)
	}
	durable := rows[3]
	if durable.Subject != "3245/s" || durable.Baseline != "4510/s" || durable.Ratio != "0.72×" || durable.Target != "≥ 0.5×" || durable.Met != "yes" {
		t.Errorf("durable row = %+v", durable)
	}
}
