package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reactorgo/reactor/journal"
)

// Runtime hosts services. Create it with New, register services, then Start
// it; Close stops it. Messages sent before Start wait in their inboxes.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	sched *scheduler

	ctx    context.Context // handed to handlers via Ctx; cancelled by Close
	cancel context.CancelFunc

	mu       sync.RWMutex
	services map[string]*service // top-level services by address
	families map[string]*family  // keyed children by parent address
	started  bool
	running  bool // Start finished: workers run (false after a failed Start)

	closing atomic.Bool
	inline  atomic.Bool // blocking calls may run an idle service's turn themselves
	closed  chan struct{}
	stop    sync.Once
	janitor sync.WaitGroup

	// durable tracks the journal sequences known durable (or failed), and
	// lets checkpoint writers and Start wait for one.
	durable seqWaiter
	// writers persist periodic checkpoints off the workers (ckpt.go).
	writers ckptWriters
	// idle is closed (and replaced) when a turn ends while closing, so
	// Close waits for the services to drain without polling.
	idleMu sync.Mutex
	idle   chan struct{}
	// replay bookkeeping, used only by Start's goroutine while replaying.
	replaying bool
	pending   map[string]*pendingCall
	resends   []func()
	outcomes  []*journal.Record // panicked inputs found by replay, journaled after it

	// deferred holds the deferred replies not completed yet (keys are
	// outstanding), failed with ErrNoReply at Close.
	deferred sync.Map

	// inlineWorkers holds the scratch space of calls that run a turn on
	// the caller's goroutine (per runtime: a Ctx keeps its runtime).
	inlineWorkers sync.Pool

	seedMu sync.Mutex
	seeds  *rand.Rand // deterministic mode only

	// remoteWG counts goroutines running remote calls (remote.go); Close
	// waits for them after cancelling rt.ctx.
	remoteWG sync.WaitGroup
}

// New creates a runtime. It starts nothing: register services, then Start.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if j, ok := cfg.Journal.(*journal.Journal); ok && j == nil {
		cfg.Journal = nil // a nil *journal.Journal is no journal
	}
	cfg.setDefaults()
	rt := &Runtime{
		cfg:      cfg,
		log:      cfg.Logger,
		sched:    newScheduler(cfg.Seed, cfg.SingleGoroutine && cfg.Seed != 0),
		services: make(map[string]*service),
		families: make(map[string]*family),
		closed:   make(chan struct{}),
	}
	if cfg.SingleGoroutine && cfg.Seed != 0 {
		rt.seeds = rand.New(rand.NewPCG(cfg.Seed, ^cfg.Seed))
	}
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	return rt, nil
}

func (rt *Runtime) nextSeed() uint64 {
	if rt.seeds == nil {
		return rand.Uint64()
	}
	rt.seedMu.Lock()
	defer rt.seedMu.Unlock()
	return rt.seeds.Uint64()
}

func validAddr(addr string) error {
	if !strings.HasPrefix(addr, "/") || len(addr) < 2 || strings.HasSuffix(addr, "/") || strings.Contains(addr, "//") {
		return fmt.Errorf("reactor: invalid address %q: want /name or /name/sub", addr)
	}
	return nil
}

func (rt *Runtime) newKind(addr string, stateType reflect.Type, opts []Option) (*kind, error) {
	if err := validAddr(addr); err != nil {
		return nil, err
	}
	o := serviceOptions{inboxSize: rt.cfg.InboxSize, workers: 1}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.workers == 0 {
		o.workers = 1
	}
	if o.inboxSize == 0 {
		o.inboxSize = rt.cfg.InboxSize
	}
	if o.batchSize == 0 {
		o.batchSize = rt.cfg.BatchSize
		if o.workers > 1 {
			o.batchSize = 1
		}
	}
	if o.maxChildren == 0 {
		o.maxChildren = 100_000
	}
	if o.place == placeJournal && rt.cfg.Journal == nil {
		return nil, fmt.Errorf("reactor: %s is Journaled but Config.Journal is nil", addr)
	}
	if o.place == placeExternal {
		switch {
		case o.store == nil:
			return nil, fmt.Errorf("reactor: %s: External(nil): %w", addr, ErrNilRequest)
		case o.workers > 1:
			return nil, fmt.Errorf("reactor: %s: External state needs one turn at a time, not Workers(%d)", addr, o.workers)
		}
	}
	return &kind{rt: rt, addr: addr, stateType: stateType, opts: o}, nil
}

// Register makes state reachable at addr as a service. Its handlers are the
// Methods defined on *S. Optional hooks: BatchStarter, BatchEnder, Loader,
// Saver, Activator.
func Register[S any](rt *Runtime, addr string, state *S, opts ...Option) (Ref, error) {
	if state == nil {
		return Ref{}, fmt.Errorf("reactor: register %s: %w", addr, ErrNilRequest)
	}
	k, err := rt.newKind(addr, reflect.TypeFor[S](), opts)
	if err != nil {
		return Ref{}, err
	}
	if k.opts.place == placeExternal {
		return Ref{}, fmt.Errorf("reactor: register %s: External state is for RegisterChildren (a top-level state cannot be rebuilt after a conflict; use a family with one key)", addr)
	}
	s := &service{kind: k, obj: state}
	if k.opts.place == placeJournal {
		s.js = &jstate{}
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, dup := rt.services[addr]; dup {
		return Ref{}, fmt.Errorf("reactor: register %s: %w", addr, ErrExists)
	}
	rt.services[addr] = s
	return Ref{rt: rt, addr: addr, svc: s}, nil
}

// RegisterChildren makes addr a parent of keyed children: the first message
// to addr/key creates the child with newChild(key) (then restores its
// checkpoint, if one exists). newChild may return nil to refuse a key:
// messages to it fail with ErrNoService. It returns a reference to the
// parent address: ref.Child(key) addresses one child. Children are kept in an LRU bounded by
// MaxChildren and MaxChildMemory and saved (if modified) when evicted. A
// service registered at addr itself, if any, is independent of its children.
func RegisterChildren[S any](rt *Runtime, addr string, newChild func(key string) *S, opts ...Option) (Ref, error) {
	if newChild == nil {
		return Ref{}, fmt.Errorf("reactor: children of %s: nil factory: %w", addr, ErrNilRequest)
	}
	k, err := rt.newKind(addr, reflect.TypeFor[S](), opts)
	if err != nil {
		return Ref{}, err
	}
	k.newChild = func(key string) any {
		if s := newChild(key); s != nil {
			return s
		}
		return nil
	}
	k.family = newFamily(k)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, dup := rt.families[addr]; dup {
		return Ref{}, fmt.Errorf("reactor: children of %s: %w", addr, ErrExists)
	}
	rt.families[addr] = k.family
	return Ref{rt: rt, addr: addr}, nil
}

// Start restores top-level services from their checkpoints (calling OnLoad
// and OnActive) and starts the workers.
func (rt *Runtime) Start(ctx context.Context) error {
	rt.mu.Lock()
	if rt.started {
		rt.mu.Unlock()
		return fmt.Errorf("reactor: Start called twice")
	}
	rt.started = true
	services := make([]*service, 0, len(rt.services))
	for _, s := range rt.services {
		services = append(services, s)
	}
	rt.mu.Unlock()
	for _, s := range services {
		if err := s.restore(ctx); err != nil {
			return err
		}
	}
	if rt.cfg.Journal != nil {
		rt.replaying = true
		rt.pending = make(map[string]*pendingCall)
		err := rt.replay(ctx)
		rt.replaying = false
		if err != nil {
			return err
		}
	}
	for _, s := range rt.all() {
		if a, ok := s.obj.(Activator); ok {
			c := &Ctx{}
			c.begin(rt, s)
			s.safely(c, "OnActive", func() { a.OnActive(c) })
			c.end()
		}
	}
	rt.writers.start(rt, checkpointWriters)
	rt.sched.start(rt.cfg.Goroutines)
	rt.inline.Store(!rt.cfg.SingleGoroutine)
	rt.janitor.Add(1)
	go rt.sweep()
	rt.mu.Lock()
	rt.running = true
	rt.mu.Unlock()
	return nil
}

// restore loads a top-level service's checkpoint into its registered state.
func (s *service) restore(ctx context.Context) error {
	c := &Ctx{}
	c.begin(s.kind.rt, s)
	defer c.end()
	found, err := s.restoreInto(ctx, c, s.obj)
	if found {
		s.kind.stats.loaded.Add(1)
	}
	return err
}

// sweep evicts children idle past their IdleTimeout and runs the
// periodic journal checkpoints.
func (rt *Runtime) sweep() {
	defer rt.janitor.Done()
	// A timer re-armed after each round rather than a ticker: Config.Timers
	// has no tickers, and a simulated clock that jumps ahead must cause one
	// round, not a burst of missed ticks.
	period := min(time.Second, rt.cfg.CheckpointInterval)
	tick := make(chan struct{}, 1)
	fire := func() {
		select {
		case tick <- struct{}{}:
		default:
		}
	}
	timers := rt.cfg.Timers
	lastCheckpoint := timers.Now()
	for {
		t := timers.AfterFunc(period, fire)
		select {
		case <-rt.closed:
			t.Stop()
			return
		case <-tick:
		}
		if timers.Now().Sub(lastCheckpoint) >= rt.cfg.CheckpointInterval {
			rt.checkpointRound()
			lastCheckpoint = timers.Now()
		}
		rt.mu.RLock()
		fams := make([]*family, 0, len(rt.families))
		for _, f := range rt.families {
			fams = append(fams, f)
		}
		rt.mu.RUnlock()
		now := rt.coarseNow()
		for _, f := range fams {
			f.expire(now)
		}
	}
}

func (rt *Runtime) activate(s *service) { rt.sched.push(s) }

// idleSignal returns a channel closed when the next turn ends (Close only).
func (rt *Runtime) idleSignal() <-chan struct{} {
	rt.idleMu.Lock()
	defer rt.idleMu.Unlock()
	if rt.idle == nil {
		rt.idle = make(chan struct{})
	}
	return rt.idle
}

// turnEnded wakes Close, if it waits for the services to drain.
func (rt *Runtime) turnEnded() {
	if !rt.closing.Load() {
		return
	}
	rt.idleMu.Lock()
	if rt.idle != nil {
		close(rt.idle)
		rt.idle = nil
	}
	rt.idleMu.Unlock()
}

// busy counts services with a turn queued or running.
func (rt *Runtime) busy() int {
	n := 0
	for _, s := range rt.all() {
		s.mu.Lock()
		// reserved: a journaled message on its way (its record not yet
		// durable) — it will be enqueued and must run before the saves.
		if s.active > 0 || s.reserved > 0 {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// Close stops accepting messages from outside, lets queued messages run
// until ctx ends, saves every modified service and resident child to the
// checkpoint store, and stops the workers. Messages still queued when ctx
// ends fail with ErrClosed. Calling Close again is safe and returns nil.
func (rt *Runtime) Close(ctx context.Context) error {
	first := false
	rt.stop.Do(func() { first = true })
	if !first {
		return nil
	}
	rt.closing.Store(true)
	rt.inline.Store(false)
	rt.mu.RLock()
	started, running := rt.started, rt.running
	rt.mu.RUnlock()
	// After a failed Start no worker drains anything, and the services hold
	// a partial recovery: save nothing and release nothing, so the next
	// Start finds the disk exactly as this one did.
	failedStart := started && !running
	var err error
	drained := true
	for running {
		idle := rt.idleSignal() // before counting: a turn ending after the count closes it
		n := rt.busy()
		if n == 0 {
			break
		}
		select {
		case <-idle:
			continue
		case <-ctx.Done():
			err = fmt.Errorf("reactor: close: %d services still busy: %w", n, ctx.Err())
			drained = false
		}
		break
	}
	close(rt.closed)
	rt.janitor.Wait()
	// A handler stuck past ctx keeps its worker: do not wait for it, and do
	// not save a service whose turn may still be running.
	rt.sched.stop(!drained, drained)
	if started {
		rt.writers.stop() // queued checkpoints are written, in-flight ones end
	}
	rt.cancel()
	rt.remoteWG.Wait() // remote calls end with rt.ctx
	// No turn runs any more: a deferred reply still open would never be
	// completed.
	rt.deferred.Range(func(p, _ any) bool {
		rt.deferred.Delete(p)
		p.(outstanding).abandon(fmt.Errorf("reactor: deferred reply still open at close: %w: %w", ErrNoReply, ErrClosed))
		return true
	})
	for _, s := range rt.all() {
		s.failQueued(ErrClosed)
		s.mu.Lock()
		s.dropPins()
		busy := s.active > 0 && !drained
		s.mu.Unlock()
		if busy {
			err = errors.Join(err, fmt.Errorf("reactor: close: %s not saved: its handler is still running", s.addr()))
			continue
		}
		if failedStart {
			continue
		}
		if saveErr := s.saveNow(context.WithoutCancel(ctx)); saveErr != nil {
			err = errors.Join(err, saveErr)
		}
	}
	if running && drained {
		rt.checkpointRound() // everything is saved: release the journal
	}
	return err
}

// all lists top-level services and resident children.
func (rt *Runtime) all() []*service {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	var out []*service
	for _, s := range rt.services {
		out = append(out, s)
	}
	for _, f := range rt.families {
		out = append(out, f.resident()...)
	}
	return out
}

// Ref is a reference to a service address. It is a small value: copy it,
// keep it, build it before the service exists. Children are resolved (and
// created or loaded) when a message is sent.
type Ref struct {
	rt   *Runtime
	addr string
	svc  *service // cached top-level service
}

// Ref returns a reference to addr ("/counter", "/rooms/42").
func (rt *Runtime) Ref(addr string) Ref {
	rt.mu.RLock()
	s := rt.services[addr]
	rt.mu.RUnlock()
	return Ref{rt: rt, addr: addr, svc: s}
}

func (rt *Runtime) ref(addr string, s *service) Ref {
	if s.path != "" {
		s = nil // children may be evicted; resolve them each time
	}
	return Ref{rt: rt, addr: addr, svc: s}
}

// Addr returns the referenced address.
func (r Ref) Addr() string { return r.addr }

// Parent returns a reference to the address one level up ("/rooms" for
// "/rooms/42"), or the zero Ref for a top-level address.
func (r Ref) Parent() Ref {
	i := strings.LastIndexByte(r.addr, '/')
	if i <= 0 {
		return Ref{}
	}
	return Ref{rt: r.rt, addr: r.addr[:i]}
}

// Child returns a reference to the keyed child key of this address.
func (r Ref) Child(key string) Ref { return Ref{rt: r.rt, addr: r.addr + "/" + key} }

func (r Ref) resolve() (*service, error) {
	if r.svc != nil {
		return r.svc, nil
	}
	if r.rt == nil {
		return nil, fmt.Errorf("reactor: zero Ref: %w", ErrNoService)
	}
	rt := r.rt
	rt.mu.RLock()
	s := rt.services[r.addr]
	var f *family
	var key string
	if s == nil {
		if i := strings.LastIndexByte(r.addr, '/'); i > 0 && i < len(r.addr)-1 {
			f, key = rt.families[r.addr[:i]], r.addr[i+1:]
		}
	}
	rt.mu.RUnlock()
	switch {
	case s != nil:
		return s, nil
	case f != nil:
		return f.child(key), nil
	}
	return nil, fmt.Errorf("reactor: %s: %w", r.addr, ErrNoService)
}

// ServiceStats is a snapshot of one registration's counters (for children:
// all children of the parent address together).
type ServiceStats struct {
	Addr       string
	Children   bool   // Addr is a parent of keyed children
	Received   uint64 // messages accepted into an inbox
	Handled    uint64 // messages handled
	Busy       uint64 // sends rejected with ErrBusy
	Panics     uint64
	Batches    uint64 // turns that handled at least one message
	MaxBatch   uint64
	InboxDepth int    // queued now (children: summed over resident children)
	Resident   int    // children in memory
	Loaded     uint64 // children created or loaded
	Evicted    uint64 // children saved and evicted
	Saves      uint64 // checkpoints written; External: states committed
	// External state (External) only:
	Reloads   uint64 // states read from the store: first loads, conflicts, revalidations that found a newer version
	Conflicts uint64 // writes refused because another writer changed the state
	Retries   uint64 // batches run again after a conflict
	GaveUp    uint64 // batches whose callers got ErrBusy after Config.StateAttempts runs
}

// Stats returns a snapshot of every registration's counters, sorted by
// address. It is cheap enough to scrape every second.
func (rt *Runtime) Stats() []ServiceStats {
	rt.mu.RLock()
	var out []ServiceStats
	for _, s := range rt.services {
		st := s.kind.snapshot()
		s.mu.Lock()
		st.InboxDepth = s.inbox.len()
		s.mu.Unlock()
		st.Received = st.Handled + uint64(st.InboxDepth)
		out = append(out, st)
	}
	for _, f := range rt.families {
		st := f.kind.snapshot()
		st.Children = true
		st.Resident, st.InboxDepth = f.depth()
		out = append(out, st)
	}
	rt.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

func (k *kind) snapshot() ServiceStats {
	s := &k.stats
	return ServiceStats{
		Addr: k.addr, Received: s.received.Load(), Handled: s.handled.Load(), Busy: s.busy.Load(),
		Panics: s.panics.Load(), Batches: s.batches.Load(), MaxBatch: s.maxBatch.Load(),
		Loaded: s.loaded.Load(), Evicted: s.evicted.Load(), Saves: s.saves.Load(),
		Reloads: s.reloads.Load(), Conflicts: s.conflicts.Load(), Retries: s.retries.Load(), GaveUp: s.gaveUp.Load(),
	}
}
