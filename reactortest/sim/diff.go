package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/eventlog"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// Differential runs. A seed's inputs are run twice on fresh disks and
// clocks: once plain (everything resident, no checkpoint, no restart), once
// with checkpoint rounds, graceful restarts (checkpoint + reload), crash
// restarts (replay) and evictions at seed-chosen points between the inputs.
// Every reply, error and event must be identical, and so must the final
// state read through the services. A state digest alone would miss the
// bug this exists for: a state restored from its checkpoint that encodes
// the same as before but behaves differently (a field OnLoad should
// rebuild and does not).
//
// Both sides move the simulated clock identically, so Ctx.Now (and every
// timestamp in a reply or event) agrees; only the plain side's idle timeout
// and checkpoint interval are out of reach. The inputs run one at a time
// (each transfer's credit lands before the next input), so the order of
// handling — and hence every answer — is fixed by the inputs alone.

// perturbation is what the perturbed side does before an input.
type perturbation int

const (
	pNone       perturbation = iota
	pCheckpoint              // a checkpoint round (written off the turn)
	pGraceful                // checkpoint round, graceful Close, reopen: state comes from the checkpoints
	pCrash                   // kill the process, reopen: state comes from checkpoints + journal replay
	pEvict                   // time passes the idle timeout: the sweep saves and evicts idle children
)

var perturbationNames = [...]string{"", "checkpoint", "graceful restart", "crash restart", "eviction"}

// diffPlan is a seed's inputs and the perturbations before each.
type diffPlan struct {
	n       int
	rng     func() *rand.Rand // the inputs' generator, the same for both sides
	perturb []perturbation
	advance []time.Duration // simulated time moved after each input, both sides
}

func newDiffPlan(seed uint64, n int) diffPlan {
	r := rand.New(rand.NewPCG(seed, 0xd1ff))
	p := diffPlan{n: n, perturb: make([]perturbation, n), advance: make([]time.Duration, n)}
	for i := range n {
		if r.IntN(4) == 0 {
			p.perturb[i] = perturbation(1 + r.IntN(4))
		}
		p.advance[i] = time.Duration(r.IntN(3000)) * time.Millisecond
	}
	p.rng = func() *rand.Rand { return rand.New(rand.NewPCG(seed, 0x1a7e)) }
	return p
}

// diffSide is one side of a differential run.
type diffSide struct {
	*sim
	perturbed bool
	trace     []string
}

func (d *diffSide) record(format string, args ...any) {
	d.trace = append(d.trace, fmt.Sprintf(format, args...))
}

// perturb applies p on the perturbed side (nothing on the plain one);
// before and after say how to leave and re-enter the workload's own
// objects (poker.Rooms, subscriptions).
func (d *diffSide) perturb(ctx context.Context, p perturbation, before func(), after, evict func() error) error {
	if !d.perturbed || p == pNone {
		return nil
	}
	d.reach("diff: " + perturbationNames[p])
	switch p {
	case pCheckpoint:
		d.p.rt.Checkpoint()
	case pEvict:
		// There is no "evict now" in the runtime, and the clock must move
		// alike on both sides: the perturbed side reads the other children,
		// which pushes the rest out of its small LRU (reads change no state,
		// so the plain side need not make them).
		ev := d.p.evicted()
		if err := evict(); err != nil {
			return fmt.Errorf("evict: %w", err)
		}
		d.reachN("diff: evicted", int(d.p.evicted()-ev))
	case pGraceful, pCrash:
		before()
		if p == pGraceful {
			d.p.rt.Checkpoint()
			d.p.stop(ctx, true)
		} else {
			d.p.view.Kill()
			d.p.stop(ctx, false)
		}
		d.p = nil
		if err := d.open(ctx); err != nil {
			return fmt.Errorf("reopen after %s: %w", perturbationNames[p], err)
		}
		return after()
	}
	return nil
}

// compareTraces returns an error at the first line where the sides differ.
func compareTraces(what string, plain, perturbed []string, perturbs []perturbation) error {
	for i := range max(len(plain), len(perturbed)) {
		var a, b string
		if i < len(plain) {
			a = plain[i]
		}
		if i < len(perturbed) {
			b = perturbed[i]
		}
		if a != b {
			var applied []string
			for k, p := range perturbs {
				if p != pNone {
					applied = append(applied, strconv.Itoa(k)+":"+perturbationNames[p])
				}
			}
			from := max(0, i-40)
			return fmt.Errorf("%s: differential run diverged at line %d:\n  plain:     %s\n  perturbed: %s\n  (perturbations before input: %s)\n  the lines before it (both sides):\n    %s",
				what, i, a, b, strings.Join(applied, ", "), strings.Join(plain[from:i], "\n    "))
		}
	}
	return nil
}

func diffDefaults(cfg Config) Config {
	cfg = cfg.withDefaults()
	cfg.Durability = journal.Sync()
	return cfg
}

// RunDiff runs the differential check of cfg.Seed: the bank's inputs,
// then the poker rooms', each twice (plain and perturbed).
func RunDiff(ctx context.Context, cfg Config) (Result, error) {
	cfg = diffDefaults(cfg)
	res := Result{Seed: cfg.Seed, Reached: map[string]int{}}
	merge := func(r Result) {
		for k, v := range r.Reached {
			res.Reached[k] += v
		}
	}
	plan := newDiffPlan(cfg.Seed, cfg.Steps)
	workloads := []struct {
		name string
		run  func(context.Context, Config, diffPlan, bool) (*diffSide, error)
	}{{"bank", runBankDiff}, {"poker", runPokerDiff}}
	for _, w := range workloads {
		var sides [2]*diffSide
		for i := range sides {
			d, err := w.run(ctx, cfg, plan, i == 1)
			if d != nil {
				merge(d.res)
			}
			if err != nil {
				return res, fmt.Errorf("sim: diff seed %d (%s, %s side): %w\nrerun exactly this run: %s", cfg.Seed, w.name, sideName(i == 1), err, RerunDiff(cfg))
			}
			sides[i] = d
		}
		if err := compareTraces(w.name, sides[0].trace, sides[1].trace, plan.perturb); err != nil {
			return res, fmt.Errorf("sim: diff seed %d: %w\nrerun exactly this run: %s", cfg.Seed, err, RerunDiff(cfg))
		}
	}
	res.Reached["diff: runs compared"]++
	return res, nil
}

func sideName(perturbed bool) string {
	if perturbed {
		return "perturbed"
	}
	return "plain"
}

// RerunDiff is the command that runs cfg's differential check again.
func RerunDiff(cfg Config) string {
	return fmt.Sprintf("go test ./reactortest/sim -run TestDiff -count=1 -v -args -sim.seed=%d -sim.steps=%d", cfg.Seed, cfg.Steps)
}

// --- the bank ---

// DiffAccount is the differential bank's account. Largest (the largest
// amount received among the recent ones) is derived state: not encoded in
// the checkpoint, rebuilt by OnLoad from Recent. A restore that forgot to
// rebuild it would encode exactly the same and answer differently.
type DiffAccount struct {
	Balance int64
	Recent  []int64 // the last few amounts received (deposits and credits)
	Credits int     // credits received: the client waits for its transfers' to land
	largest int64
	planted bool // the planted bug: OnLoad does not rebuild largest
}

// DiffView is what Look answers.
type DiffView struct {
	Balance, Largest int64
	Credits          int
}

func (a *DiffAccount) received(amount int64) {
	a.Recent = append(a.Recent, amount)
	if len(a.Recent) > 4 {
		a.Recent = slices.Delete(a.Recent, 0, 1)
	}
	a.largest = slices.Max(a.Recent)
}

// OnLoad rebuilds the derived field.
func (a *DiffAccount) OnLoad(*reactor.Ctx) error {
	if a.planted {
		return nil
	}
	a.largest = 0
	if len(a.Recent) > 0 {
		a.largest = slices.Max(a.Recent)
	}
	return nil
}

func (a *DiffAccount) Deposit(_ *reactor.Ctx, amount int64) (DiffView, error) {
	a.Balance += amount
	a.received(amount)
	return a.view(), nil
}

func (a *DiffAccount) Transfer(c *reactor.Ctx, t transfer) (DiffView, error) {
	if t.Amount > a.Balance {
		return a.view(), ErrInsufficient
	}
	a.Balance -= t.Amount
	return a.view(), diffCredit.Send(c, c.Self().Parent().Child(t.To), t.Amount)
}

func (a *DiffAccount) Credit(_ *reactor.Ctx, amount int64) (DiffView, error) {
	a.Credits++
	a.Balance += amount
	a.received(amount)
	return a.view(), nil
}

func (a *DiffAccount) Look(*reactor.Ctx, struct{}) (DiffView, error) { return a.view(), nil }

func (a *DiffAccount) view() DiffView { return DiffView{a.Balance, a.largest, a.Credits} }

var (
	diffDeposit  = reactor.Method("sim.diff.deposit", (*DiffAccount).Deposit)
	diffTransfer = reactor.Method("sim.diff.transfer", (*DiffAccount).Transfer)
	diffCredit   = reactor.Method("sim.diff.credit", (*DiffAccount).Credit)
	diffLook     = reactor.Method("sim.diff.look", (*DiffAccount).Look)
)

func runBankDiff(ctx context.Context, cfg Config, plan diffPlan, perturbed bool) (*diffSide, error) {
	s := newSim(cfg)
	d := &diffSide{sim: s, perturbed: perturbed}
	resident, idle := 1000, 1000*time.Hour
	if perturbed {
		resident, idle = max(2, cfg.Accounts/2), idleAfter
	} else {
		s.ckptEvery = 1000 * time.Hour
	}
	s.register = func(rt *reactor.Runtime) error {
		_, err := reactor.RegisterChildren(rt, "/dacct", func(string) *DiffAccount { return &DiffAccount{planted: cfg.plantOnLoadBug} },
			reactor.Journaled(), reactor.MaxChildren(resident), reactor.IdleTimeout(idle))
		return err
	}
	defer func() {
		if s.p != nil {
			s.p.stop(ctx, true)
		}
	}()
	if err := s.open(ctx); err != nil {
		return d, err
	}
	rng := plan.rng()
	credits := make([]int, cfg.Accounts) // credits sent to each account
	ref := func(i int) reactor.Ref { return s.p.rt.Ref("/dacct/" + s.account(i)) }
	from0 := 0
	for i := range plan.n {
		evict := func() error {
			for a := range cfg.Accounts {
				if _, err := diffLook.Call(ctx, ref((from0+1+a)%cfg.Accounts), struct{}{}); err != nil {
					return err
				}
			}
			return nil
		}
		if err := d.perturb(ctx, plan.perturb[i], func() {}, func() error { return nil }, evict); err != nil {
			return d, err
		}
		from, amount := rng.IntN(cfg.Accounts), int64(1+rng.IntN(100))
		from0 = from
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var v DiffView
		var err error
		switch k := rng.IntN(6); {
		case k < 2:
			v, err = diffDeposit.Call(cctx, ref(from), amount)
			d.record("%d deposit %d to a%d: %+v %v", i, amount, from, v, err)
		case k < 5:
			to := rng.IntN(cfg.Accounts)
			v, err = diffTransfer.Call(cctx, ref(from), transfer{To: s.account(to), Amount: amount})
			d.record("%d transfer %d a%d→a%d: %+v %v", i, amount, from, to, v, err)
			if err != nil && !errors.Is(err, ErrInsufficient) {
				cancel()
				return d, fmt.Errorf("input %d: %w", i, err)
			}
			if err == nil {
				credits[to]++
				cancel()
				if err := d.landed(ctx, ref(to), credits[to]); err != nil {
					return d, fmt.Errorf("input %d: %w", i, err)
				}
			}
			err = nil
		default:
			v, err = diffLook.Call(cctx, ref(from), struct{}{})
			d.record("%d look a%d: %+v %v", i, from, v, err)
		}
		cancel()
		if err != nil {
			return d, fmt.Errorf("input %d: %w", i, err)
		}
		s.clock.Advance(plan.advance[i])
		if i%8 == 7 {
			// Both sides: now and then past the idle timeout (the plain
			// side's is out of reach) and the checkpoint interval.
			s.clock.Advance(idleAfter + time.Second)
		}
	}
	for a := range cfg.Accounts {
		v, err := diffLook.Call(ctx, ref(a), struct{}{})
		if err != nil {
			return d, fmt.Errorf("final read a%d: %w", a, err)
		}
		d.record("final a%d: %+v", a, v)
	}
	d.reachN("evicted", int(s.p.evicted()))
	return d, nil
}

// landed waits until the account at ref has received its n-th credit
// (the transfer just made): one input at a time, so the handling order is
// the inputs'. Nothing is compared here; the trace is.
func (d *diffSide) landed(ctx context.Context, ref reactor.Ref, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Look changes no state, and the number of polls may differ
		// between the sides.
		v, err := diffLook.Call(ctx, ref, struct{}{})
		if err != nil {
			return fmt.Errorf("read %s: %w", ref.Addr(), err)
		}
		if v.Credits >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("a credit to %s did not land: %d of %d", ref.Addr(), v.Credits, n)
		}
		runtime.Gosched()
	}
}

// --- poker ---

// runPokerDiff drives two rooms: joins, votes, reveals, new rounds and
// state reads, with a subscription per room as its leader; every command's
// answer, every state view and every event the rooms emit go into the
// trace. Room ids, member ids and tokens are random (crypto/rand): they are
// replaced by their order of creation before the sides are compared.
func runPokerDiff(ctx context.Context, cfg Config, plan diffPlan, perturbed bool) (*diffSide, error) {
	s := newSim(cfg)
	d := &diffSide{sim: s, perturbed: perturbed}
	var rooms *poker.Rooms
	opt := poker.Options{MaxResident: 100, Logger: s.log, Extra: []reactor.Option{reactor.Journaled(), reactor.IdleTimeout(1000 * time.Hour)}}
	if perturbed {
		opt = poker.Options{MaxResident: 1, Logger: s.log, Extra: []reactor.Option{reactor.Journaled()}}
	} else {
		s.ckptEvery = 1000 * time.Hour
	}
	s.register = func(rt *reactor.Runtime) error {
		var err error
		rooms, err = poker.Register(rt, opt)
		return err
	}
	type room struct {
		id, leader string
		tokens     []string
		sub        *poker.Subscription
	}
	var rs []*room
	var ids []string // every random id and token, in creation order
	closeAll := func() {
		for _, r := range rs {
			if r.sub != nil {
				r.sub.Close()
				r.sub = nil
			}
		}
		rooms.Close()
	}
	defer func() {
		if s.p != nil {
			closeAll()
			s.p.stop(ctx, true)
		}
	}()
	if err := s.open(ctx); err != nil {
		return d, err
	}
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 5*time.Second) }
	// drain records the events that reached each room's subscriber since
	// the last drain, (re)subscribing where a subscription ended (a
	// restart closes them).
	drain := func() error {
		for ri, r := range rs {
			if r.sub == nil {
				cctx, cancel := call()
				sub, err := rooms.Subscribe(cctx, r.id, r.leader, "", 0)
				cancel()
				if err != nil {
					return fmt.Errorf("subscribe to room %d: %w", ri, err)
				}
				r.sub = sub
				continue
			}
			evs, err := r.sub.Sub.Next(nil)
			for _, e := range evs {
				d.record("room %d event %d %s %s\x00%s", ri, e.ID, e.Type, e.To, e.Data)
			}
			if err != nil {
				if !errors.Is(err, eventlog.ErrClosed) && !errors.Is(err, eventlog.ErrUnsubscribed) {
					return fmt.Errorf("room %d events: %w", ri, err)
				}
				r.sub.Close()
				r.sub = nil
			}
		}
		return nil
	}
	view := func(ri int, token string) {
		cctx, cancel := call()
		v, err := rooms.State(cctx, rs[ri].id, token)
		cancel()
		b, _ := json.Marshal(v)
		d.record("room %d state: %v\x00%s", ri, err, b)
	}
	for range 2 {
		cctx, cancel := call()
		c, err := rooms.Create(cctx, poker.CreateRequest{Title: "r", Leader: "lead"})
		cancel()
		if err != nil {
			return d, fmt.Errorf("create: %w", err)
		}
		rs = append(rs, &room{id: c.Room, leader: c.Token, tokens: []string{c.Token}})
		ids = append(ids, c.Room, c.Member, c.Token)
	}
	if err := drain(); err != nil {
		return d, err
	}
	rng := plan.rng()
	for i := range plan.n {
		evict := func() error {
			for ri := range rs {
				cctx, cancel := call()
				_, err := rooms.State(cctx, rs[(i+ri)%len(rs)].id, rs[(i+ri)%len(rs)].leader)
				cancel()
				if err != nil {
					return err
				}
			}
			return nil
		}
		if err := d.perturb(ctx, plan.perturb[i], func() {
			// Collect what the subscribers have before the process goes.
			_ = drain()
			closeAll()
		}, drain, evict); err != nil {
			return d, err
		}
		ri := rng.IntN(len(rs))
		r := rs[ri]
		cctx, cancel := call()
		switch k := rng.IntN(10); {
		case k < 2:
			c, err := rooms.Join(cctx, r.id, poker.JoinRequest{Name: "m" + strconv.Itoa(i)})
			if err == nil {
				r.tokens = append(r.tokens, c.Token)
				ids = append(ids, c.Member, c.Token)
			}
			d.record("%d room %d join: %v", i, ri, err)
		case k < 3:
			d.record("%d room %d start: %v", i, ri, rooms.Start(cctx, r.id, r.leader, poker.StartRequest{Story: "s" + strconv.Itoa(i)}))
		case k < 4:
			d.record("%d room %d finish: %v", i, ri, rooms.Finish(cctx, r.id, r.leader))
		case k < 5:
			view(ri, r.tokens[rng.IntN(len(r.tokens))])
		default:
			m := rng.IntN(len(r.tokens))
			v := poker.DefaultDeck[rng.IntN(len(poker.DefaultDeck))]
			d.record("%d room %d vote %d %s: %v", i, ri, m, v, rooms.Vote(cctx, r.id, r.tokens[m], poker.VoteRequest{Value: v}))
		}
		cancel()
		if err := drain(); err != nil {
			return d, err
		}
		s.clock.Advance(plan.advance[i])
		if i%8 == 7 {
			s.clock.Advance(15*time.Minute + time.Second) // past the rooms' idle timeout
		}
	}
	for ri, r := range rs {
		for _, t := range r.tokens {
			view(ri, t)
		}
	}
	if err := drain(); err != nil {
		return d, err
	}
	d.reachN("evicted", int(s.p.evicted()))
	// Random ids and tokens → their order of creation.
	pairs := make([]string, 0, 2*len(ids))
	for n, id := range ids {
		pairs = append(pairs, id, "#"+strconv.Itoa(n))
	}
	rep := strings.NewReplacer(pairs...)
	for n, l := range d.trace {
		head, data, ok := strings.Cut(l, "\x00")
		if ok {
			l = head + " " + canonJSON(rep, data)
		}
		d.trace[n] = rep.Replace(l)
	}
	return d, nil
}

// canonJSON rewrites a JSON document with every random id replaced by its
// symbol, re-encoded: object keys sorted by symbol, and lists of ids (the
// room sorts them by their random spelling, e.g. a round's highest voters)
// sorted by symbol too. Anything else keeps its order: a list in another
// order is a divergence.
func canonJSON(rep *strings.Replacer, data string) string {
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return rep.Replace(data)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return rep.Replace(x)
		case map[string]any:
			m := make(map[string]any, len(x))
			for k, e := range x {
				m[rep.Replace(k)] = walk(e)
			}
			return m
		case []any:
			ids := true
			for i, e := range x {
				x[i] = walk(e)
				if s, ok := x[i].(string); !ok || !strings.HasPrefix(s, "#") {
					ids = false
				}
			}
			if ids {
				slices.SortFunc(x, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
			}
			return x
		}
		return v
	}
	b, err := json.Marshal(walk(v))
	if err != nil {
		return rep.Replace(data)
	}
	return string(b)
}
