// Package sim runs seeded simulations of journaled services under process
// crashes, power cuts (with torn writes) and full disks, and checks after
// every recovery that nothing acknowledged was lost, nothing was applied
// twice and nothing unacknowledged was reported done.
//
// The workload is a bank: journaled accounts (keyed children, few resident,
// so they are evicted and reloaded) take deposits and transfers; a transfer
// debits one account and sends the credit to another (a message between
// journaled services, delivered exactly once across crashes by origin
// keys). Every client operation carries an idempotency key. The oracle is
// a model of the acknowledged operations: an operation whose outcome was
// unknown (the process died under it) is retried with its key after the
// restart — the first answer if it was applied, applied now if not — so at
// every check the balances must equal the model exactly and the money in
// the bank must equal what was deposited.
//
// A seed fixes the workload, the fault schedule and the points at which
// faults strike; goroutine timing (the journal's writer, the checkpoint
// writers) is the machine's, so a seed reproduces a run's shape, not every
// interleaving. Run reports which interesting states a run reached.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/internal/failpoint"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// Config is one simulation run.
type Config struct {
	Seed     uint64
	Steps    int // client operations (default 200)
	Accounts int // default 6
	// InFlight is how many client operations may be outstanding at once
	// (default 4): faults strike while some are in flight.
	InFlight int
	// Durability of the journal (default journal.Sync()). A run with
	// journal.None() is the planted bug the harness must find: it
	// acknowledges before fsync.
	Durability journal.Durability
	Logger     *slog.Logger // default: discard

	// plantOnLoadBug makes the differential bank's accounts skip
	// rebuilding their derived field on load: the planted bug that only a
	// differential run finds (set by the package's tests only).
	plantOnLoadBug bool
}

// Result says what a run did and which rare states it reached.
type Result struct {
	Seed                                     uint64
	Ops, Acked, Unknown                      int
	Crashes, PowerCuts, DiskFull, Checkpoint int
	// Reached counts the interesting states the run got into ("sometimes"
	// assertions); docs/SIMULATION.md lists them and what each means.
	Reached map[string]int
	// SimTime is how far the simulated clock moved.
	SimTime time.Duration
}

func (r Result) String() string {
	keys := make([]string, 0, len(r.Reached))
	for k := range r.Reached {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, r.Reached[k])
	}
	return fmt.Sprintf("seed %d: %d ops (%d acked, %d unknown), %d crashes, %d power cuts, %d disk-full, %d checkpoint rounds, %v simulated;%s",
		r.Seed, r.Ops, r.Acked, r.Unknown, r.Crashes, r.PowerCuts, r.DiskFull, r.Checkpoint, r.SimTime, b.String())
}

// Account is the simulated service.
type Account struct{ Balance int64 }

type transfer struct {
	To     string
	Amount int64
}

// ErrInsufficient: a transfer larger than the balance.
var ErrInsufficient = reactor.NewError("sim.insufficient", reactor.CodeFailedPrecondition, "sim: insufficient funds")

func (a *Account) Deposit(_ *reactor.Ctx, amount int64) (int64, error) {
	a.Balance += amount
	return a.Balance, nil
}

func (a *Account) Transfer(c *reactor.Ctx, t transfer) (int64, error) {
	if t.Amount > a.Balance {
		return a.Balance, ErrInsufficient
	}
	a.Balance -= t.Amount
	return a.Balance, credit.Send(c, c.Self().Parent().Child(t.To), t.Amount)
}

func (a *Account) Credit(_ *reactor.Ctx, amount int64) (int64, error) {
	a.Balance += amount
	return a.Balance, nil
}

func (a *Account) Read(*reactor.Ctx, struct{}) (int64, error) { return a.Balance, nil }

var (
	deposit   = reactor.Method("sim.account.deposit", (*Account).Deposit)
	mTransfer = reactor.Method("sim.account.transfer", (*Account).Transfer)
	credit    = reactor.Method("sim.account.credit", (*Account).Credit)
	read      = reactor.Method("sim.account.read", (*Account).Read, reactor.ReadOnly())
)

type op struct {
	key    string
	kind   string // deposit, transfer
	from   string
	to     string
	amount int64
}

// model is what the client knows.
type model struct {
	balance   map[string]int64
	deposited int64
}

func (m *model) apply(o op) error {
	switch o.kind {
	case "deposit":
		m.balance[o.from] += o.amount
		m.deposited += o.amount
	case "transfer":
		if o.amount > m.balance[o.from] {
			return ErrInsufficient
		}
		m.balance[o.from] -= o.amount
		m.balance[o.to] += o.amount
	}
	return nil
}

// process is one incarnation of the server on the simulated disk.
type process struct {
	view     *faultfs.Process
	j        *journal.Journal
	rt       *reactor.Runtime
	disable  []func() // the process's failpoint hooks
	evicted0 uint64
}

type sim struct {
	cfg   Config
	rng   *rand.Rand
	disk  *faultfs.FS
	log   *slog.Logger
	res   Result
	m     model
	p     *process
	clock *Clock
	// ckptEvery is the runtime's CheckpointInterval (default
	// checkpointEvery); a differential run's plain side sets it out of
	// reach so that it never checkpoints.
	ckptEvery time.Duration
	// register registers the workload's services (default: the bank's).
	register func(*reactor.Runtime) error
	// fullDisk arms ENOSPC on the journal's next write; eioWrite and
	// eioSync EIO on its next write or fsync (the journal then fail-stops
	// and the process must restart); slowSync holds its next fsync until
	// the simulation releases it.
	fullDisk, eioWrite, eioSync, slowSync atomic.Bool
	// journalFailed: an EIO fail-stopped the journal; restart at the end
	// of the step.
	journalFailed atomic.Bool
	held          chan struct{} // closed to release a held fsync (guarded by mu)
	noHold        bool          // guarded by mu: see holdSync
	// armed failpoints (failpoint names); dying: one fired and killed the
	// process, which the main loop restarts after the step.
	armed sync.Map
	dying atomic.Bool
	view  atomic.Pointer[faultfs.Process] // the live process's view
	mu    sync.Mutex                      // guards res.Reached and held
}

var errFailpoint = errors.New("sim: the process died at a failpoint")

// reach counts a "sometimes" state; safe from any goroutine.
func (s *sim) reach(state string) { s.reachN(state, 1) }

func (s *sim) reachN(state string, n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.res.Reached[state] += n
	s.mu.Unlock()
}

// onFailpoint is the simulation's hook for the failpoints of its own
// process: an armed point kills the process right there.
func (s *sim) onFailpoint(name string) error {
	if v, ok := s.armed.Load(name); !ok || !v.(*atomic.Bool).CompareAndSwap(true, false) {
		return nil
	}
	s.reach("failpoint " + name)
	s.dying.Store(true)
	if v := s.view.Load(); v != nil {
		v.Kill()
	}
	return errFailpoint
}

func (s *sim) arm(name string) {
	v, _ := s.armed.LoadOrStore(name, new(atomic.Bool))
	v.(*atomic.Bool).Store(true)
}

func (s *sim) disarm() {
	s.armed.Range(func(_, v any) bool { v.(*atomic.Bool).Store(false); return true })
}

// holdSync is the slow-fsync fault: the journal's fsync waits until the
// simulation releases it, while more operations arrive, time moves on and
// crashes strike. Called from the journal's writer. While the simulation
// waits for its operations (noHold), nothing is held.
func (s *sim) holdSync() {
	s.mu.Lock()
	// Armed, and not while the simulation waits: a hold is consumed only
	// by an fsync that can be released.
	if s.noHold || !s.slowSync.CompareAndSwap(true, false) {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.held = ch
	s.res.Reached["slow fsync held a batch"]++
	s.mu.Unlock()
	<-ch
}

// release lets a held fsync go on and holds no other until allowHold; it
// reports whether one was held.
func (s *sim) release() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noHold = true
	if s.held == nil {
		return false
	}
	close(s.held)
	s.held = nil
	return true
}

// allowHold lets the slow-fsync fault hold again (new operations are
// being issued concurrently).
func (s *sim) allowHold() {
	s.mu.Lock()
	s.noHold = false
	s.mu.Unlock()
}

// Rerun is the command that runs cfg again (add -sim.log for its trace).
func Rerun(cfg Config) string {
	c := fmt.Sprintf("go test ./reactortest/sim -run TestSeeds -count=1 -v -args -sim.seed=%d", cfg.Seed)
	if cfg.Steps != 0 {
		c += fmt.Sprintf(" -sim.steps=%d", cfg.Steps)
	}
	return c
}

// withDefaults fills what cfg leaves unset; every workload starts with it.
func (cfg Config) withDefaults() Config {
	if cfg.Steps <= 0 {
		cfg.Steps = 200
	}
	if cfg.Accounts <= 0 {
		cfg.Accounts = 6
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4
	}
	if cfg.Durability == (journal.Durability{}) {
		cfg.Durability = journal.Sync()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg
}

// Run runs one simulation. It returns an error naming the seed and the
// broken invariant; the Result says what the run covered either way.
func Run(ctx context.Context, cfg Config) (Result, error) {
	s := newSim(cfg.withDefaults())
	s.installHook()
	err := s.run(ctx)
	s.release()
	if s.p != nil {
		s.p.stop(ctx, true)
	}
	s.res.SimTime = s.clock.Now().Sub(epoch)
	if err != nil {
		return s.res, fmt.Errorf("sim: seed %d: %w\nrerun exactly this run: %s", cfg.Seed, err, Rerun(cfg))
	}
	return s.res, nil
}

func newSim(cfg Config) *sim {
	return &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), disk: faultfs.New(), log: cfg.Logger,
		res: Result{Seed: cfg.Seed, Reached: map[string]int{}}, m: model{balance: map[string]int64{}},
		clock: NewClock(epoch), ckptEvery: checkpointEvery}
}

// installHook injects the armed disk faults into the journal's files.
func (s *sim) installHook() {
	s.disk.SetHook(func(op faultfs.Op, name string) error {
		if !strings.HasPrefix(name, "/sim/journal/") {
			return nil
		}
		switch {
		case op == faultfs.OpWrite && s.fullDisk.CompareAndSwap(true, false):
			return syscall.ENOSPC
		case op == faultfs.OpWrite && s.eioWrite.CompareAndSwap(true, false):
			s.reach("EIO on a journal write")
			s.journalFailed.Store(true)
			return syscall.EIO
		case op == faultfs.OpSync && s.eioSync.CompareAndSwap(true, false):
			s.reach("EIO on a journal fsync")
			s.journalFailed.Store(true)
			return syscall.EIO
		case op == faultfs.OpSync:
			s.holdSync()
		}
		return nil
	})
}

// epoch is where every run's simulated clock starts.
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Simulated-time settings: checkpoint rounds and idle evictions happen
// when the simulated clock passes them, never by real time.
const (
	checkpointEvery = 20 * time.Second
	idleAfter       = 30 * time.Second
)

func (s *sim) open(ctx context.Context) error {
	view := faultfs.NewProcess(s.disk)
	s.view.Store(view)
	p := &process{view: view}
	p.disable = append(p.disable, failpoint.Enable(s.onFailpoint, journal.FS(view)))
	j, err := journal.Open(ctx, journal.Options{Dir: "/sim/journal", FS: view, SegmentSize: 32 << 10, Durability: s.cfg.Durability, Logger: s.log})
	if err != nil {
		p.disableAll()
		return fmt.Errorf("open journal: %w", err)
	}
	p.j = j
	p.disable = append(p.disable, failpoint.Enable(s.onFailpoint, j))
	store, err := file.Open(file.Options{Dir: "/sim/checkpoints", FS: view})
	if err != nil {
		j.Close()
		p.disableAll()
		return fmt.Errorf("open checkpoints: %w", err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: s.log, Timers: s.clock, CheckpointInterval: s.ckptEvery})
	if err == nil && s.register != nil {
		err = s.register(rt)
	} else if err == nil {
		_, err = reactor.RegisterChildren(rt, "/acct", func(string) *Account { return &Account{} },
			reactor.Journaled(), reactor.MaxChildren(max(2, s.cfg.Accounts/2)), reactor.IdleTimeout(idleAfter))
	}
	if err == nil {
		err = rt.Start(ctx)
	}
	if err != nil {
		view.Kill()
		j.Close()
		if rt != nil {
			// Only to reap what Start began. A runtime whose Start failed
			// never starts its workers, and Close would wait its whole
			// context for the turns replay queued: give it none.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			rt.Close(cctx)
		}
		p.disableAll()
		return fmt.Errorf("start: %w", err)
	}
	p.rt = rt
	s.p = p
	return nil
}

func (p *process) disableAll() {
	for _, d := range p.disable {
		d()
	}
}

func (p *process) evicted() uint64 {
	var n uint64
	for _, st := range p.rt.Stats() {
		if st.Children {
			n += st.Evicted
		}
	}
	return n
}

// stop ends the process: gracefully, or as a crash (the process's writes
// stop at once; Close only reaps its goroutines).
func (p *process) stop(ctx context.Context, graceful bool) {
	if !graceful {
		// The journal dies with the process: its pending appends fail, so
		// the runtime's Close (which only reaps goroutines here) does not
		// wait for writes that will never land.
		p.view.Kill()
		p.j.Close()
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	p.rt.Close(cctx)
	cancel()
	if graceful {
		p.j.Close()
	}
	p.disableAll()
}

func (s *sim) account(i int) string { return "a" + strconv.Itoa(i) }

func (s *sim) run(ctx context.Context) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	type outcome struct {
		o   op
		err error
	}
	var (
		inflight sync.WaitGroup
		mu       sync.Mutex
		done     []outcome
	)
	settle := func() ([]op, error) {
		s.release() // a held fsync would hold the operations waited for
		inflight.Wait()
		mu.Lock()
		defer mu.Unlock()
		var unknown []op
		for _, d := range done {
			switch {
			case d.err == nil || errors.Is(d.err, ErrInsufficient):
				if merr := s.m.apply(d.o); !errors.Is(merr, ErrInsufficient) && errors.Is(d.err, ErrInsufficient) {
					return nil, fmt.Errorf("op %s: the service refused a transfer the model allows (%v)", d.o.key, d.err)
				}
				s.res.Acked++
			default:
				if errors.Is(d.err, syscall.ENOSPC) {
					s.reach("disk full failed an op")
				}
				unknown = append(unknown, d.o)
			}
		}
		done = done[:0]
		return unknown, nil
	}
	// Operations are applied to the model in the order they complete,
	// which is only sound when they commute: deposits always do; a
	// transfer is started only while nothing else is in flight.
	next := 0
	for step := 0; step < s.cfg.Steps; step++ {
		o := s.nextOp(next)
		next++
		if o.kind == "transfer" {
			// A transfer depends on balances: it starts alone, once every
			// earlier operation is resolved and every credit has landed.
			unknown, err := settle()
			if err != nil {
				return err
			}
			if err := s.resolve(ctx, unknown, false); err != nil {
				return err
			}
		}
		s.allowHold()
		inflight.Add(1)
		s.res.Ops++
		p := s.p
		go func() {
			defer inflight.Done()
			err := s.do(ctx, p, o)
			mu.Lock()
			done = append(done, outcome{o, err})
			mu.Unlock()
		}()
		if o.kind == "transfer" {
			// Its answer depends on the balance it saw: resolve it now,
			// before anything else changes that balance.
			unknown, err := settle()
			if err != nil {
				return err
			}
			if len(unknown) > 0 {
				if err := s.resolve(ctx, unknown, false); err != nil {
					return err
				}
			}
		} else if s.rng.IntN(s.cfg.InFlight) == 0 {
			s.release()
			inflight.Wait()
		}
		// Simulated time moves on: mostly a little, sometimes past the
		// checkpoint interval and the idle timeout at once.
		if s.rng.IntN(20) == 0 {
			s.clock.Advance(idleAfter + time.Duration(s.rng.IntN(10))*time.Second)
			s.reach("clock jump past the idle timeout")
		} else {
			s.clock.Advance(time.Duration(s.rng.IntN(2000)) * time.Millisecond)
		}
		if s.dying.Load() || s.journalFailed.Load() {
			// A failpoint killed the process, or an EIO fail-stopped its
			// journal: it restarts, after a power cut half of the time.
			power := s.dying.Load() || s.rng.IntN(2) == 0
			if err := s.restart(ctx, func() {
				if power {
					s.disk.CrashTorn(s.rng)
				}
			}, settle); err != nil {
				return err
			}
			continue
		}
		switch f := s.rng.IntN(200); {
		case f < 8: // process crash (kill -9): unsynced bytes survive
			s.res.Crashes++
			if err := s.restart(ctx, func() {}, settle); err != nil {
				return err
			}
		case f < 14: // power cut: unsynced bytes lost, the last write torn
			s.res.PowerCuts++
			torn := s.rng.IntN(2) == 0
			if torn {
				s.reach("torn tail")
			}
			if err := s.restart(ctx, func() {
				if torn {
					s.disk.CrashTorn(s.rng)
				} else {
					s.disk.Crash()
				}
			}, settle); err != nil {
				return err
			}
		case f < 20:
			s.res.DiskFull++
			s.fullDisk.Store(true)
		case f < 23:
			s.eioWrite.Store(true)
		case f < 26:
			s.eioSync.Store(true)
		case f < 34:
			s.slowSync.Store(true)
		case f < 38:
			s.arm(failpoint.JournalSynced)
		case f < 42:
			s.arm(failpoint.CheckpointWrite)
			s.res.Checkpoint++
			s.p.rt.Checkpoint()
		case f < 56:
			s.res.Checkpoint++
			s.p.rt.Checkpoint()
		}
	}
	unknown, err := settle()
	if err != nil {
		return err
	}
	if err := s.resolve(ctx, unknown, true); err != nil {
		return err
	}
	return s.corrupt(ctx)
}

func (s *sim) nextOp(n int) op {
	o := op{key: "op" + strconv.Itoa(n), from: s.account(s.rng.IntN(s.cfg.Accounts)), amount: int64(1 + s.rng.IntN(100))}
	if s.rng.IntN(3) == 0 {
		o.kind = "deposit"
	} else {
		o.kind = "transfer"
		o.to = s.account(s.rng.IntN(s.cfg.Accounts))
	}
	return o
}

func (s *sim) do(ctx context.Context, p *process, o op) error {
	cctx, cancel := context.WithTimeout(reactor.WithIdempotencyKey(ctx, o.key), 5*time.Second)
	defer cancel()
	ref := p.rt.Ref("/acct/" + o.from)
	var err error
	if o.kind == "deposit" {
		_, err = deposit.Call(cctx, ref, o.amount)
	} else {
		_, err = mTransfer.Call(cctx, ref, transfer{To: o.to, Amount: o.amount})
	}
	return err
}

// restart crashes the process while operations may be in flight, applies
// the disk fault, reopens, and resolves every unknown operation.
func (s *sim) restart(ctx context.Context, fault func(), settle func() ([]op, error), pending ...op) error {
	s.reach("crash")
	s.p.view.Kill()
	if s.release() {
		s.reach("crash during a slow fsync")
	}
	fault()
	old := s.p
	unknown, err := settle() // the dead process's calls fail
	if err != nil {
		return err
	}
	unknown = append(pending, unknown...)
	if len(unknown) > 0 {
		s.reach("crash with ops in flight")
	}
	s.reachN("evicted", int(old.evicted()))
	old.stop(ctx, false)
	s.p = nil
	s.disarm()
	s.dying.Store(false)
	s.journalFailed.Store(false)
	s.fullDisk.Store(false)
	s.eioWrite.Store(false)
	s.eioSync.Store(false)
	s.slowSync.Store(false)
	if s.rng.IntN(4) == 0 {
		// Die again during recovery, at the first record replayed (if
		// there is one to replay), then recover from that.
		s.arm(failpoint.Replay)
	}
	err = s.open(ctx)
	if s.dying.Load() {
		if !errors.Is(err, errFailpoint) {
			return fmt.Errorf("recovery: died at the replay failpoint, and Start said %v", err)
		}
		s.dying.Store(false)
		s.disk.CrashTorn(s.rng)
		err = s.open(ctx)
	}
	s.disarm()
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	return s.resolve(ctx, unknown, false)
}

// restartNeeded: a fault killed the process (a failpoint) or fail-stopped
// its journal (EIO) while operations were being resolved; ops are the ones
// still unknown.
type restartNeeded struct{ ops []op }

func (r *restartNeeded) Error() string {
	return fmt.Sprintf("sim: the process died with %d operations unresolved", len(r.ops))
}

func (s *sim) faulted() bool { return s.dying.Load() || s.journalFailed.Load() }

// resolve is recover, restarting the process (after a power cut if it died
// at a failpoint) as often as a fault kills it meanwhile.
func (s *sim) resolve(ctx context.Context, unknown []op, final bool) error {
	err := s.recover(ctx, unknown, final)
	var rn *restartNeeded
	if !errors.As(err, &rn) {
		return err
	}
	power := s.dying.Load()
	return s.restart(ctx, func() {
		if power {
			s.disk.CrashTorn(s.rng)
		}
	}, func() ([]op, error) { return nil, nil }, rn.ops...)
}

// corrupt ends a run with one of: nothing, a flipped bit in a journal
// segment, or one in a checkpoint file (after a power cut: the bit is in
// what the disk kept). The process must then either refuse with an error
// that says so (journal.ErrCorrupt, checkpoint.ErrCorrupt) — at start or
// when it loads the damaged checkpoint — or come back with every balance
// intact. Anything else is silent loss.
func (s *sim) corrupt(ctx context.Context) error {
	var dir string
	switch s.rng.IntN(3) {
	case 0:
		return nil
	case 1:
		dir = "/sim/journal"
	case 2:
		dir = "/sim/checkpoints"
	}
	s.reachN("evicted", int(s.p.evicted()))
	s.p.view.Kill()
	s.p.stop(ctx, false)
	s.p = nil
	s.disk.Crash()
	ents, err := s.disk.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("bit flip: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".wal") || strings.HasSuffix(n, ".ckp") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return s.check(ctx, true)
	}
	name := path.Join(dir, names[s.rng.IntN(len(names))])
	b, err := s.disk.ReadFile(name)
	if err != nil || len(b) == 0 {
		return fmt.Errorf("bit flip: read %s: %v", name, err)
	}
	at := s.rng.IntN(len(b))
	b[at] ^= 1 << s.rng.IntN(8)
	s.disk.WriteFile(name, b)
	what := "bit flip: " + path.Base(dir)
	s.reach(what)
	if err := s.open(ctx); err != nil {
		if errors.Is(err, journal.ErrCorrupt) || errors.Is(err, checkpoint.ErrCorrupt) {
			s.reach(what + " refused at start")
			return nil
		}
		return fmt.Errorf("after a bit flip in %s at %d: start failed without naming the corruption: %w", name, at, err)
	}
	err = s.check(ctx, true)
	switch {
	case err == nil:
		s.reach(what + " harmless or repaired")
		return nil
	case errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, journal.ErrCorrupt):
		s.reach(what + " refused at load")
		return nil
	}
	return fmt.Errorf("after a bit flip in %s at byte %d: %w", name, at, err)
}

// recover retries the operations of unknown outcome with their keys, then
// checks the balances against the model. Deposits go first (they commute);
// a transfer (there is at most one: transfers run alone) is retried only
// once every credit in flight has landed, since its answer depends on the
// balance.
func (s *sim) recover(ctx context.Context, unknown []op, final bool) error {
	sort.SliceStable(unknown, func(i, j int) bool { return unknown[i].kind == "deposit" && unknown[j].kind != "deposit" })
	for i, o := range unknown {
		if o.kind == "transfer" {
			if err := s.landed(ctx); err != nil {
				if rn := (*restartNeeded)(nil); errors.As(err, &rn) {
					return &restartNeeded{ops: unknown[i:]}
				}
				return fmt.Errorf("before retrying %s: %w", o.key, err)
			}
		}
		s.res.Unknown++
		var err error
		for try := 0; try < 3; try++ {
			if err = s.do(ctx, s.p, o); err == nil || errors.Is(err, ErrInsufficient) || !errors.Is(err, syscall.ENOSPC) {
				break
			}
		}
		switch {
		case err == nil || errors.Is(err, ErrInsufficient):
			if merr := s.m.apply(o); (merr == nil) != (err == nil) {
				return fmt.Errorf("retry of %s answered %v, the model says %v", o.key, err, merr)
			}
			s.reach("unknown op resolved by its retry")
		case s.faulted():
			return &restartNeeded{ops: unknown[i:]}
		default:
			return fmt.Errorf("retry of %s after recovery: %w", o.key, err)
		}
	}
	return s.check(ctx, final)
}

// landed waits until every credit in flight has landed (the money in the
// bank equals what was deposited), without comparing balances: an unknown
// transfer about to be retried may or may not have been applied.
func (s *sim) landed(ctx context.Context) error { return s.wait(ctx, false) }

// check waits until the credits in flight have landed, then requires every
// balance to equal the model's.
func (s *sim) check(ctx context.Context, final bool) error { return s.wait(ctx, true) }

func (s *sim) wait(ctx context.Context, exact bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]int64{}
		var total, want int64
		for i := range s.cfg.Accounts {
			a := s.account(i)
			b, err := read.Call(ctx, s.p.rt.Ref("/acct/"+a), struct{}{})
			if err != nil {
				if s.faulted() {
					return &restartNeeded{}
				}
				return fmt.Errorf("read %s: %w", a, err)
			}
			got[a] = b
			total += b
			want += s.m.balance[a]
		}
		if total == s.m.deposited && (!exact || equal(got, s.m.balance)) {
			return nil
		}
		if s.faulted() {
			// A credit still to land may be stuck behind a fail-stopped
			// journal or a dead process: only a restart delivers it.
			return &restartNeeded{}
		}
		if time.Now().After(deadline) {
			kind := "balances differ"
			switch {
			case total < s.m.deposited:
				kind = "money lost (an acknowledged operation or a credit vanished)"
			case total > s.m.deposited:
				kind = "money created (something applied twice)"
			}
			return fmt.Errorf("%s: bank %v (total %d), model %v (deposited %d)", kind, got, total, s.m.balance, s.m.deposited)
		}
		// Credits are messages in flight: let the journal's goroutines run,
		// and move simulated time so that resend back-offs fire. No real
		// sleeping.
		s.clock.Advance(10 * time.Millisecond)
		runtime.Gosched()
	}
}

func equal(a, b map[string]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
