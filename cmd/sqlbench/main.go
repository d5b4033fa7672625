// Command sqlbench measures the DB server reactor against the conventional
// design and against a hand-written single-writer loop, on the same
// workload, in the same run: random transfers among N accounts by C
// concurrent clients, every transfer durably committed before its reply,
// the sum of balances checked at the end.
//
//	go run ./cmd/sqlbench -modes all -duration 10s
//	go run ./cmd/sqlbench -modes sqlite      # the SQLite target: before/after, each beside its hand loop
//	go run ./cmd/sqlbench -modes schemas     # the hand loop on every schema variant: what each choice costs
//	go run ./cmd/sqlbench -list              # every mode and variant
//
// Modes: reactor-sqlite (modernc.org/sqlite), reactor-sqlite-cgo
// (mattn/go-sqlite3), reactor-postgres (pipelined: a batch's writes and
// COMMIT in one round trip), reactor-postgres-nopipe (one round trip per
// statement, as before pipelining), conv-serializable (C connections,
// SERIALIZABLE, retried on serialization failure), conv-forupdate (C
// connections, READ COMMITTED, SELECT ... FOR UPDATE in a fixed lock order).
// The reactor modes run the bank example's schema and TransferMoney; with
// the suffix -old (reactor-sqlite-cgo-old, reactor-sqlite-old,
// reactor-postgres-old) they run the bank as it was before its data design
// (oldbank.go). hand-<variant> runs the hand loop (hand.go) on a schema
// variant: hand-ledger is the bank's schema, hand-old the old one.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/mattn/go-sqlite3" // the cgo driver, measured against modernc
	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/postgres"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

const initial = 1_000_000

type config struct {
	accounts, clients int
	duration          time.Duration
	dsn, dir          string
	pageSize          int // reactor SQLite modes: sqlite.Options.PageSize
}

type result struct {
	mode       string
	ops        int64
	failed     int64 // transfers answered with an error (overdraft)
	retries    int64 // serialization failures / deadlocks retried
	elapsed    time.Duration
	lat        []time.Duration
	invariant  string
	batches    uint64
	maxBatch   uint64
	cacheHits  uint64
	cacheMiss  uint64
	commitFail uint64
	pipelines  uint64
	reruns     uint64
	note       string
	cpu        time.Duration // this process's CPU time (user+system) while measuring
	written    int64         // bytes this process wrote to storage while measuring (Linux; -1 unknown)
}

func main() {
	var cfg config
	modes := flag.String("modes", "all", "comma-separated modes, or all")
	flag.IntVar(&cfg.accounts, "accounts", 10_000, "accounts")
	flag.IntVar(&cfg.clients, "clients", 64, "concurrent clients")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time per mode")
	flag.StringVar(&cfg.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "PostgreSQL DSN")
	flag.StringVar(&cfg.dir, "dir", "", "directory for SQLite files (default: a temporary directory)")
	flag.IntVar(&cfg.pageSize, "page-size", 0, "page size of the reactor modes' SQLite files (0: SQLite's 4096; the hand loop has variants for it)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	list := flag.Bool("list", false, "list the modes and the schema variants of the hand loop, and exit")
	flag.Parse()
	if *list {
		fmt.Println("reactor modes: " + strings.Join(allModes, ", "))
		fmt.Println("mode sets: all, sqlite (before/after + same-run hand loops), schemas (every hand-loop variant)")
		fmt.Println("hand-loop modes (a minimal single-writer loop, no reactor, one per schema variant):")
		listVariants()
		return
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if cfg.dir == "" {
		d, err := os.MkdirTemp("", "sqlbench")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(d)
		cfg.dir = d
	}
	var run []string
	for _, m := range strings.Split(*modes, ",") {
		switch m {
		case "all":
			run = append(run, allModes...)
		case "sqlite":
			run = append(run, sqliteModes...)
		case "schemas":
			run = append(run, variantNames()...)
		default:
			run = append(run, m)
		}
	}
	fmt.Printf("sqlbench: %s, GOMAXPROCS=%d, NumCPU=%d, %d accounts, %d clients, %s per mode\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), cfg.accounts, cfg.clients, cfg.duration)
	fmt.Printf("%-20s %10s %8s %8s %8s %8s %9s %8s %9s %8s %s\n", "mode", "xfers/s", "p50", "p99", "p99.9", "retries", "avgbatch", "fails", "cpu/xfer", "wr/xfer", "invariant")
	for _, m := range run {
		var r result
		var err error
		v, hand := variantByName(strings.TrimPrefix(m, "hand-"))
		hand = hand && strings.HasPrefix(m, "hand-")
		switch {
		case hand:
			r, err = runHand(cfg, m, v)
		default:
			r, err = runMode(cfg, m)
		}
		if err != nil {
			fmt.Printf("%-20s error: %v\n", m, err)
			continue
		}
		report(r)
	}
}

// allModes is -modes all: every reactor and conventional mode, the new
// bank schema, and the SQLite hand loop on it.
var allModes = []string{"reactor-sqlite", "reactor-sqlite-cgo", "hand-ledger", "reactor-postgres", "reactor-postgres-nopipe", "conv-serializable", "conv-forupdate"}

// sqliteModes is -modes sqlite: the SQLite target's before/after in one
// run, each beside its hand loop on the same schema.
var sqliteModes = []string{"reactor-sqlite-cgo-old", "hand-old", "reactor-sqlite-cgo", "hand-ledger"}

func runMode(cfg config, m string) (result, error) {
	var r result
	var err error
	{
		switch m {
		case "reactor-sqlite":
			r, err = runReactor(cfg, m, "sqlite")
		case "reactor-sqlite-cgo":
			r, err = runReactor(cfg, m, "sqlite3")
		case "reactor-sqlite-old":
			r, err = runReactor(cfg, m, "sqlite")
		case "reactor-sqlite-cgo-old":
			r, err = runReactor(cfg, m, "sqlite3")
		case "reactor-postgres", "reactor-postgres-nopipe", "reactor-postgres-old":
			r, err = runReactor(cfg, m, "postgres")
		case "conv-serializable":
			r, err = runConventional(cfg, m, true)
		case "conv-forupdate":
			r, err = runConventional(cfg, m, false)
		default:
			err = fmt.Errorf("unknown mode %q (see -list)", m)
		}
	}
	return r, err
}

// cpuTime is the process's CPU time so far, user and system (cpu/xfer:
// the client goroutines included, a PostgreSQL server's not). On a busy
// machine it compares modes better than throughput does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writtenBytes is what this process has written to storage so far
// (write_bytes of /proc/self/io: the WAL, checkpoints into the database
// file), or -1 where that is not available. wr/xfer: KiB per transfer, the
// direct cost of a schema's dirty pages, which does not vary with the
// machine's load as throughput does.
func writtenBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			var n int64
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n
			}
		}
	}
	return -1
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "sqlbench:", err)
	os.Exit(1)
}

func pct(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(float64(len(lat))*p))]
}

func report(r result) {
	slices.Sort(r.lat)
	avg := "-"
	if r.batches > 0 {
		avg = fmt.Sprintf("%.1f", float64(r.ops+r.failed)/float64(r.batches))
	}
	cpu, wr := "-", "-"
	if n := r.ops + r.failed; n > 0 {
		cpu = fmt.Sprintf("%.1fµs", float64(r.cpu.Nanoseconds())/1e3/float64(n))
		if r.written > 0 {
			wr = fmt.Sprintf("%.2fK", float64(r.written)/1024/float64(n))
		}
	}
	fmt.Printf("%-20s %10.0f %8s %8s %8s %8d %9s %8d %9s %8s %s\n", r.mode, float64(r.ops)/r.elapsed.Seconds(),
		pct(r.lat, 0.50).Round(time.Microsecond), pct(r.lat, 0.99).Round(time.Microsecond), pct(r.lat, 0.999).Round(time.Microsecond),
		r.retries, avg, r.failed, cpu, wr, r.invariant)
	if r.note != "" || r.maxBatch > 0 && r.cacheHits+r.cacheMiss == 0 {
		fmt.Printf("%-20s max batch %d; %s\n", "", r.maxBatch, r.note)
	}
	if r.cacheHits+r.cacheMiss > 0 {
		fmt.Printf("%-20s cache hits %d, misses %d, max batch %d, commit failures %d, pipelines/batch %.2f, reruns %d\n", "",
			r.cacheHits, r.cacheMiss, r.maxBatch, r.commitFail, float64(r.pipelines)/float64(max(r.batches, 1)), r.reruns)
	}
}

// drive runs clients calling op until the duration ends.
func drive(cfg config, op func(client int, n int, rng *rand.Rand) (bool, int, error)) (result, error) {
	var r result
	var ops, failed, retries atomic.Int64
	lats := make([][]time.Duration, cfg.clients)
	var firstErr atomic.Value
	deadline := time.Now().Add(cfg.duration)
	cpu0, wr0 := cpuTime(), writtenBytes()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			lat := make([]time.Duration, 0, 1<<16)
			for n := 0; time.Now().Before(deadline); n++ {
				t0 := time.Now()
				ok, retried, err := op(c, n, rng)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat = append(lat, time.Since(t0))
				retries.Add(int64(retried))
				if ok {
					ops.Add(1)
				} else {
					failed.Add(1)
				}
			}
			lats[c] = lat
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.cpu = cpuTime() - cpu0
	r.written = -1
	if wr1 := writtenBytes(); wr0 >= 0 && wr1 >= 0 {
		r.written = wr1 - wr0
	}
	if e, _ := firstErr.Load().(error); e != nil {
		return r, e
	}
	r.ops, r.failed, r.retries = ops.Load(), failed.Load(), retries.Load()
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	return r, nil
}

func pick(rng *rand.Rand, n int) (string, string, int64) {
	a := rng.IntN(n)
	b := rng.IntN(n - 1)
	if b >= a {
		b++
	}
	return acct(a), acct(b), 1 + rng.Int64N(100)
}

func acct(i int) string { return fmt.Sprintf("acct%05d", i) }

// seed opens the accounts with their opening deposits in the bank's
// schema, in one request (the bank's cache keys warmed, as in a
// long-running server).
var seed = sqlreactor.Method("sqlbench.seed", func(tx *sqlreactor.Tx, n int) (int, error) {
	for i := range n {
		seq := int64(i + 1)
		if _, err := tx.Exec(`INSERT INTO accounts (id, balance, last) VALUES (?, ?, ?)`, acct(i), initial, seq); err != nil {
			return i, err
		}
		if _, err := tx.Exec(`INSERT INTO entries (seq, xkey, src, dst, amount, at, src_prev, dst_prev) VALUES (?, ?, '', ?, ?, 0, 0, 0)`,
			seq, "seed"+acct(i), acct(i), initial); err != nil {
			return i, err
		}
		tx.Put("acct:"+acct(i), int64(initial))
		tx.Put("last:"+acct(i), seq)
	}
	return n, nil
})

var bgctx = context.Background()

func freshSchema(dsn, name string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`DROP SCHEMA IF EXISTS ` + name + ` CASCADE`); err != nil {
		return err
	}
	_, err = db.Exec(`CREATE SCHEMA ` + name)
	return err
}

func runReactor(cfg config, mode, backend string) (result, error) {
	ctx := context.Background()
	old := strings.HasSuffix(mode, "-old")
	schema := bank.SchemaFor(backend)
	if old {
		schema = oldSchema
	}
	var db *sqlreactor.DB
	var err error
	switch backend {
	case "postgres":
		if err := freshSchema(cfg.dsn, "sqlbench_reactor"); err != nil {
			return result{}, err
		}
		db, err = postgres.Open(ctx, postgres.Options{DSN: cfg.dsn, SearchPath: "sqlbench_reactor", Schema: schema,
			NoPipeline: strings.HasSuffix(mode, "-nopipe")})
	default:
		path := filepath.Join(cfg.dir, mode+".db")
		for _, sfx := range []string{"", "-wal", "-shm"} {
			os.Remove(path + sfx) // a mode named twice in -modes starts afresh
		}
		db, err = sqlite.Open(ctx, sqlite.Options{Path: path, Driver: backend, Schema: schema, PageSize: cfg.pageSize})
	}
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	rt, err := reactor.New(reactor.Config{})
	if err != nil {
		return result{}, err
	}
	ref, err := bank.Register(rt, "/bank", db)
	if err != nil {
		return result{}, err
	}
	if err := rt.Start(ctx); err != nil {
		return result{}, err
	}
	defer rt.Close(ctx)
	seedReq, transfer := seed, bank.TransferMoney
	if old {
		seedReq, transfer = oldSeed, oldTransfer
	}
	if _, err := seedReq.Call(ctx, ref, cfg.accounts); err != nil {
		return result{}, fmt.Errorf("seed: %w", err)
	}
	before := db.Stats()
	r, err := drive(cfg, func(c, n int, rng *rand.Rand) (bool, int, error) {
		from, to, amt := pick(rng, cfg.accounts)
		_, err := transfer.Call(ctx, ref, bank.Transfer{Key: fmt.Sprintf("c%d-%d", c, n), From: from, To: to, Amount: amt})
		if errors.Is(err, bank.ErrOverdraft) {
			return false, 0, nil
		}
		return err == nil, 0, err
	})
	if err != nil {
		return r, err
	}
	after := db.Stats()
	r.mode = mode
	r.batches = after.Batches - before.Batches
	r.maxBatch = after.MaxBatch
	r.cacheHits, r.cacheMiss = after.Cache.Hits-before.Cache.Hits, after.Cache.Misses-before.Cache.Misses
	r.commitFail = after.CommitFailures
	r.pipelines, r.reruns = after.Pipelines-before.Pipelines, after.Reruns-before.Reruns
	bal, dep, err := bank.Total(ctx, db)
	r.invariant = invariant(bal, dep, int64(cfg.accounts)*initial, err)
	return r, nil
}

func invariant(bal, dep, want int64, err error) string {
	switch {
	case err != nil:
		return "ERROR " + err.Error()
	case bal != want || dep != want:
		return fmt.Sprintf("BROKEN: sum %d, deposits %d, want %d", bal, dep, want)
	}
	return fmt.Sprintf("ok (sum %d)", bal)
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func runConventional(cfg config, mode string, serializable bool) (result, error) {
	ctx := context.Background()
	schema := "sqlbench_conv"
	if err := freshSchema(cfg.dsn, schema); err != nil {
		return result{}, err
	}
	db, err := postgres.OpenDB(cfg.dsn, schema)
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(cfg.clients)
	db.SetMaxIdleConns(cfg.clients)
	for _, s := range oldSchema {
		if _, err := db.Exec(s); err != nil {
			return result{}, err
		}
	}
	tx, err := db.Begin()
	if err != nil {
		return result{}, err
	}
	for i := range cfg.accounts {
		if _, err := tx.Exec(`INSERT INTO accounts (id, balance) VALUES ($1, $2)`, acct(i), initial); err != nil {
			return result{}, err
		}
		if _, err := tx.Exec(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES ($1, '', $2, $3, 0)`, "seed"+acct(i), acct(i), initial); err != nil {
			return result{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return result{}, err
	}
	iso := sql.LevelReadCommitted
	if serializable {
		iso = sql.LevelSerializable
	}
	transfer := func(key, from, to string, amt int64, now int64) (bool, error) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: iso})
		if err != nil {
			return false, err
		}
		defer tx.Rollback()
		res, err := tx.Exec(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (xkey) DO NOTHING`, key, from, to, amt, now)
		if err != nil {
			return false, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return true, tx.Commit() // already done
		}
		lock := ""
		if !serializable {
			lock = " FOR UPDATE"
		}
		// Fixed lock order: the smaller id first.
		first, second := from, to
		if second < first {
			first, second = second, first
		}
		bal := map[string]int64{}
		for _, id := range []string{first, second} {
			var b int64
			if err := tx.QueryRow(`SELECT balance FROM accounts WHERE id = $1`+lock, id).Scan(&b); err != nil {
				return false, err
			}
			bal[id] = b
		}
		if bal[from] < amt {
			return false, nil // overdraft: rolled back
		}
		if _, err := tx.Exec(`UPDATE accounts SET balance = balance - $1 WHERE id = $2`, amt, from); err != nil {
			return false, err
		}
		if _, err := tx.Exec(`UPDATE accounts SET balance = balance + $1 WHERE id = $2`, amt, to); err != nil {
			return false, err
		}
		return true, tx.Commit()
	}
	r, err := drive(cfg, func(c, n int, rng *rand.Rand) (bool, int, error) {
		from, to, amt := pick(rng, cfg.accounts)
		key := fmt.Sprintf("c%d-%d", c, n)
		for retries := 0; ; retries++ {
			ok, err := transfer(key, from, to, amt, time.Now().UnixNano())
			if err != nil && retryable(err) && retries < 1000 {
				continue
			}
			return ok, retries, err
		}
	})
	if err != nil {
		return r, err
	}
	r.mode = mode
	var bal, dep int64
	err = db.QueryRow(`SELECT COALESCE(SUM(balance),0), (SELECT COALESCE(SUM(amount),0) FROM entries WHERE src = '') FROM accounts`).Scan(&bal, &dep)
	r.invariant = invariant(bal, dep, int64(cfg.accounts)*initial, err)
	return r, nil
}
