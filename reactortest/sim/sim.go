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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
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
}

// Result says what a run did and which rare states it reached.
type Result struct {
	Seed                                     uint64
	Ops, Acked, Unknown                      int
	Crashes, PowerCuts, DiskFull, Checkpoint int
	// Reached counts the interesting states the run got into ("sometimes"
	// assertions): "crash with ops in flight", "torn tail", "disk full
	// failed an op", "unknown op applied before the crash", "unknown op
	// applied by its retry".
	Reached map[string]int
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
	return fmt.Sprintf("seed %d: %d ops (%d acked, %d unknown), %d crashes, %d power cuts, %d disk-full, %d checkpoint rounds;%s",
		r.Seed, r.Ops, r.Acked, r.Unknown, r.Crashes, r.PowerCuts, r.DiskFull, r.Checkpoint, b.String())
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
	view *faultfs.Process
	j    *journal.Journal
	rt   *reactor.Runtime
}

type sim struct {
	cfg  Config
	rng  *rand.Rand
	disk *faultfs.FS
	log  *slog.Logger
	res  Result
	m    model
	p    *process
	// fullDisk arms ENOSPC on the journal's next write.
	fullDisk atomic.Bool
}

// Run runs one simulation. It returns an error naming the seed and the
// broken invariant; the Result says what the run covered either way.
func Run(ctx context.Context, cfg Config) (Result, error) {
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
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), disk: faultfs.New(), log: cfg.Logger,
		res: Result{Seed: cfg.Seed, Reached: map[string]int{}}, m: model{balance: map[string]int64{}}}
	s.disk.SetHook(func(op faultfs.Op, name string) error {
		if op == faultfs.OpWrite && strings.HasPrefix(name, "/sim/journal/") && s.fullDisk.CompareAndSwap(true, false) {
			return syscall.ENOSPC
		}
		return nil
	})
	err := s.run(ctx)
	if s.p != nil {
		s.p.stop(ctx, true)
	}
	if err != nil {
		return s.res, fmt.Errorf("sim: seed %d: %w (rerun: go test ./reactortest/sim -run TestSeeds -v -args -sim.seed=%d)", cfg.Seed, err, cfg.Seed)
	}
	return s.res, nil
}

func (s *sim) open(ctx context.Context) error {
	view := faultfs.NewProcess(s.disk)
	j, err := journal.Open(ctx, journal.Options{Dir: "/sim/journal", FS: view, SegmentSize: 32 << 10, Durability: s.cfg.Durability, Logger: s.log})
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	store, err := file.Open(file.Options{Dir: "/sim/checkpoints", FS: view})
	if err != nil {
		j.Close()
		return fmt.Errorf("open checkpoints: %w", err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: s.log, CheckpointInterval: time.Hour})
	if err == nil {
		_, err = reactor.RegisterChildren(rt, "/acct", func(string) *Account { return &Account{} },
			reactor.Journaled(), reactor.MaxChildren(max(2, s.cfg.Accounts/2)))
	}
	if err == nil {
		err = rt.Start(ctx)
	}
	if err != nil {
		j.Close()
		return fmt.Errorf("start: %w", err)
	}
	s.p = &process{view: view, j: j, rt: rt}
	return nil
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
					s.res.Reached["disk full failed an op"]++
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
			if err := s.recover(ctx, unknown, false); err != nil {
				return err
			}
		}
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
				if err := s.recover(ctx, unknown, false); err != nil {
					return err
				}
			}
		} else if s.rng.IntN(s.cfg.InFlight) == 0 {
			inflight.Wait()
		}
		switch f := s.rng.IntN(100); {
		case f < 4: // process crash (kill -9): unsynced bytes survive
			s.res.Crashes++
			if err := s.restart(ctx, &inflight, func() {}, settle); err != nil {
				return err
			}
		case f < 7: // power cut: unsynced bytes lost, the last write torn
			s.res.PowerCuts++
			torn := s.rng.IntN(2) == 0
			if torn {
				s.res.Reached["torn tail"]++
			}
			if err := s.restart(ctx, &inflight, func() {
				if torn {
					s.disk.CrashTorn(s.rng)
				} else {
					s.disk.Crash()
				}
			}, settle); err != nil {
				return err
			}
		case f < 10:
			s.res.DiskFull++
			s.fullDisk.Store(true)
		case f < 18:
			s.res.Checkpoint++
			s.p.rt.Checkpoint()
		}
	}
	unknown, err := settle()
	if err != nil {
		return err
	}
	return s.recover(ctx, unknown, true)
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
func (s *sim) restart(ctx context.Context, inflight *sync.WaitGroup, fault func(), settle func() ([]op, error)) error {
	s.res.Reached["crash"]++
	s.p.view.Kill()
	fault()
	old := s.p
	unknown, err := settle() // the dead process's calls fail
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		s.res.Reached["crash with ops in flight"]++
	}
	old.stop(ctx, false)
	s.p = nil
	s.fullDisk.Store(false)
	if err := s.open(ctx); err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	return s.recover(ctx, unknown, false)
}

// recover retries the operations of unknown outcome with their keys, then
// checks the balances against the model. Deposits go first (they commute);
// a transfer (there is at most one: transfers run alone) is retried only
// once every credit in flight has landed, since its answer depends on the
// balance.
func (s *sim) recover(ctx context.Context, unknown []op, final bool) error {
	sort.SliceStable(unknown, func(i, j int) bool { return unknown[i].kind == "deposit" && unknown[j].kind != "deposit" })
	for _, o := range unknown {
		if o.kind == "transfer" {
			if err := s.check(ctx, false); err != nil {
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
			s.res.Reached["unknown op resolved by its retry"]++
		default:
			return fmt.Errorf("retry of %s after recovery: %w", o.key, err)
		}
	}
	return s.check(ctx, final)
}

// check waits until the credits in flight have landed, then requires every
// balance to equal the model's.
func (s *sim) check(ctx context.Context, final bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[string]int64{}
		var total, want int64
		for i := range s.cfg.Accounts {
			a := s.account(i)
			b, err := read.Call(ctx, s.p.rt.Ref("/acct/"+a), struct{}{})
			if err != nil {
				return fmt.Errorf("read %s: %w", a, err)
			}
			got[a] = b
			total += b
			want += s.m.balance[a]
		}
		if total == s.m.deposited && equal(got, s.m.balance) {
			return nil
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
		time.Sleep(time.Millisecond) // credits are messages in flight
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
