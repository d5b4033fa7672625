package sim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// The DB reactor under simulated SQL failures: the ledger example
// (examples/bank) on a real SQLite file, whose connections pass through
// the fault-injecting driver wrapper of sqlfault.go. Groups of requests
// are sent at once so that they share a batch (one transaction, a
// savepoint each) while a fault is armed:
//
//   - a data statement fails (an UPDATE or INSERT of one request): that
//     request's savepoint rolls back and it alone gets the error; the
//     batch's other requests commit;
//   - a savepoint operation fails (RELEASE / ROLLBACK TO): the batch is
//     poisoned, every request gets ErrCommit;
//   - COMMIT fails (not executed): every request of the batch gets
//     ErrCommit, the cache changes of the batch are undone;
//   - the process dies mid-batch (a statement never runs) or right after
//     COMMIT took effect, before anyone heard: every answer is unknown;
//     the process restarts on the same file and the requests are retried
//     with their idempotency keys.
//
// The oracle, after every group: the balances through the DB reactor (the
// coherent cache) and through the read pool (the database) equal the
// model's exactly; every ledger key is in the database exactly once and
// only for operations the model applied; and, in one turn of the reactor,
// every cached balance equals the row in the database.

type sqlOp struct {
	key, kind, from, to string
	amount              int64
}

type sqlSim struct {
	cfg   Config
	rng   *rand.Rand
	res   Result
	dir   string
	f     *sqlFaults
	rt    *reactor.Runtime
	db    *sqlreactor.DB
	ref   reactor.Ref
	log   *slog.Logger
	clock *Clock

	// journaled: the DB reactor is registered with reactor.Journaled() on a
	// simulated journal (half the seeds); a crash then replays the requests
	// its last commit did not cover.
	journaled bool
	disk      *faultfs.FS
	view      *faultfs.Process
	j         *journal.Journal

	balance   map[string]int64
	deposited int64
	// told holds the requests whose callers were told they failed (a
	// statement or the commit failed), not retried yet: none may ever be
	// in the database until its retry.
	told map[string]sqlOp
	// wholeFailed: the last group's batch failed as a whole; quiet: the
	// checks after it are skipped, so that nothing commits before the next
	// group.
	wholeFailed, quiet bool
	applied            map[string]bool // ledger keys the model applied
	accounts           []string
}

// auditReq is answered by sqlAudit.
type auditReq struct{ IDs []string }

// sqlAudit compares, on the DB reactor's own turn and inside its
// transaction, every cached balance with the database's row. The cache key
// is examples/bank's ("acct:" + id): this audit is a white-box check of
// that example's use of the cache.
var sqlAudit = sqlreactor.Method("sim.sql.audit", func(tx *sqlreactor.Tx, r auditReq) (int, error) {
	cached := 0
	for _, id := range r.IDs {
		var row int64
		if err := tx.QueryRow(`SELECT balance FROM accounts WHERE id = ?`, id).Scan(&row); err != nil {
			return cached, fmt.Errorf("audit: read %s: %w", id, err)
		}
		v, ok := tx.Get("acct:" + id)
		if !ok {
			continue
		}
		cached++
		if b, _ := v.(int64); b != row {
			return cached, fmt.Errorf("cache incoherent: %s cached %v, database %d", id, v, row)
		}
	}
	return cached, nil
})

// RunSQL runs the DB-reactor workload for cfg.Seed.
func RunSQL(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	// On a RAM file system where there is one: SQLite's fsyncs (synchronous
	// FULL) then cost nothing, and the simulated crashes are at the SQL
	// layer anyway (a power cut under SQLite itself is not simulated).
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "reactor-sqlsim-")
	if err != nil && base != "" {
		dir, err = os.MkdirTemp("", "reactor-sqlsim-")
	}
	if err != nil {
		return Result{}, fmt.Errorf("sim: sql: %w", err)
	}
	defer os.RemoveAll(dir)
	s := &sqlSim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5e1)), res: Result{Seed: cfg.Seed, Reached: map[string]int{}},
		dir: dir, log: cfg.Logger, clock: NewClock(epoch), balance: map[string]int64{}, applied: map[string]bool{},
		told: map[string]sqlOp{}, disk: faultfs.New()}
	s.journaled = s.rng.IntN(2) == 0
	err = s.run(ctx)
	s.stop(ctx)
	if err != nil {
		return s.res, fmt.Errorf("sim: sql seed %d: %w\nrerun exactly this run: %s", cfg.Seed, err, RerunSQL(cfg))
	}
	return s.res, nil
}

// RerunSQL is the command that runs cfg's DB-reactor workload again.
func RerunSQL(cfg Config) string {
	return fmt.Sprintf("go test ./reactortest/sim -run TestSQL -count=1 -v -args -sim.seed=%d -sim.steps=%d", cfg.Seed, cfg.Steps)
}

func (s *sqlSim) reach(k string) { s.res.Reached[k]++ }

// open starts a process: the SQLite file (created or as the last process
// left it), the DB reactor on it, and a runtime.
func (s *sqlSim) open(ctx context.Context) error {
	s.f = &sqlFaults{}
	path := filepath.Join(s.dir, "bank.db")
	drv := sqlite.DefaultDriver
	w, err := openFaultDB(drv, sqlite.DSN(drv, path, 5*time.Second, false), s.f)
	if err != nil {
		return err
	}
	w.SetMaxOpenConns(1)
	r, err := openFaultDB(drv, sqlite.DSN(drv, path, 5*time.Second, true), s.f)
	if err != nil {
		w.Close()
		return err
	}
	db, err := sqlreactor.Open(ctx, sqlreactor.Config{Writer: w, Reader: r, Dialect: sqlite.Dialect{},
		Schema: bank.Schema, Logger: s.log, CacheSize: 1 + s.rng.IntN(2*s.cfg.Accounts), // small: entries are evicted too
		Close: func() error { return errors.Join(r.Close(), w.Close()) }})
	if err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("open db: %w", err)
	}
	rcfg := reactor.Config{Logger: s.log, Timers: s.clock}
	var opts []reactor.Option
	if s.journaled {
		s.view = faultfs.NewProcess(s.disk)
		j, err := journal.Open(ctx, journal.Options{Dir: "/sql/journal", FS: s.view, Logger: s.log})
		if err != nil {
			db.Close()
			return fmt.Errorf("open journal: %w", err)
		}
		store, err := file.Open(file.Options{Dir: "/sql/checkpoints", FS: s.view})
		if err != nil {
			j.Close()
			db.Close()
			return fmt.Errorf("open checkpoints: %w", err)
		}
		s.j = j
		rcfg.Journal, rcfg.Store, rcfg.CheckpointInterval = j, store, checkpointEvery
		opts = append(opts, reactor.Journaled())
	}
	rt, err := reactor.New(rcfg)
	if err == nil {
		s.ref, err = bank.Register(rt, "/bank", db, opts...)
	}
	if err == nil {
		err = rt.Start(ctx)
	}
	if err != nil {
		if s.j != nil {
			s.view.Kill()
			s.j.Close()
			s.j = nil
		}
		if rt != nil {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			rt.Close(cctx)
		}
		db.Close()
		return fmt.Errorf("start: %w", err)
	}
	s.rt, s.db = rt, db
	return nil
}

// stop ends the process. After a simulated death the connection answers
// nothing; Close only releases it (SQLite rolls back what was not
// committed, as it would for a killed process).
func (s *sqlSim) stop(ctx context.Context) {
	if s.rt == nil {
		return
	}
	dead := s.f.isDead()
	if dead && s.j != nil {
		// The journal dies with the process (a power cut half of the
		// time): its unsynced bytes may go, none it acknowledged.
		s.view.Kill()
		if s.rng.IntN(2) == 0 {
			s.disk.CrashTorn(s.rng)
		}
		s.j.Close()
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	s.rt.Close(cctx)
	cancel()
	if s.j != nil && !dead {
		s.j.Close()
	}
	s.j = nil
	s.db.Close()
	s.rt, s.db = nil, nil
}

func (s *sqlSim) call(ctx context.Context, o sqlOp) (bank.Receipt, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if o.kind == "deposit" {
		return bank.DepositMoney.Call(cctx, s.ref, bank.Deposit{Key: o.key, Account: o.from, Amount: o.amount})
	}
	return bank.TransferMoney.Call(cctx, s.ref, bank.Transfer{Key: o.key, From: o.from, To: o.to, Amount: o.amount})
}

// modelApply applies o to the model; it reports ErrOverdraft if the model
// refuses it.
func (s *sqlSim) modelApply(o sqlOp) error {
	if s.applied[o.key] {
		return fmt.Errorf("model: %s applied twice", o.key)
	}
	if o.kind == "transfer" {
		if s.balance[o.from] < o.amount {
			return bank.ErrOverdraft
		}
		s.balance[o.from] -= o.amount
		s.balance[o.to] += o.amount
	} else {
		s.balance[o.from] += o.amount
		s.deposited += o.amount
	}
	s.applied[o.key] = true
	return nil
}

// group picks up to six operations whose outcomes do not depend on the
// order they run in: each account is debited at most once, by no more than
// it held before the group (credits only add), except deliberate
// overdrafts, which exceed everything the account could hold.
func (s *sqlSim) group(next *int) []sqlOp {
	n := 1 + s.rng.IntN(6)
	debited := map[string]bool{}
	var g []sqlOp
	var incoming int64
	for range n {
		*next++
		o := sqlOp{key: "k" + strconv.Itoa(*next), from: s.accounts[s.rng.IntN(len(s.accounts))], amount: int64(1 + s.rng.IntN(100))}
		if s.rng.IntN(3) == 0 || s.balance[o.from] == 0 || debited[o.from] {
			o.kind = "deposit"
			incoming += o.amount
		} else {
			o.kind = "transfer"
			for o.to = o.from; o.to == o.from; {
				o.to = s.accounts[s.rng.IntN(len(s.accounts))]
			}
			debited[o.from] = true
			if s.rng.IntN(8) == 0 {
				o.amount = s.deposited + incoming + 1000 // more than the whole bank: refused in any order
			} else {
				o.amount = 1 + s.rng.Int64N(s.balance[o.from])
			}
		}
		g = append(g, o)
	}
	return g
}

func (s *sqlSim) run(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	if s.journaled {
		s.reach("sql: journaled run")
	}
	for i := range s.cfg.Accounts {
		id := "a" + strconv.Itoa(i)
		s.accounts = append(s.accounts, id)
		if _, err := bank.Open.Call(ctx, s.ref, bank.OpenAccount{ID: id}); err != nil {
			return fmt.Errorf("open account %s: %w", id, err)
		}
	}
	next := 0
	for step := 0; step < s.cfg.Steps; step++ {
		if len(s.told) > 0 && s.rng.IntN(3) == 0 {
			// The callers told of a failure try again, alone: a transfer's
			// answer now depends on today's balance.
			ops := slices.SortedFunc(maps.Values(s.told), func(a, b sqlOp) int { return strings.Compare(a.key, b.key) })
			clear(s.told)
			if err := s.retry(ctx, ops, map[string]int64{}, true); err != nil {
				return fmt.Errorf("step %d: %w", step, err)
			}
		}
		g := s.group(&next)
		fault := s.pickFault(len(g))
		if err := s.runGroup(ctx, g, fault); err != nil {
			return fmt.Errorf("step %d: %w", step, err)
		}
		if s.quiet {
			s.quiet = false
			continue
		}
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("after step %d (fault %v): %w", step, faultName(fault), err)
		}
		s.clock.Advance(time.Duration(s.rng.IntN(2000)) * time.Millisecond)
	}
	// The end: a restart, and the database must still be what the model
	// says (every commit durable, nothing half-done).
	s.stop(ctx)
	if err := s.open(ctx); err != nil {
		return fmt.Errorf("final reopen: %w", err)
	}
	return s.check(ctx)
}

func faultName(f *sqlFault) string {
	if f == nil {
		return "none"
	}
	return f.name
}

// pickFault arms at most one failure for a group of n requests.
func (s *sqlSim) pickFault(n int) *sqlFault {
	if s.wholeFailed && s.rng.IntN(2) == 0 {
		// Right after a batch whose every request was told it failed:
		// die before the next commit moves the applied sequence past it.
		s.wholeFailed = false
		return &sqlFault{prefix: "SAVEPOINT", die: true, name: "crash mid-batch after a failed batch"}
	}
	s.wholeFailed = false
	switch k := s.rng.IntN(20); {
	case k < 5:
		// A data statement of one request (which one depends on where the
		// batch is when it runs).
		prefix := "UPDATE accounts"
		if s.rng.IntN(2) == 0 {
			prefix = "INSERT INTO entries"
		}
		return &sqlFault{prefix: prefix, skip: s.rng.IntN(n), name: "statement fails"}
	case k < 7:
		return &sqlFault{prefix: "COMMIT", name: "COMMIT fails"}
	case k < 9:
		return &sqlFault{prefix: "COMMIT", after: true, name: "crash after COMMIT"}
	case k < 10:
		prefix := "RELEASE SAVEPOINT"
		if s.rng.IntN(2) == 0 {
			prefix = "ROLLBACK TO SAVEPOINT"
		}
		return &sqlFault{prefix: prefix, name: "savepoint op fails"}
	case k < 11:
		return &sqlFault{prefix: "SAVEPOINT", skip: s.rng.IntN(n), die: true, name: "crash mid-batch"}
	case k < 12:
		return &sqlFault{prefix: "BEGIN", name: "BEGIN fails"}
	}
	return nil
}

type sqlOutcome struct {
	o   sqlOp
	rc  bank.Receipt
	err error
}

// gate holds the DB reactor's turn until the whole group is in its inbox,
// so that the group is one batch (one transaction): the first request of
// a group would otherwise often run alone.
var gate = sqlreactor.Method("sim.sql.gate", func(_ *sqlreactor.Tx, id string) (struct{}, error) {
	v, ok := gates.Load(id)
	if !ok {
		return struct{}{}, nil
	}
	g := v.(*gateChans)
	close(g.entered)
	select {
	case <-g.open:
	case <-time.After(10 * time.Second): // a stuck simulator, not a simulated delay
	}
	return struct{}{}, nil
})

type gateChans struct{ entered, open chan struct{} }

var (
	gates   sync.Map // id → *gateChans
	gateSeq sync.Mutex
	gateN   int
)

// spin waits (yielding, never sleeping) until cond holds; false after ten
// seconds of real time, a stuck simulator.
func spin(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
	}
	return true
}

func (s *sqlSim) received() uint64 {
	for _, st := range s.rt.Stats() {
		if st.Addr == "/bank" {
			return st.Received
		}
	}
	return 0
}

func (s *sqlSim) runGroup(ctx context.Context, g []sqlOp, fault *sqlFault) error {
	gateSeq.Lock()
	gateN++
	id := fmt.Sprintf("g%d", gateN)
	gateSeq.Unlock()
	gc := &gateChans{entered: make(chan struct{}), open: make(chan struct{})}
	gates.Store(id, gc)
	defer gates.Delete(id)
	gated := make(chan error, 1)
	go func() {
		_, err := gate.Call(ctx, s.ref, id)
		gated <- err
	}()
	// The gate's turn holds the reactor: the group queues behind it.
	<-gc.entered
	base := s.received()
	before := s.db.Stats()
	s.f.arm(fault)
	out := make([]sqlOutcome, len(g))
	var wg sync.WaitGroup
	for i, o := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := s.call(ctx, o)
			out[i] = sqlOutcome{o, rc, err}
		}()
	}
	queued := spin(func() bool { return s.received() >= base+uint64(len(g)) })
	close(gc.open)
	if !queued {
		return errors.New("the group never reached the reactor's inbox")
	}
	wg.Wait()
	if err := <-gated; err != nil && !s.f.isDead() {
		return fmt.Errorf("gate: %w", err)
	}
	s.f.arm(nil)
	fired := s.f.takeFired()
	after := s.db.Stats()
	oneBatch := after.Batches-before.Batches <= 2 // the gate's and the group's
	for _, name := range fired {
		s.reach("sql: " + name)
	}
	dead := s.f.isDead()
	start := maps.Clone(s.balance) // a non-deliberate transfer never exceeds its source's balance before the group
	var unknown []sqlOp
	okN, failedN := 0, 0
	for _, r := range out {
		switch {
		case dead:
			unknown = append(unknown, r.o)
		case r.err == nil:
			if r.rc.Replayed {
				return fmt.Errorf("%s: a first request answered as a replay", r.o.key)
			}
			if err := s.modelApply(r.o); err != nil {
				return fmt.Errorf("%s succeeded, the model says %v", r.o.key, err)
			}
			okN++
		case errors.Is(r.err, bank.ErrOverdraft):
			if r.o.kind != "transfer" || r.o.amount <= start[r.o.from] {
				return fmt.Errorf("%s refused as an overdraft, the model allows it: %v", r.o.key, r.err)
			}
		case errors.Is(r.err, sqlreactor.ErrOutcomeUnknown):
			// The batch failed and the DB could not record it: a replay
			// may apply it. Its retry tells.
			s.reach("sql: failed batch not recorded (outcome unknown)")
			unknown = append(unknown, r.o)
		case errors.Is(r.err, sqlreactor.ErrCommit), errors.Is(r.err, errInjected):
			// The whole batch failed, or its statement did (its savepoint
			// rolled back, it alone): its caller was told it failed. It is
			// retried later, maybe after a crash: until then it must not
			// be in the database.
			s.told[r.o.key] = r.o
			failedN++
		default:
			return fmt.Errorf("%s: unexpected error %v (faults fired: %v)", r.o.key, r.err, fired)
		}
	}
	if len(fired) > 0 && oneBatch && len(g) > 1 {
		switch {
		case dead:
			s.reach("sql: crash with a batch in flight")
		case okN > 0 && failedN > 0:
			s.reach("sql: one request failed, its batch committed")
		case okN == 0 && failedN == len(g):
			s.reach("sql: whole batch failed")
			s.wholeFailed = true
		}
	}
	if s.wholeFailed && s.rng.IntN(2) == 0 {
		// Quiet: no check (its reads are requests too, whose commit moves
		// the applied sequence) until the next group, which may crash
		// before anything commits after the failed batch.
		s.quiet = true
	}
	if !dead && !s.quiet {
		// A failed request must have left nothing: not its ledger row, not
		// its balance change, not its cache entry. check() sees the
		// balances; here, before any retry, the ledger.
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("after a failure (%v), before the retries: %w", fired, err)
		}
	}
	if dead {
		s.reach("sql: restart")
		s.stop(ctx)
		if err := s.open(ctx); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		if st := s.db.Stats(); st.Skipped > 0 {
			s.reach("sql: replay skipped a committed request")
		}
		if st := s.db.Stats(); st.Requests > st.Skipped {
			s.reach("sql: replay ran a request again")
		}
		// No check yet: a request of unknown outcome may be in the
		// database (it committed) or not; its retry tells.
	}
	// Retry every request of unknown outcome with its key, one at a time:
	// it gets its first receipt if it was applied, is applied now if not.
	return s.retry(ctx, unknown, start, false)
}

// retry sends ops again with their keys, one at a time. told: their callers
// were told they failed, so a receipt of an earlier execution is a lie
// found out.
func (s *sqlSim) retry(ctx context.Context, ops []sqlOp, start map[string]int64, told bool) error {
	for _, o := range ops {
		rc, err := s.call(ctx, o)
		switch {
		case err == nil:
			if rc.Replayed && told {
				return fmt.Errorf("retry of %s: its caller was told it failed, and it had been applied (%+v)", o.key, rc)
			}
			if rc.Replayed {
				s.reach("sql: retry found its first receipt")
			} else if told {
				s.reach("sql: failed request retried")
			}
			if err := s.modelApply(o); err != nil {
				return fmt.Errorf("retry of %s succeeded, the model says %v", o.key, err)
			}
		case errors.Is(err, bank.ErrOverdraft):
			if o.amount <= start[o.from] || told && o.amount <= s.balance[o.from] {
				return fmt.Errorf("retry of %s refused as an overdraft, the model allows it: %v", o.key, err)
			}
		default:
			return fmt.Errorf("retry of %s: %w", o.key, err)
		}
	}
	return nil
}

// check compares the reactor (through its cache), the database (through
// the read pool) and the model, and audits the cache against the rows.
func (s *sqlSim) check(ctx context.Context) error {
	// The database, from the read pool.
	rows := map[string]int64{}
	var keys []string
	var deposits int64
	err := s.db.View(ctx, func(r *sqlreactor.ReadTx) error {
		if err := r.Query(`SELECT id, balance FROM accounts`, nil, func(rs *sql.Rows) error {
			var id string
			var b int64
			if err := rs.Scan(&id, &b); err != nil {
				return err
			}
			rows[id] = b
			return nil
		}); err != nil {
			return err
		}
		if err := r.Query(`SELECT xkey FROM entries`, nil, func(rs *sql.Rows) error {
			var k string
			if err := rs.Scan(&k); err != nil {
				return err
			}
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		return r.QueryRow(`SELECT COALESCE(SUM(amount), 0) FROM entries WHERE src = ''`).Scan(&deposits)
	})
	if err != nil {
		return fmt.Errorf("read the database: %w", err)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := s.told[k]; ok {
			return fmt.Errorf("database: ledger key %s is there, and its caller was told it failed (journaled %v)", k, s.journaled)
		}
		if !s.applied[k] {
			return fmt.Errorf("database: ledger key %s is there, the model never applied it (a failed request left its row)", k)
		}
	}
	if len(keys) != len(s.applied) || deposits != s.deposited {
		return fmt.Errorf("database: %d ledger keys (deposits %d), the model applied %d (deposited %d)", len(keys), deposits, len(s.applied), s.deposited)
	}
	for _, id := range s.accounts {
		if rows[id] != s.balance[id] {
			return fmt.Errorf("database: %s holds %d, the model %d (database %v, model %v)", id, rows[id], s.balance[id], rows, s.balance)
		}
	}
	// The reactor's answers (the coherent cache).
	for _, id := range s.accounts {
		a, err := bank.Balance.Call(ctx, s.ref, id)
		if err != nil {
			return fmt.Errorf("balance %s: %w", id, err)
		}
		if a.Balance != s.balance[id] {
			return fmt.Errorf("reactor: %s answers %d, the database and the model hold %d", id, a.Balance, s.balance[id])
		}
	}
	// The cache against the rows, on the reactor's turn.
	n, err := sqlAudit.Call(ctx, s.ref, auditReq{IDs: s.accounts})
	if err != nil {
		return err
	}
	if n > 0 {
		s.reach("sql: cache audited")
	}
	return nil
}
