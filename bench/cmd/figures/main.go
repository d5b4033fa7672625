// Command figures reproduces every figure of docs/BENCHMARKS.md on this
// machine and prints them in one table, each next to the baseline measured
// in the same run, with the ratio and the target:
//
//	cd bench && go run ./cmd/figures                 # every group
//	go run ./cmd/figures -quick -only runtime,peers  # a smoke check
//
// Groups (-only): runtime, durable, peers, cluster, redis, sql, jobs, poker.
// Baseline and subject alternate: each of the -count rounds runs the
// baseline and the subject one after the other (the go test groups run a
// test binary built once, with -test.count 1, so A B A B …). The figures
// are parsed from the benchmarks' own output; -out keeps that raw output.
//
// It prints the machine's facts first and warns when the 1-minute load
// average is 0.5 or more: on a busy machine the figures are noise.
// Groups that need PostgreSQL (sql, jobs' River) or Redis (redis) check the
// server first and are skipped, with a message, when it does not answer.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	only       map[string]bool
	count      int
	benchtime  string
	quick      bool
	out        string
	root       string // repository root (the reactor module)
	pg         string
	redis      string
	sqlModes   string
	sqlCompare string
	sqlDur     time.Duration
	jobsN      int
	jobsOnly   string
	pokerRooms int
	pokerMem   int
	pokerRnds  int
	pokerThink time.Duration
	pokerFlags string
}

var allGroups = []string{"runtime", "durable", "peers", "cluster", "redis", "sql", "jobs", "poker"}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "figures:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("figures", flag.ContinueOnError)
	var o options
	only := fs.String("only", strings.Join(allGroups, ","), "comma-separated `groups` to run: "+strings.Join(allGroups, ","))
	fs.IntVar(&o.count, "count", 0, "rounds per group, baseline and subject alternated in each (default 5, 1 with -quick)")
	fs.StringVar(&o.benchtime, "benchtime", "", "go test -benchtime of the benchmark groups (default 1s, 100ms with -quick)")
	fs.BoolVar(&o.quick, "quick", false, "small sizes and short runs: a smoke check that everything works, not a measurement")
	fs.StringVar(&o.out, "out", "", "append every raw output (go test, sqlbench, jobsbench, poker-load) to this `file`")
	fs.StringVar(&o.root, "root", "", "repository `directory` (default: found from the working directory)")
	fs.StringVar(&o.pg, "pg", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL `DSN` (sql, jobs)")
	fs.StringVar(&o.redis, "redis", "127.0.0.1:6379", "Redis `host:port` (redis group)")
	fs.StringVar(&o.sqlModes, "sql-modes", "reactor-sqlite-cgo,hand-ledger,reactor-postgres,conv-serializable", "cmd/sqlbench `modes` to run")
	fs.StringVar(&o.sqlCompare, "sql-compare", "reactor-sqlite-cgo::>=30000,reactor-sqlite-cgo:hand-ledger:>=0.9,reactor-postgres:conv-serializable:>=6", "sql rows: `subject:baseline:target`, comma-separated; an empty baseline makes the target absolute (xfers/s)")
	fs.DurationVar(&o.sqlDur, "sql-duration", 0, "cmd/sqlbench -duration per mode (default 10s, 2s with -quick)")
	fs.IntVar(&o.jobsN, "jobs-n", 0, "jobsbench -n (default 20000, 2000 with -quick)")
	fs.StringVar(&o.jobsOnly, "jobs-only", "reactor,river-pg", "jobsbench -only `systems` (reactor,river-pg,river-sqlite,asynq)")
	fs.IntVar(&o.pokerRooms, "poker-rooms", 0, "poker-load -rooms (default 1000, 20 with -quick)")
	fs.IntVar(&o.pokerMem, "poker-members", 10, "poker-load -members")
	fs.IntVar(&o.pokerRnds, "poker-rounds", 3, "poker-load -rounds")
	fs.DurationVar(&o.pokerThink, "poker-think", -1, "poker-load -think (default 10s, 1s with -quick)")
	fs.StringVar(&o.pokerFlags, "poker-server-flags", "", "extra `flags` of the poker server, space-separated (e.g. \"-nats-embed 127.0.0.1:4250 -node n1\": the server as a one-node cluster)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	o.only = map[string]bool{}
	for _, g := range strings.Split(*only, ",") {
		if g = strings.TrimSpace(g); g == "" {
			continue
		}
		if !slices.Contains(allGroups, g) {
			return fmt.Errorf("unknown group %q (groups: %s)", g, strings.Join(allGroups, ","))
		}
		o.only[g] = true
	}
	o.defaults()
	if o.root == "" {
		r, err := findRoot()
		if err != nil {
			return err
		}
		o.root = r
	}
	r := &runner{o: o, tmp: must(os.MkdirTemp("", "figures-"))}
	defer os.RemoveAll(r.tmp)
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		r.raw = f
	}
	r.facts()
	groups := map[string]func() []Row{
		"runtime": r.runtimeGroup, "durable": r.durableGroup, "peers": r.peersGroup,
		"cluster": r.clusterGroup, "redis": r.redisGroup, "sql": r.sqlGroup, "jobs": r.jobsGroup, "poker": r.pokerGroup,
	}
	var rows []Row
	for _, g := range allGroups {
		if !o.only[g] {
			continue
		}
		r.logf("== %s (load average %s)", g, loadAvg())
		rows = append(rows, groups[g]()...)
	}
	fmt.Println()
	if o.quick {
		fmt.Println("SMOKE RUN (-quick): small sizes and short runs; these are not measurements.")
	}
	fmt.Printf("Ranges are min–max over %d round(s); ratios are taken within a round; met? uses the median.\n\n", o.count)
	printTable(os.Stdout, rows)
	if len(r.skipped) > 0 {
		fmt.Println()
		for _, s := range r.skipped {
			fmt.Println("skipped:", s)
		}
	}
	return nil
}

func (o *options) defaults() {
	def := func(p *int, full, quick int) {
		if *p == 0 {
			*p = full
			if o.quick {
				*p = quick
			}
		}
	}
	def(&o.count, 5, 1)
	def(&o.jobsN, 20000, 2000)
	def(&o.pokerRooms, 1000, 20)
	if o.benchtime == "" {
		o.benchtime = "1s"
		if o.quick {
			o.benchtime = "100ms"
		}
	}
	if o.sqlDur == 0 {
		o.sqlDur = 10 * time.Second
		if o.quick {
			o.sqlDur = 2 * time.Second
		}
	}
	if o.pokerThink < 0 {
		o.pokerThink = 10 * time.Second
		if o.quick {
			o.pokerThink = time.Second
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// findRoot walks up from the working directory to the reactor module.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/reactorgo/reactor\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the reactor repository: run from it or pass -root")
		}
		dir = parent
	}
}

type runner struct {
	o       options
	tmp     string
	raw     io.Writer
	skipped []string
	built   map[string]string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func (r *runner) skip(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.logf("skipped: %s", msg)
	r.skipped = append(r.skipped, msg)
}

func (r *runner) record(title, out string) {
	if r.raw != nil {
		fmt.Fprintf(r.raw, "### %s — %s\n%s\n", title, time.Now().Format(time.RFC3339), out)
	}
}

// facts prints what the figures depend on, and warns on a busy machine.
func (r *runner) facts() {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	gover := strings.TrimSpace(string(must(exec.Command("go", "version").Output())))
	procs := os.Getenv("GOMAXPROCS")
	if procs == "" {
		procs = fmt.Sprintf("%d (default: nproc)", runtime.NumCPU())
	}
	la := loadAvg()
	facts := fmt.Sprintf("CPU: %s\nnproc: %d\nGo: %s\nGOMAXPROCS: %s\nload average (1, 5, 15 min): %s\nrepository: %s\ngroups: %s; count %d; benchtime %s; quick %v\n",
		cpu, runtime.NumCPU(), gover, procs, la, r.o.root, strings.Join(r.groups(), ","), r.o.count, r.o.benchtime, r.o.quick)
	fmt.Print(facts)
	r.record("machine", facts)
	if f := strings.Fields(la); len(f) > 0 {
		if l1, err := strconv.ParseFloat(f[0], 64); err == nil && l1 >= 0.5 {
			fmt.Printf("WARNING: the 1-minute load average is %.2f (≥ 0.5): something else is running; the figures below will be noise. Measure on a quiet machine.\n", l1)
		}
	}
	fmt.Println()
}

func (r *runner) groups() []string {
	var g []string
	for _, n := range allGroups {
		if r.o.only[n] {
			g = append(g, n)
		}
	}
	return g
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// build compiles a package (a test binary if test) once and returns its path.
// modDir is the module's directory, pkg the package path relative to it.
func (r *runner) build(modDir, pkg string, test bool) (string, error) {
	key := fmt.Sprintf("%s|%s|%v", modDir, pkg, test)
	if p, ok := r.built[key]; ok {
		return p, nil
	}
	if r.built == nil {
		r.built = map[string]string{}
	}
	out := filepath.Join(r.tmp, fmt.Sprintf("bin%d", len(r.built)))
	args := []string{"build", "-o", out, pkg}
	if test {
		args = []string{"test", "-c", "-o", out, pkg}
	}
	r.logf("building %s (%s)", pkg, modDir)
	cmd := exec.Command("go", args...)
	cmd.Dir = modDir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	r.built[key] = out
	return out, nil
}

// goBench runs the test binary of pkg (in module modDir) once with the
// benchmarks matching re, and returns its parsed results.
func (r *runner) goBench(modDir, pkg, re, benchtime string, extra ...string) ([]Bench, error) {
	bin, err := r.build(modDir, pkg, true)
	if err != nil {
		return nil, err
	}
	args := []string{"-test.run", "^$", "-test.bench", re, "-test.benchtime", benchtime, "-test.benchmem", "-test.count", "1", "-test.timeout", "30m"}
	if r.o.quick {
		args = append(args, "-test.short")
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Join(modDir, pkg)
	cmd.Env = append(os.Environ(), "REACTOR_REQUIRE_SERVICES=1")
	r.logf("  %s -bench %s -benchtime %s", pkg, re, benchtime)
	out, err := cmd.CombinedOutput()
	r.record(fmt.Sprintf("go test %s -bench %s -benchtime %s", pkg, re, benchtime), string(out))
	res := ParseBench(string(out))
	if err != nil {
		return res, fmt.Errorf("%s: %v\n%s", pkg, err, tail(string(out), 20))
	}
	return res, nil
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// samples collects one figure per round.
type samples map[string][]float64

func (s samples) add(key string, v float64) { s[key] = append(s[key], v) }

// addBench records metric unit of every result in res under "Name unit".
func (s samples) addBench(res []Bench) {
	for _, b := range res {
		for unit, v := range b.Metrics {
			s.add(b.Name+" "+unit, v)
		}
	}
}

func tcpUp(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// pgUp checks the PostgreSQL server of the DSN answers on TCP.
func pgUp(dsn string) (string, bool) {
	host := "127.0.0.1:5432"
	if i := strings.Index(dsn, "@"); i >= 0 {
		h := dsn[i+1:]
		if j := strings.IndexAny(h, "/?"); j >= 0 {
			h = h[:j]
		}
		if !strings.Contains(h, ":") {
			h += ":5432"
		}
		host = h
	}
	return host, tcpUp(host)
}

// ---- runtime micro-benchmarks (root package) ----

func (r *runner) runtimeGroup() []Row {
	s := samples{}
	idleN := "1000000x"
	if r.o.quick {
		idleN = "100000x"
	}
	for i := 0; i < r.o.count; i++ {
		res, err := r.goBench(r.o.root, ".", "^Benchmark(ChannelSend|Send|ChannelRoundTrip|Call|CallCancellable|AsyncCall)$", r.o.benchtime)
		s.addBench(res)
		if err != nil {
			r.skip("runtime: %v", err)
		}
		res, err = r.goBench(r.o.root, ".", "^BenchmarkIdleChildren$", idleN)
		s.addBench(res)
		if err != nil {
			r.skip("runtime idle children: %v", err)
		}
	}
	return []Row{
		ratioRow("fire-and-forget, 1 producer → 1 service, inbox 1024 (Send vs ChannelSend)", s, "BenchmarkSend msgs/s", "BenchmarkChannelSend msgs/s", rate, atLeast(1.0)),
		ratioRow("blocking call, cancellable context (CallCancellable vs ChannelRoundTrip)", s, "BenchmarkCallCancellable ns/op", "BenchmarkChannelRoundTrip ns/op", nanos, atMost(1.5)),
		ratioRow("blocking call, context.Background (Call vs ChannelRoundTrip)", s, "BenchmarkCall ns/op", "BenchmarkChannelRoundTrip ns/op", nanos, atMost(1.5)),
		allocRow("allocs per cancellable call", s, "BenchmarkCallCancellable allocs/op", 0),
		valueRow("async call, continuation on the caller's turn, 256 in flight", s, "BenchmarkAsyncCall calls/s", rate, target{}),
		valueRow("idle child above its 16-byte state ("+strings.TrimSuffix(idleN, "x")+" children)", s, "BenchmarkIdleChildren bytes/child-over-state", bytesFmt, valueAtMost(250, "B")),
	}
}

// ---- durable: journaled services against the journal and the disk ----

func (r *runner) durableGroup() []Row {
	s := samples{}
	for i := 0; i < r.o.count; i++ {
		res, err := r.goBench(r.o.root, "./journal", "^Benchmark(JournalSync|JournalSequential|Replay)$", r.o.benchtime)
		s.addBench(res)
		if err != nil {
			r.skip("durable (journal): %v", err)
		}
		res, err = r.goBench(r.o.root, ".", "^Benchmark(RawFdatasync|JournaledSend|JournaledAsync|JournaledCallSequential|StartReplay)$", r.o.benchtime)
		s.addBench(res)
		if err != nil {
			r.skip("durable (runtime): %v", err)
		}
	}
	js := "BenchmarkJournalSync/producers=64,inflight=64"
	return []Row{
		ratioRow("journaled sends end to end, 64×64 in flight, 100 B (JournaledSend vs the journal package's JournalSync)", s, "BenchmarkJournaledSend msgs/s", js+" msgs/s", rate, atLeast(0.35)),
		valueRow("journaled sends end to end, absolute", s, "BenchmarkJournaledSend msgs/s", rate, valueAtLeast(1.5e6, "msgs/s")),
		ratioRow("journaled Async calls from 64 producer services, 64×64 in flight, 100 B (JournaledAsync vs JournalSync)", s, "BenchmarkJournaledAsync msgs/s", js+" msgs/s", rate, atLeast(0.35)),
		valueRow("journaled Async calls from services, absolute", s, "BenchmarkJournaledAsync msgs/s", rate, valueAtLeast(1.5e6, "msgs/s")),
		ratioRow("journal package alone vs raw write+fdatasync at its batch size", s, js+" msgs/s", js+" raw-msgs/s", rate, atLeast(0.60)),
		ratioRow("sequential durable call through a service (JournaledCallSequential vs RawFdatasync)", s, "BenchmarkJournaledCallSequential ns/op", "BenchmarkRawFdatasync ns/op", nanos, atMost(1.5)),
		ratioRow("sequential journal append vs raw fdatasync (journal package)", s, "BenchmarkJournalSequential µs/append", "BenchmarkJournalSequential raw-µs/fdatasync", micros, atMost(1.5)),
		ratioRow("runtime recovery (StartReplay vs the journal's Replay)", s, "BenchmarkStartReplay records/s", "BenchmarkReplay records/s", rate, target{}),
		valueRow("journal replay", s, "BenchmarkReplay records/s", rate, valueAtLeast(2e6, "records/s")),
	}
}

// ---- peers: the bench module's packages ----

var peerPkgs = []string{".", "./hollywood", "./protoactor", "./goakt", "./goactor"}

func (r *runner) peersGroup() []Row {
	mod := filepath.Join(r.o.root, "bench")
	s := samples{}
	names := map[string][]string{} // workload -> impls in order of appearance
	note := func(res []Bench) {
		for _, b := range res {
			w, impl, ok := strings.Cut(b.Name, "/impl=")
			if ok && impl != "channel" {
				key := b.Pkg + " " + w
				if !slices.Contains(names[key], impl) {
					names[key] = append(names[key], impl)
				}
			}
		}
	}
	for i := 0; i < r.o.count; i++ {
		for _, pkg := range peerPkgs {
			res, err := r.goBench(mod, pkg, "^Benchmark(FireAndForget|RoundTrip|AsyncCall)$", r.o.benchtime)
			if err != nil {
				r.skip("peers %s: %v", pkg, err)
			}
			note(res)
			addPerPkg(s, res)
			res, err = r.goBench(mod, pkg, "^BenchmarkIdleActors$", "1x")
			if err != nil {
				r.skip("peers %s idle: %v", pkg, err)
			}
			note(res)
			addPerPkg(s, res)
		}
	}
	var rows []Row
	keys := make([]string, 0, len(names))
	for k := range names {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	order := map[string]int{"BenchmarkFireAndForget": 0, "BenchmarkRoundTrip": 1, "BenchmarkAsyncCall": 2, "BenchmarkIdleActors": 3}
	slices.SortStableFunc(keys, func(a, b string) int {
		_, wa, _ := strings.Cut(a, " ")
		_, wb, _ := strings.Cut(b, " ")
		return order[wa] - order[wb]
	})
	for _, k := range keys {
		pkg, w, _ := strings.Cut(k, " ")
		for _, impl := range names[k] {
			subj := pkg + " " + w + "/impl=" + impl
			base := pkg + " " + w + "/impl=channel"
			switch w {
			case "BenchmarkFireAndForget":
				t := target{}
				if impl == "reactor-sendwait" {
					t = atLeast(1.0)
				}
				rows = append(rows, ratioRow("peers: fire-and-forget, "+impl+" vs its package's channel", s, subj+" msgs/s", base+" msgs/s", rate, t))
			case "BenchmarkRoundTrip":
				t := target{}
				if impl == "reactor-call-cancellable" {
					t = atMost(1.5)
				}
				rows = append(rows, ratioRow("peers: request/reply, "+impl+" vs its package's channel", s, subj+" ns/op", base+" ns/op", nanos, t))
				rows = append(rows, valueRow("peers: request/reply allocs, "+impl, s, subj+" allocs/op", plain, target{}))
			case "BenchmarkAsyncCall":
				rows = append(rows, valueRow("peers: async call, "+impl+", 256 in flight", s, subj+" calls/s", rate, target{}))
			case "BenchmarkIdleActors":
				t := target{}
				if strings.HasPrefix(impl, "reactor-children") {
					t = valueAtMost(250, "B")
				}
				rows = append(rows, valueRow("peers: idle actor above a 16-byte state, "+impl, s, subj+" bytes/actor-over-state", bytesFmt, t))
			}
		}
	}
	return rows
}

func addPerPkg(s samples, res []Bench) {
	for _, b := range res {
		for unit, v := range b.Metrics {
			s.add(b.Pkg+" "+b.Name+" "+unit, v)
		}
	}
}

// ---- cluster: package cluster against raw NATS, embedded server ----

// clusterBenchRE selects the cluster package's benchmarks; in each round
// go test runs them in source order, every baseline just before its
// subject.
const clusterBenchRE = "^Benchmark(RawRequest|RemoteCall|RawRequestParallel|RemoteCallParallel|RawJetStreamAsyncPublish|DurableRemoteSend|RawJetStreamAsyncPublishLazy|DurableRemoteSendLazy)$"

func (r *runner) clusterGroup() []Row {
	s := samples{}
	for i := 0; i < r.o.count; i++ {
		res, err := r.goBench(r.o.root, "./cluster", clusterBenchRE, r.o.benchtime)
		s.addBench(res)
		if err != nil {
			r.skip("cluster: %v", err)
		}
	}
	return clusterRows(s)
}

func clusterRows(s samples) []Row {
	return []Row{
		ratioRow("cluster: remote call round trip, front-end node → owner, 100 B each way (RemoteCall vs RawRequest)", s, "BenchmarkRemoteCall ns/op", "BenchmarkRawRequest ns/op", nanos, atMost(1.5)),
		valueRow("cluster: allocs per remote call (both nodes and the embedded server counted)", s, "BenchmarkRemoteCall allocs/op", plain, target{}),
		ratioRow("cluster: remote calls, 32×GOMAXPROCS callers (RemoteCallParallel vs RawRequestParallel)", s, "BenchmarkRemoteCallParallel calls/s", "BenchmarkRawRequestParallel calls/s", rate, target{}),
		ratioRow("cluster: durable remote sends, 4096 in flight, one partition (DurableRemoteSend vs RawJetStreamAsyncPublish)", s, "BenchmarkDurableRemoteSend msgs/s", "BenchmarkRawJetStreamAsyncPublish msgs/s", rate, atLeast(0.5)),
		ratioRow("cluster: the same on a lazy-fsync NATS server (DurableRemoteSendLazy vs RawJetStreamAsyncPublishLazy)", s, "BenchmarkDurableRemoteSendLazy msgs/s", "BenchmarkRawJetStreamAsyncPublishLazy msgs/s", rate, atLeast(0.5)),
	}
}

// ---- Redis hot key / spread keys ----

func (r *runner) redisGroup() []Row {
	if !tcpUp(r.o.redis) {
		r.skip("redis: no Redis answers at %s (-redis host:port); start one to run HotKey and SpreadKeys", r.o.redis)
		return nil
	}
	os.Setenv("REACTOR_TEST_REDIS", "redis://"+r.o.redis+"/0")
	s := samples{}
	for i := 0; i < r.o.count; i++ {
		res, err := r.goBench(r.o.root, "./state/redis", "^Benchmark(HotKey|SpreadKeys)$", r.o.benchtime)
		s.addBench(res)
		if err != nil {
			r.skip("redis: %v", err)
		}
	}
	return []Row{
		ratioRow("Redis hot key, 8 writers over 4 runtimes (reactor vs WATCH/MULTI loop)", s, "BenchmarkHotKey/reactor updates/s", "BenchmarkHotKey/watch-multi updates/s", rate, atLeast(5)),
		valueRow("Redis hot key, reactor conflicts", s, "BenchmarkHotKey/reactor %conflicts", pct, target{}),
		ratioRow("spread keys, 64 callers over 1,000 keys: journal vs Redis placement", s, "BenchmarkSpreadKeys/journal cmds/s", "BenchmarkSpreadKeys/redis cmds/s", rate, target{}),
		valueRow("spread keys, in memory", s, "BenchmarkSpreadKeys/memory cmds/s", rate, target{}),
	}
}

// ---- SQL: cmd/sqlbench ----

func (r *runner) sqlGroup() []Row {
	modes := strings.Split(r.o.sqlModes, ",")
	if host, ok := pgUp(r.o.pg); !ok {
		var kept []string
		for _, m := range modes {
			if strings.Contains(m, "postgres") || strings.HasPrefix(m, "conv-") {
				continue
			}
			kept = append(kept, m)
		}
		r.skip("sql: no PostgreSQL answers at %s: PostgreSQL modes left out (%s)", host, strings.Join(slices.DeleteFunc(slices.Clone(modes), func(m string) bool { return slices.Contains(kept, m) }), ","))
		modes = kept
	}
	if len(modes) == 0 {
		return nil
	}
	bin, err := r.build(r.o.root, "./cmd/sqlbench", false)
	if err != nil {
		r.skip("sql: %v", err)
		return nil
	}
	s := samples{}
	errs := map[string]string{}
	for i := 0; i < r.o.count; i++ {
		args := []string{"-modes", strings.Join(modes, ","), "-duration", r.o.sqlDur.String(), "-dsn", r.o.pg}
		if r.o.quick {
			args = append(args, "-accounts", "1000")
		}
		r.logf("  sqlbench %s", strings.Join(args, " "))
		cmd := exec.Command(bin, args...)
		cmd.Dir = r.tmp
		out, err := cmd.CombinedOutput()
		r.record("sqlbench "+strings.Join(args, " "), string(out))
		if err != nil {
			r.skip("sql: sqlbench: %v\n%s", err, tail(string(out), 10))
		}
		for m, v := range ParseSQLBench(string(out)) {
			if v.Err != "" {
				errs[m] = v.Err
				continue
			}
			s.add(m+" xfers/s", v.XfersPerS)
			s.add(m+" p99", float64(v.P99))
		}
	}
	for m, e := range errs {
		r.skip("sql: mode %s: %s", m, e)
	}
	var rows []Row
	for _, c := range strings.Split(r.o.sqlCompare, ",") {
		f := strings.Split(c, ":")
		if len(f) != 3 {
			r.skip("sql: -sql-compare entry %q is not subject:baseline:target", c)
			continue
		}
		t, err := parseTarget(f[2], f[1] == "", "xfers/s")
		if err != nil {
			r.skip("sql: -sql-compare %q: %v", c, err)
			continue
		}
		if f[1] == "" {
			rows = append(rows, valueRow("SQL "+f[0]+", durable transfers", s, f[0]+" xfers/s", rate, t))
		} else {
			rows = append(rows, ratioRow("SQL "+f[0]+" vs "+f[1]+", durable transfers", s, f[0]+" xfers/s", f[1]+" xfers/s", rate, t))
		}
	}
	for _, m := range modes {
		rows = append(rows, valueRow("SQL "+m+" transfer p99", s, m+" p99", nanos, target{}))
	}
	return rows
}

// parseTarget reads ">=6", "<=1.5", ">=30000".
func parseTarget(s string, absolute bool, unit string) (target, error) {
	if s == "" {
		return target{}, nil
	}
	op := s[:2]
	x, err := strconv.ParseFloat(s[2:], 64)
	if err != nil || (op != ">=" && op != "<=") {
		return target{}, fmt.Errorf("target %q: want >=X or <=X", s)
	}
	t := target{op: op, x: x, onValue: absolute}
	if absolute {
		t.unit = unit
	}
	return t, nil
}

// ---- jobs: bench/cmd/jobsbench ----

func (r *runner) jobsGroup() []Row {
	systems := strings.Split(r.o.jobsOnly, ",")
	if host, ok := pgUp(r.o.pg); !ok {
		systems = slices.DeleteFunc(systems, func(s string) bool { return s == "river-pg" })
		r.skip("jobs: no PostgreSQL answers at %s: river-pg left out", host)
	}
	if slices.Contains(systems, "asynq") {
		if _, err := exec.LookPath("redis-server"); err != nil {
			systems = slices.DeleteFunc(systems, func(s string) bool { return s == "asynq" })
			r.skip("jobs: redis-server is not on the PATH: asynq left out")
		}
	}
	bin, err := r.build(filepath.Join(r.o.root, "bench"), "./cmd/jobsbench", false)
	if err != nil {
		r.skip("jobs: %v", err)
		return nil
	}
	s := samples{}
	for i := 0; i < r.o.count; i++ {
		args := []string{"-n", strconv.Itoa(r.o.jobsN), "-only", strings.Join(systems, ","), "-pg", r.o.pg}
		r.logf("  jobsbench %s", strings.Join(args, " "))
		cmd := exec.Command(bin, args...)
		cmd.Dir = r.tmp
		out, err := cmd.CombinedOutput()
		r.record("jobsbench "+strings.Join(args, " "), string(out))
		if err != nil {
			r.skip("jobs: jobsbench: %v\n%s", err, tail(string(out), 10))
		}
		for name, j := range ParseJobsBench(string(out)) {
			s.add(name+" jobs/s", j.JobsPerS)
			s.add(name+" ran-twice", float64(j.RanTwice))
		}
	}
	rows := []Row{valueRow("durable no-op jobs, reactor jobs", s, "reactor jobs/s", rate, target{})}
	for _, sys := range systems {
		if sys == "reactor" {
			continue
		}
		t := target{}
		if sys == "river-pg" {
			t = atLeast(5)
		}
		rows = append(rows, ratioRow("durable no-op jobs, reactor vs "+sys, s, "reactor jobs/s", sys+" jobs/s", rate, t))
	}
	return rows
}

// ---- poker: cmd/poker on loopback, cmd/poker-load against it ----

func (r *runner) pokerGroup() []Row {
	server, err := r.build(r.o.root, "./cmd/poker", false)
	if err != nil {
		r.skip("poker: %v", err)
		return nil
	}
	load, err := r.build(r.o.root, "./cmd/poker-load", false)
	if err != nil {
		r.skip("poker: %v", err)
		return nil
	}
	s := samples{}
	for i := 0; i < r.o.count; i++ {
		p, err := r.pokerRound(server, load)
		if err != nil {
			r.skip("poker round %d: %v", i+1, err)
			continue
		}
		s.add("vote p99", float64(p.VoteP99))
		s.add("vote p50", float64(p.VoteP50))
		s.add("finish p99", float64(p.FinishP99))
		s.add("lost", float64(p.Lost+p.Errors))
		if p.RSSPerMemberKiB > 0 {
			s.add("rss", p.RSSPerMemberKiB*1024)
		}
	}
	cfg := fmt.Sprintf("%d rooms × %d members, %d rounds, think %s", r.o.pokerRooms, r.o.pokerMem, r.o.pokerRnds, r.o.pokerThink)
	if r.o.pokerFlags != "" {
		cfg += ", server " + r.o.pokerFlags
	}
	return []Row{
		valueRow("poker "+cfg+": vote→vote_cast p50", s, "vote p50", nanos, target{}),
		valueRow("poker: vote→vote_cast p99", s, "vote p99", nanos, valueAtMost(25e6, "ns")),
		valueRow("poker: finish→session_finished p99", s, "finish p99", nanos, valueAtMost(25e6, "ns")),
		valueRow("poker: server RSS per connected member", s, "rss", bytesFmt, valueAtMost(8*1024, "B")),
		valueRow("poker: lost events + errors", s, "lost", plain, valueAtMost(0, "")),
	}
}

func (r *runner) pokerRound(server, load string) (Poker, error) {
	data, err := os.MkdirTemp(r.tmp, "poker-data-")
	if err != nil {
		return Poker{}, err
	}
	defer os.RemoveAll(data)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Poker{}, err
	}
	addr := l.Addr().String()
	l.Close()
	var slog bytes.Buffer
	srv := exec.Command(server, append([]string{"-addr", addr, "-data", data, "-create-rate", "-1"}, strings.Fields(r.o.pokerFlags)...)...)
	srv.Stdout, srv.Stderr = &slog, &slog
	if err := srv.Start(); err != nil {
		return Poker{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			srv.Process.Kill()
			<-exited
		}
		r.record("poker server log", slog.String())
	}()
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz") // 200 once it serves (a cluster node: once it owns rooms)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return Poker{}, fmt.Errorf("server exited: %v\n%s", err, tail(slog.String(), 10))
		default:
		}
		if time.Now().After(deadline) {
			return Poker{}, fmt.Errorf("server not answering at %s after 30s", url)
		}
		time.Sleep(50 * time.Millisecond)
	}
	args := []string{"-url", url, "-rooms", strconv.Itoa(r.o.pokerRooms), "-members", strconv.Itoa(r.o.pokerMem),
		"-rounds", strconv.Itoa(r.o.pokerRnds), "-think", r.o.pokerThink.String(), "-pid", strconv.Itoa(srv.Process.Pid)}
	r.logf("  poker-load %s", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, load, args...)
	out, err := cmd.CombinedOutput()
	r.record("poker-load "+strings.Join(args, " "), string(out))
	p, perr := ParsePokerLoad(string(out))
	if perr != nil {
		return p, fmt.Errorf("%v (poker-load: %v)\n%s", perr, err, tail(string(out), 10))
	}
	// Exit status 2 means lost events or errors: the parsed figures say so.
	return p, nil
}
