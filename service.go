package reactor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/reactorgo/reactor/checkpoint"
)

// envelope is one message in an inbox. The request either travels boxed in
// arg (sends, async calls) or inside the reply target r (blocking calls, so a
// call allocates nothing).
type envelope struct {
	m    invoker
	arg  any
	r    any
	word uint64 // a small pointer-free request, stored without boxing
	meta *jmeta // journaled messages only
}

// invoker runs one envelope against a service's state on the service's turn.
type invoker interface {
	invoke(c *Ctx, obj any, e *envelope)
	// decode rebuilds a journaled message from its payload, for replay.
	decode(codec Codec, payload []byte) (envelope, error)
	// fail answers the envelope's sender with err without running it.
	fail(e *envelope, err error)
	methodName() string
	// isReadOnly: running it cannot modify the state.
	isReadOnly() bool
}

// kind is what the instances of one registration share: the top-level
// service, or all keyed children under one parent address.
type kind struct {
	rt        *Runtime
	addr      string // service address, or the parent address of children
	stateType reflect.Type
	opts      serviceOptions
	newChild  func(key string) any // children only
	family    *family              // children only
	stats     kindStats
}

// kindStats are updated with atomics: children of one kind run on many
// goroutines. Producer-side and consumer-side counters sit on separate cache
// lines so a busy producer does not slow the consumer down.
type kindStats struct {
	received atomic.Uint64
	busy     atomic.Uint64
	_        [48]byte
	handled  atomic.Uint64
	batches  atomic.Uint64
	maxBatch atomic.Uint64
	panics   atomic.Uint64
	loaded   atomic.Uint64
	evicted  atomic.Uint64
	saves    atomic.Uint64
	// External only.
	reloads   atomic.Uint64
	conflicts atomic.Uint64
	retries   atomic.Uint64
	gaveUp    atomic.Uint64
}

// service is one instance: a top-level service or one keyed child. Its
// fields after mu are guarded by mu unless noted. An idle child costs this
// struct, its map entry and its state; the inbox buffer is dropped when idle.
type service struct {
	mu       sync.Mutex
	kind     *kind
	path     string // the child's full address ("/rooms/42"); "" for top-level services
	obj      any    // *S; nil until loaded. Owned by the running turn.
	inbox    ring[envelope]
	active   int32 // turns queued or running (≤ 1 unless Workers)
	reserved int32 // inbox slots held by journaled messages not yet durable
	// pins counts outstanding async calls whose continuation must come back
	// here; a pinned child is not evicted.
	pins    int32
	waiters int32 // blocked callers waiting for inbox space
	space   chan struct{}
	dead    bool                // evicted: senders must resolve the address again
	forget  bool                // Ctx.Forget: delete the checkpoint at eviction instead of saving
	evict   bool                // the family asked this child to save and leave
	dirty   atomic.Bool         // a modifying handler ran since the last save
	pinned  map[uint64]struct{} // tokens of the closures this activation pinned (Pin)
	// LRU links and bookkeeping, guarded by family.mu.
	prev, next *service
	lastUsed   int64 // unix seconds of the last turn, atomic
	size       int64
	js         *jstate   // journaled services only
	ext        *extState // External services only
}

func (s *service) addr() string {
	if s.path == "" {
		return s.kind.addr
	}
	return s.path
}

// key is a child's key ("42" for /rooms/42), "" for top-level services.
func (s *service) key() string {
	if s.path == "" {
		return ""
	}
	return s.path[len(s.kind.addr)+1:]
}

func (s *service) capacity() int { return s.kind.opts.inboxSize }

var errRetry = errors.New("reactor: internal: resolve again")

// admission says how a message claims its inbox slot.
type admission uint8

const (
	admitBounded  admission = iota // fails with ErrBusy on a full inbox
	admitForced                    // replies, continuations, timers: already admitted once
	admitReserved                  // a journaled message whose slot reserve took
)

// enqueue adds e to the inbox. It returns errRetry if the child was
// evicted after the sender resolved it.
func (s *service) enqueue(e envelope, how admission) error {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return errRetry
	}
	switch how {
	case admitBounded:
		if s.inbox.n+int(s.reserved) >= s.capacity() {
			s.mu.Unlock()
			s.kind.stats.busy.Add(1)
			return ErrBusy
		}
	case admitReserved:
		s.reserved--
	}
	if e.meta != nil && s.js != nil {
		s.js.noteInput(e.meta.seq)
	}
	if s.inbox.buf == nil && s.path == "" {
		s.inbox.buf = make([]envelope, ceilPow2(s.capacity()))
	}
	s.inbox.push(e)
	schedule := s.active == 0 || (s.active < int32(s.kind.opts.workers) && s.inbox.n > int(s.active))
	if schedule {
		s.active++
	}
	s.mu.Unlock()
	if s.path != "" {
		s.kind.stats.received.Add(1) // top-level services derive it in Stats
	}
	if schedule {
		s.kind.rt.activate(s)
	}
	return nil
}

// enqueueWait is enqueue that waits for inbox space until ctx ends.
func (s *service) enqueueWait(ctx context.Context, e envelope) error {
	for {
		err := s.enqueue(e, admitBounded)
		if !errors.Is(err, ErrBusy) {
			return err
		}
		if err := s.waitSpace(ctx); err != nil {
			return err
		}
	}
}

// reserve claims an inbox slot for a message that will be enqueued once it
// is durable, so the journal's writer never has to wait for inbox space.
func (s *service) reserve(ctx context.Context, wait bool) error {
	for {
		s.mu.Lock()
		if s.dead {
			s.mu.Unlock()
			return errRetry
		}
		if s.inbox.n+int(s.reserved) < s.capacity() {
			s.reserved++
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		s.kind.stats.busy.Add(1)
		if !wait {
			return ErrBusy
		}
		if err := s.waitSpace(ctx); err != nil {
			return err
		}
	}
}

func (s *service) unreserve() {
	s.mu.Lock()
	s.reserved--
	s.mu.Unlock()
}

// waitSpace blocks until the inbox may have room, ctx ends or the runtime
// closes.
func (s *service) waitSpace(ctx context.Context) error {
	s.mu.Lock()
	if s.inbox.n+int(s.reserved) < s.capacity() || s.dead {
		s.mu.Unlock()
		return nil
	}
	if s.space == nil {
		s.space = make(chan struct{})
	}
	space := s.space
	s.waiters++
	s.mu.Unlock()
	select {
	case <-space:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		s.waiters--
		s.mu.Unlock()
		return fmt.Errorf("reactor: wait for inbox space of %s: %w", s.addr(), ctx.Err())
	case <-s.kind.rt.closed:
		return ErrClosed
	}
}

// worker is the per-goroutine scratch space of a scheduler worker.
type worker struct {
	batch []envelope
	ctx   Ctx
	ext   extScratch // External services' batches
}

// runTurn drains one batch: load state if needed, BeforeBatch, the handlers,
// AfterBatch; then either hands the service back to the scheduler (mail
// left) or lets it go idle.
func (s *service) runTurn(w *worker) {
	k := s.kind
	s.mu.Lock()
	n := min(s.inbox.n, k.opts.batchSize)
	batch := s.inbox.popInto(w.batch[:0], n)
	if s.waiters > 0 && n > 0 {
		close(s.space)
		s.space = nil
		s.waiters = 0
	}
	s.mu.Unlock()
	w.batch = s.handle(w, batch)
	s.endTurn()
}

// handle runs a batch on the current turn: load state if needed,
// BeforeBatch, the handlers, AfterBatch. It returns the emptied batch.
func (s *service) handle(w *worker, batch []envelope) []envelope {
	if s.ext != nil {
		return s.handleExternal(w, batch)
	}
	k := s.kind
	rt := k.rt
	c := &w.ctx
	c.begin(rt, s)
	if s.obj == nil && len(batch) > 0 {
		if err := s.load(c, true); err != nil {
			rt.log.Error("reactor: load failed", "service", s.addr(), "err", err)
			for i := range batch {
				batch[i].m.fail(&batch[i], err)
				batch[i] = envelope{}
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if h, ok := s.obj.(BatchStarter); ok {
			s.safely(c, "BeforeBatch", func() { h.BeforeBatch(c) })
		}
		for i := 0; i < len(batch); {
			i = s.deliverFrom(c, batch, i)
		}
		if h, ok := s.obj.(BatchEnder); ok {
			s.safely(c, "AfterBatch", func() { h.AfterBatch(c) })
		}
		k.stats.handled.Add(uint64(len(batch)))
		k.stats.batches.Add(1)
		if m := uint64(len(batch)); m > k.stats.maxBatch.Load() {
			k.stats.maxBatch.Store(m)
		}
	}
	c.end()
	if s.path != "" {
		atomic.StoreInt64(&s.lastUsed, rt.coarseNow())
	}
	clear(batch) // one bulk clear: the worker's batch keeps no messages alive
	return batch[:0]
}

// endTurn lets the service go idle, or hands it back to the scheduler if
// mail arrived during the turn, or evicts it if its family asked.
func (s *service) endTurn() {
	k := s.kind
	rt := k.rt
	if s.js != nil {
		s.checkpointTurn()
	}
	if f := k.family; f != nil {
		f.resize(s)
		s.mu.Lock()
		evict := s.evict && s.inbox.n == 0 && s.pins == 0 && s.active == 1
		s.mu.Unlock()
		if evict && f.evict(s) {
			rt.turnEnded()
			return
		}
	}

	s.mu.Lock()
	more := s.inbox.n > 0 && (s.active == 1 || s.inbox.n >= int(s.active))
	if !more {
		s.active--
		if s.path != "" && s.inbox.n == 0 && s.active == 0 {
			s.inbox.buf, s.inbox.head = nil, 0 // an idle child keeps no inbox buffer
		}
	}
	s.mu.Unlock()
	if more {
		rt.sched.push(s)
		return
	}
	rt.turnEnded()
	if f := k.family; f != nil && f.overBudget() {
		f.shed()
	}
}

// tryInline runs e at once on the calling goroutine if the service is idle
// with an empty inbox: the caller is about to block on the reply anyway, so
// this saves two goroutine switches and keeps every guarantee (the turn is
// claimed like any other, and nothing was queued ahead of e). It reports
// false, without running e, when the service is busy or must not be run
// here.
func (s *service) tryInline(e envelope) bool {
	rt := s.kind.rt
	if !rt.inline.Load() || s.kind.opts.workers > 1 {
		return false
	}
	s.mu.Lock()
	if s.dead || s.active != 0 || s.inbox.n != 0 || s.obj == nil {
		s.mu.Unlock()
		return false
	}
	s.active = 1
	s.mu.Unlock()
	w, _ := rt.inlineWorkers.Get().(*worker)
	if w == nil {
		w = &worker{batch: make([]envelope, 0, 1)}
	}
	w.batch = s.handle(w, append(w.batch[:0], e))
	rt.inlineWorkers.Put(w)
	s.endTurn()
	return true
}

// deliverFrom runs batch[i:] in order until the end or
// a panic; a panic fails that one message (its sender gets a *PanicError)
// and deliverFrom returns the index after it, so the batch goes on. One
// deferred recover per batch instead of one per message.
func (s *service) deliverFrom(c *Ctx, batch []envelope, i int) (next int) {
	next = i
	defer func() {
		if p := recover(); p != nil {
			s.panicked(c, &batch[next], p)
			batch[next] = envelope{}
			next++
		}
	}()
	for ; next < len(batch); next++ {
		e := &batch[next]
		c.message(e)
		if e.meta != nil && s.js != nil {
			s.js.applied = max(s.js.applied, e.meta.seq)
		}
		e.m.invoke(c, s.obj, e)
	}
	return next
}

func (s *service) panicked(c *Ctx, e *envelope, p any) {
	s.kind.stats.panics.Add(1)
	err := newPanicError(s.addr(), e.m.methodName(), p)
	s.kind.rt.log.Error("reactor: handler panicked", "service", s.addr(), "method", e.m.methodName(), "panic", fmt.Sprint(p))
	if !c.replied {
		if c.out != nil { // External: held until the batch is committed
			held := *e
			c.out.hold(func() { held.m.fail(&held, err) })
		} else {
			e.m.fail(e, err)
		}
	}
	if s.js != nil {
		s.recordOutcome(c, e, err)
	}
}

// deliver runs one message, turning a panic into an error for its sender.
func (s *service) deliver(c *Ctx, e *envelope) {
	defer func() {
		if p := recover(); p != nil {
			s.panicked(c, e, p)
		}
	}()
	c.message(e)
	if e.meta != nil && s.js != nil {
		s.js.applied = max(s.js.applied, e.meta.seq) // also if the handler panics: replay panics alike
	}
	e.m.invoke(c, s.obj, e)
}

// safely runs a hook, logging a panic instead of killing the worker.
func (s *service) safely(c *Ctx, hook string, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			s.kind.stats.panics.Add(1)
			s.kind.rt.log.Error("reactor: hook panicked", "service", s.addr(), "hook", hook, "panic", fmt.Sprint(p))
		}
	}()
	fn()
}

// load restores state from the checkpoint store, or creates it fresh, and
// (if activate) calls OnActive.
func (s *service) load(c *Ctx, activate bool) error {
	if s.ext != nil {
		return s.loadExternal(c, activate)
	}
	k := s.kind
	obj := k.newChild(s.key())
	if obj == nil || reflect.ValueOf(obj).IsNil() {
		return fmt.Errorf("reactor: %s: the factory of %s refused key %q: %w", s.addr(), k.addr, s.key(), ErrNoService)
	}
	if _, err := s.restoreInto(c, c, obj); err != nil {
		return err
	}
	s.obj = obj
	k.stats.loaded.Add(1)
	if a, ok := obj.(Activator); ok && activate {
		s.safely(c, "OnActive", func() { a.OnActive(c) })
	}
	return nil
}

// restoreInto decodes the service's checkpoint, if it has one, into obj and
// calls OnLoad. It reports whether a checkpoint was found.
func (s *service) restoreInto(ctx context.Context, c *Ctx, obj any) (bool, error) {
	rt := s.kind.rt
	cp, err := rt.cfg.Store.Load(ctx, s.addr())
	found := err == nil
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
	case err != nil:
		return false, fmt.Errorf("reactor: load %s: %w", s.addr(), err)
	default:
		state, err := s.decodeCheckpoint(cp)
		if err != nil {
			return false, err
		}
		if err := rt.cfg.Codec.Unmarshal(state, obj); err != nil {
			return false, fmt.Errorf("reactor: decode checkpoint of %s: %w", s.addr(), err)
		}
	}
	if l, ok := obj.(Loader); ok {
		if err := l.OnLoad(c); err != nil {
			return false, fmt.Errorf("reactor: OnLoad of %s: %w", s.addr(), err)
		}
	}
	return found, nil
}

// save writes the state to the checkpoint store if a handler modified it.
// It runs only on the service's turn or when the service is idle.
func (s *service) save(ctx context.Context) error {
	job, err := s.snapshot()
	if job == nil || err != nil {
		return err
	}
	return job.write(ctx)
}

// saveJob is a checkpoint encoded on the service's turn, and what the
// journal bookkeeping needs to know once it is written.
type saveJob struct {
	s  *service
	cp checkpoint.Checkpoint
	// outSeq: the checkpoint may not be written before the messages its
	// inputs sent are durable.
	outSeq uint64
	// nextUnsaved is the oldest input still queued when the state was
	// encoded (0: none); enqueued is the newest input enqueued by then.
	nextUnsaved, enqueued uint64
}

// snapshot encodes the state if a handler modified it. It runs on the
// service's turn (or while the service is idle).
func (s *service) snapshot() (*saveJob, error) {
	if !s.dirty.Load() || s.obj == nil || s.ext != nil {
		return nil, nil // External: committed by its turns, never checkpointed
	}
	rt := s.kind.rt
	if sv, ok := s.obj.(Saver); ok {
		c := &Ctx{}
		c.begin(rt, s)
		err := sv.OnSave(c)
		c.end()
		if err != nil {
			return nil, fmt.Errorf("reactor: OnSave of %s: %w", s.addr(), err)
		}
	}
	data, err := rt.cfg.Codec.Marshal(s.obj)
	if err != nil {
		return nil, fmt.Errorf("reactor: encode state of %s: %w", s.addr(), err)
	}
	if data, err = s.encodeCheckpoint(data); err != nil {
		return nil, fmt.Errorf("reactor: encode checkpoint of %s: %w", s.addr(), err)
	}
	job := &saveJob{s: s, cp: checkpoint.Checkpoint{Data: data}}
	if js := s.js; js != nil {
		job.cp.Seq, job.outSeq = js.applied, js.outSeq
		s.mu.Lock()
		for i := 0; i < s.inbox.n; i++ {
			e := &s.inbox.buf[(s.inbox.head+i)&(len(s.inbox.buf)-1)]
			if e.meta != nil && e.meta.seq > js.applied {
				job.nextUnsaved = e.meta.seq
				break
			}
		}
		if job.nextUnsaved == 0 && js.lastEnqueued > js.applied {
			// An input was enqueued but neither applied nor queued any
			// more: failed at Close (ErrClosed). It is durable, and only
			// replay can apply it now: keep the journal from just after
			// what this checkpoint covers.
			job.nextUnsaved = js.applied + 1
		}
		job.enqueued = js.lastEnqueued
		s.mu.Unlock()
	}
	s.dirty.Store(false)
	return job, nil
}

// write stores the checkpoint and then lets the journal go up to it.
func (j *saveJob) write(ctx context.Context) error {
	s := j.s
	rt := s.kind.rt
	err := s.waitOutbound(ctx, j.outSeq)
	if err == nil {
		err = rt.cfg.Store.Save(ctx, s.addr(), j.cp)
	}
	if err != nil {
		s.dirty.Store(true) // still to be saved
		return fmt.Errorf("reactor: save %s: %w", s.addr(), err)
	}
	if js := s.js; js != nil {
		s.mu.Lock()
		switch {
		case j.nextUnsaved != 0:
			js.firstUnsaved = j.nextUnsaved
		case js.lastEnqueued > j.enqueued:
			js.firstUnsaved = j.enqueued + 1 // a lower bound of what came after
		default:
			js.firstUnsaved = 0
		}
		s.mu.Unlock()
	}
	s.kind.stats.saves.Add(1)
	return nil
}

// failQueued answers every queued message with err (used at Close).
func (s *service) failQueued(err error) {
	s.mu.Lock()
	var pending []envelope
	for s.inbox.n > 0 {
		pending = append(pending, s.inbox.pop())
	}
	s.mu.Unlock()
	for i := range pending {
		pending[i].m.fail(&pending[i], err)
	}
}

func ceilPow2(n int) int {
	p := 4
	for p < n {
		p <<= 1
	}
	return p
}

// coarseNow is the runtime's clock (Config.Timers) in whole seconds, the
// resolution idle tracking (service.lastUsed) needs. It reads the clock on
// every call.
func (rt *Runtime) coarseNow() int64 { return rt.cfg.Timers.Now().Unix() }
