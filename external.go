package reactor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"time"
)

// External state: the state of each instance lives in a StateStore (Redis,
// …) under its address, with a version. Many processes may serve the same
// keys; the version makes every write a compare-and-swap.
//
// A turn of an external service (handleExternal):
//
//  1. If the cached state is not known current (first message, or a failed
//     write made it suspect) it is loaded. A batch of read-only methods
//     revalidates the cache with a conditional Load (no data moves when
//     nobody wrote); a batch that modifies does not read at all: the write
//     checks the version.
//  2. BeforeBatch, the handlers, AfterBatch run on the state. Everything
//     they produce for the outside — replies, failures, sends, async calls,
//     forwards, timers — goes into the turn's outbox instead.
//  3. If the state was modified, it is encoded and written once, with
//     CompareAndSwap on the cached version. Success: the outbox is
//     released, in order. Conflict: the outbox is discarded, the state
//     rebuilt from the store's current value, and the batch run again with
//     the same Ctx.Now and Ctx.Rand seed per message. After
//     Config.StateAttempts runs the batch's callers get ErrBusy.

// StateStore keeps service state outside the process: one value and one
// version per key. Versions are opaque to the runtime except that 0 means
// "no value" and that a successful write returns a version never returned
// for that key before. Implementations must be safe for concurrent use.
// The runtime never holds a key's state in two places in one process, but
// other processes may write the same keys at any time.
type StateStore interface {
	// Load returns the value stored under key and its version; (nil, 0,
	// nil) if there is none. If known is not 0 and the stored version is
	// still known, Load may return (nil, known, nil) without the data.
	Load(ctx context.Context, key string, known uint64) (data []byte, version uint64, err error)
	// CompareAndSwap stores data under key if the stored version is
	// version (0: no value stored), atomically, and returns the new
	// version. Otherwise it stores nothing and returns an error that
	// errors.Is ErrConflict — a *ConflictError carrying the current value
	// spares the runtime a Load.
	CompareAndSwap(ctx context.Context, key string, data []byte, version uint64) (newVersion uint64, err error)
}

// StateEvent is an event a batch of an External service produced (see
// EventProducer), written with the state that produced it.
type StateEvent struct {
	ID   uint64 // larger than every earlier event of the key: readers resume after an ID
	Data []byte // opaque to the runtime and the store
}

// EventStore is a StateStore that also keeps a stream of events per key
// and appends to it in the same atomic write as the state (state/redis:
// a Redis Stream appended by the same Lua script). Nothing is appended
// when the write conflicts, so readers of the stream see exactly the
// events of the committed batches, in commit order, on every process.
type EventStore interface {
	StateStore
	// CompareAndSwapEvents is CompareAndSwap that also appends events to
	// key's stream, all or nothing.
	CompareAndSwapEvents(ctx context.Context, key string, data []byte, version uint64, events []StateEvent) (newVersion uint64, err error)
}

// EventProducer is implemented by the state of an External service whose
// handlers produce events for readers on other processes (a room's
// updates for its live streams). The runtime takes the batch's events when
// it writes the state and passes them to the store's CompareAndSwapEvents;
// a run that conflicts is rebuilt from the store, its events with it.
type EventProducer interface {
	// TakeEvents returns the events produced since the last call and
	// forgets them.
	TakeEvents() []StateEvent
}

// ErrConflict: a StateStore's CompareAndSwap found another version than the
// one expected — another process wrote the key since it was read.
var ErrConflict = errors.New("reactor: state version conflict")

// ErrNoEvents: an External service produced events (EventProducer) and its
// store is not an EventStore.
var ErrNoEvents = errors.New("reactor: the state store keeps no events")

// ConflictError is a conflict that carries the value stored now, so the
// runtime re-runs the batch on it without another round trip.
type ConflictError struct {
	Key     string
	Version uint64 // the version stored now; 0: no value
	Data    []byte // the value stored now; nil with Version != 0: not returned
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("reactor: state of %s: version conflict (now %d)", e.Key, e.Version)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// External keeps the state of every child of a parent (RegisterChildren)
// in store, under the child's address, written back once per batch with
// optimistic concurrency: see StateStore and docs/DEPLOYMENT.md. The
// service's code does not change, with two exceptions that fail loudly:
// Defer panics (a deferred reply would leave before the state that made it
// is committed), and a blocking Call from a handler goes out at once (it
// is not held like sends are; a re-run calls again).
//
// Not with Journaled (the last placement option wins) nor Workers(n > 1),
// and not yet for Register (a top-level service has no factory to rebuild
// its state from on a conflict: register a family and use one key).
func External(store StateStore) Option {
	return func(o *serviceOptions) { o.place, o.store = placeExternal, store }
}

// InMemory keeps the state in the process only (the default): it survives
// nothing but eviction and Close, which save it to Config.Store.
func InMemory() Option {
	return func(o *serviceOptions) { o.place, o.store = placeMemory, nil }
}

type placement uint8

const (
	placeMemory placement = iota
	placeJournal
	placeExternal
)

// extState is the cache bookkeeping of one external instance (turn-owned).
type extState struct {
	version uint64 // the stored version the cached state was read at
	valid   bool   // the cached state is version's (not modified by an uncommitted run)
	// replies are the remembered answers to keyed requests
	// (WithIdempotencyKey), stored with the state in the same write: a
	// retry through another process finds the first answer there. A run
	// that is not committed is undone with the state (rebuild).
	replies *replyTable
}

// remember keeps the answer to a keyed message of the current run, at the
// handler's time (recorded, so a re-run remembers the same).
func (x *extState) remember(c *Ctx, meta *jmeta, resp any, err error) {
	if x.replies == nil {
		x.replies = newReplyTable(0)
	}
	r := &savedReply{Key: meta.key, At: c.Now().UnixNano(), Fp: meta.fp, value: resp, errValue: err}
	if err != nil {
		r.Fail = ErrorOf(err)
	}
	x.replies.put(r, c.rt.cfg.IdempotencyWindow)
}

// extMagic starts a stored value that holds remembered answers besides the
// state (an extBody in JSON). A value without it is the state alone, as the
// codec encoded it: services that never see a key pay nothing, and values
// written before keys were stored stay readable. No codec's output starts
// with a NUL byte followed by this text by accident.
const extMagic = "\x00reactor-ext/1\n"

// extBody is a stored value with remembered answers.
type extBody struct {
	State   []byte        `json:"state"`
	Replies []*savedReply `json:"replies,omitempty"`
}

// encodeExternal returns the value to store for state and the remembered
// answers still inside twice the window (twice, as for checkpoints: a
// retry may be up to a window late).
func (s *service) encodeExternal(state []byte) ([]byte, error) {
	t := s.ext.replies
	if t == nil || len(t.m) == 0 {
		return state, nil
	}
	rt := s.kind.rt
	t.prune(rt.cfg.Clock().UnixNano() - 2*int64(rt.cfg.IdempotencyWindow))
	b := extBody{State: state}
	for _, r := range t.order {
		if !t.live(r) {
			continue
		}
		if r.Raw == nil && r.value != nil {
			raw, err := rt.cfg.Codec.Marshal(r.value)
			if err != nil {
				return nil, fmt.Errorf("reactor: encode remembered answer %q: %w", r.Key, err)
			}
			r.Raw = raw
		}
		b.Replies = append(b.Replies, r)
	}
	if len(b.Replies) == 0 {
		return state, nil
	}
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("reactor: encode remembered answers: %w", err)
	}
	return append([]byte(extMagic), body...), nil
}

// decodeExternal splits a stored value into the state and its remembered
// answers (nil if it holds none), bounded as when they were stored.
func decodeExternal(data []byte, window time.Duration) ([]byte, *replyTable, error) {
	if !bytes.HasPrefix(data, []byte(extMagic)) {
		return data, nil, nil
	}
	var b extBody
	if err := json.Unmarshal(data[len(extMagic):], &b); err != nil {
		return nil, nil, fmt.Errorf("reactor: decode remembered answers: %w", err)
	}
	if len(b.Replies) == 0 {
		return b.State, nil, nil
	}
	t := newReplyTable(len(b.Replies))
	newest := int64(0)
	for _, r := range b.Replies {
		if r == nil {
			return nil, nil, fmt.Errorf("reactor: decode remembered answers: %w", errNullReply)
		}
		t.add(r)
		newest = max(newest, r.At)
	}
	t.prune(newest - 2*int64(window))
	for _, r := range b.Replies {
		if t.live(r) {
			t.bound(r.Key)
		}
	}
	return b.State, t, nil
}

var errNullReply = errors.New("null entry")

// outbox holds what a run of an external batch produced for the outside,
// until the state it came from is committed.
type outbox struct {
	release []func() // in the order the handlers produced them
	discard []func() // undo bookkeeping of held effects (async pins)
}

func (o *outbox) hold(fn func()) { o.release = append(o.release, fn) }

func (o *outbox) reset() {
	clear(o.release)
	clear(o.discard)
	o.release, o.discard = o.release[:0], o.discard[:0]
}

// recorded is what one message of a batch saw of the clock and the random
// seed, so a re-run sees the same.
type recorded struct {
	now     time.Time
	seed    uint64
	hasNow  bool
	hasSeed bool
}

// extScratch is a worker's scratch space for external batches.
type extScratch struct {
	keep []envelope
	rec  []recorded
	out  outbox
}

func (s *service) storeCtx() (context.Context, context.CancelFunc) {
	rt := s.kind.rt
	return context.WithTimeout(context.WithoutCancel(rt.ctx), rt.cfg.StateTimeout)
}

// loadExternal creates the instance's state from the store (first message
// to it, or after eviction) and calls OnActive if activate.
func (s *service) loadExternal(c *Ctx, activate bool) error {
	ctx, cancel := s.storeCtx()
	data, version, err := s.kind.opts.store.Load(ctx, s.addr(), 0)
	cancel()
	if err != nil {
		return fmt.Errorf("reactor: load state of %s: %w", s.addr(), err)
	}
	if err := s.rebuild(c, data, version); err != nil {
		return err
	}
	s.kind.stats.loaded.Add(1)
	if a, ok := s.obj.(Activator); ok && activate {
		s.safely(c, "OnActive", func() { a.OnActive(c) })
	}
	return nil
}

// rebuild replaces the cached state with data at version (0: a fresh
// state from the factory). An existing state is overwritten in place, so
// continuations that captured the receiver see the rebuilt state.
func (s *service) rebuild(c *Ctx, data []byte, version uint64) error {
	k := s.kind
	var replies *replyTable
	if version != 0 {
		var err error
		if data, replies, err = decodeExternal(data, k.rt.cfg.IdempotencyWindow); err != nil {
			return fmt.Errorf("reactor: state of %s (version %d): %w", s.addr(), version, err)
		}
	}
	fresh := k.newChild(s.key())
	if fresh == nil || reflect.ValueOf(fresh).IsNil() {
		return fmt.Errorf("reactor: %s: the factory of %s refused key %q: %w", s.addr(), k.addr, s.key(), ErrNoService)
	}
	if version != 0 {
		if err := k.rt.cfg.Codec.Unmarshal(data, fresh); err != nil {
			return fmt.Errorf("reactor: decode state of %s (version %d): %w", s.addr(), version, err)
		}
	}
	if l, ok := fresh.(Loader); ok {
		if err := l.OnLoad(c); err != nil {
			return fmt.Errorf("reactor: OnLoad of %s: %w", s.addr(), err)
		}
	}
	if s.obj == nil {
		s.obj = fresh
	} else {
		reflect.ValueOf(s.obj).Elem().Set(reflect.ValueOf(fresh).Elem())
	}
	s.ext.version, s.ext.valid, s.ext.replies = version, true, replies
	k.stats.reloads.Add(1)
	return nil
}

// refresh makes the cache current before a batch: a full load if it is
// suspect, a conditional one if the batch only reads.
func (s *service) refresh(c *Ctx, readOnly bool) error {
	x := s.ext
	if x.valid && !readOnly {
		return nil // optimistic: the write checks the version
	}
	known := uint64(0)
	if x.valid {
		known = x.version
	}
	ctx, cancel := s.storeCtx()
	data, version, err := s.kind.opts.store.Load(ctx, s.addr(), known)
	cancel()
	if err != nil {
		return fmt.Errorf("reactor: load state of %s: %w", s.addr(), err)
	}
	if x.valid && version == x.version {
		return nil
	}
	return s.rebuild(c, data, version)
}

// handleExternal runs a batch of an external service: see the comment at
// the top of this file. It returns the emptied batch.
func (s *service) handleExternal(w *worker, batch []envelope) []envelope {
	k := s.kind
	rt := k.rt
	c := &w.ctx
	c.begin(rt, s)
	defer func() {
		c.out = nil
		c.end()
		if s.path != "" {
			atomic.StoreInt64(&s.lastUsed, rt.coarseNow())
		}
	}()
	if len(batch) == 0 {
		return batch
	}
	sc := &w.ext
	keep := append(sc.keep[:0], batch...)
	clear(batch)
	batch = batch[:0]
	defer func() {
		clear(keep)
		sc.keep = keep[:0]
	}()
	readOnly := true
	for i := range keep {
		if !keep[i].m.isReadOnly() {
			readOnly = false
			break
		}
	}
	if s.obj == nil {
		if err := s.load(c, true); err != nil {
			rt.log.Error("reactor: load failed", "service", s.addr(), "err", err)
			s.failBatch(keep, err)
			return batch
		}
	} else if err := s.refresh(c, readOnly); err != nil {
		rt.log.Error("reactor: load failed", "service", s.addr(), "err", err)
		s.failBatch(keep, err)
		return batch
	}
	if cap(sc.rec) < len(keep) {
		sc.rec = make([]recorded, len(keep))
	}
	rec := sc.rec[:len(keep)]
	out := &sc.out
	attempts := rt.cfg.StateAttempts
	for attempt := 1; ; attempt++ {
		out.reset()
		s.dirty.Store(false)
		c.out = out
		if h, ok := s.obj.(BatchStarter); ok {
			s.safely(c, "BeforeBatch", func() { h.BeforeBatch(c) })
		}
		for i := range keep {
			e := keep[i] // a copy: a re-run needs the original
			s.deliverExternal(c, &e, &rec[i], attempt > 1)
		}
		if h, ok := s.obj.(BatchEnder); ok {
			s.safely(c, "AfterBatch", func() { h.AfterBatch(c) })
		}
		c.out = nil
		if attempt == 1 {
			k.stats.handled.Add(uint64(len(keep)))
			k.stats.batches.Add(1)
			if m := uint64(len(keep)); m > k.stats.maxBatch.Load() {
				k.stats.maxBatch.Store(m)
			}
		}
		if !s.dirty.Load() {
			s.releaseOutbox(out) // nothing to write: the replies rest on a current state
			return batch
		}
		err := s.commit(c)
		if err == nil {
			s.releaseOutbox(out)
			return batch
		}
		s.discardOutbox(out)
		if !errors.Is(err, ErrConflict) || attempt >= attempts {
			s.ext.valid = false // the cached state holds an uncommitted run
			if errors.Is(err, ErrConflict) {
				k.stats.gaveUp.Add(1)
				err = &contendedError{addr: s.addr(), runs: attempt, last: err}
			}
			rt.log.Warn("reactor: batch not committed", "service", s.addr(), "err", err)
			s.failBatch(keep, err)
			return batch
		}
		k.stats.conflicts.Add(1)
		if err := s.reloadAfterConflict(c, err); err != nil {
			s.ext.valid = false
			rt.log.Error("reactor: reload after conflict failed", "service", s.addr(), "err", err)
			s.failBatch(keep, err)
			return batch
		}
		k.stats.retries.Add(1)
		if attempt > 1 {
			// Several writers on one key: spread them out a little.
			time.Sleep(time.Duration(rand.Int64N(int64(100*time.Microsecond) << min(attempt, 7))))
		}
	}
}

// commit writes the state with CompareAndSwap on the cached version.
func (s *service) commit(c *Ctx) error {
	k := s.kind
	rt := k.rt
	if sv, ok := s.obj.(Saver); ok {
		if err := sv.OnSave(c); err != nil {
			return fmt.Errorf("reactor: OnSave of %s: %w", s.addr(), err)
		}
	}
	data, err := rt.cfg.Codec.Marshal(s.obj)
	if err != nil {
		return fmt.Errorf("reactor: encode state of %s: %w", s.addr(), err)
	}
	if data, err = s.encodeExternal(data); err != nil {
		return fmt.Errorf("reactor: state of %s: %w", s.addr(), err)
	}
	var events []StateEvent
	if p, ok := s.obj.(EventProducer); ok {
		events = p.TakeEvents()
	}
	ctx, cancel := s.storeCtx()
	var version uint64
	if len(events) > 0 {
		es, ok := k.opts.store.(EventStore)
		if !ok {
			cancel()
			return fmt.Errorf("reactor: write state of %s: %d events, and the store (%T) keeps none: %w", s.addr(), len(events), k.opts.store, ErrNoEvents)
		}
		version, err = es.CompareAndSwapEvents(ctx, s.addr(), data, s.ext.version, events)
	} else {
		version, err = k.opts.store.CompareAndSwap(ctx, s.addr(), data, s.ext.version)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("reactor: write state of %s: %w", s.addr(), err)
	}
	s.ext.version = version
	s.dirty.Store(false)
	k.stats.saves.Add(1)
	return nil
}

// reloadAfterConflict rebuilds the state from the value the conflict
// carried, or from a Load.
func (s *service) reloadAfterConflict(c *Ctx, err error) error {
	var ce *ConflictError
	if errors.As(err, &ce) && (ce.Version == 0 || ce.Data != nil) {
		return s.rebuild(c, ce.Data, ce.Version)
	}
	s.ext.valid = false
	return s.refresh(c, false)
}

// deliverExternal runs one message of an external batch, recording what it
// saw of the clock and the seed (first run) or replaying it (re-runs).
func (s *service) deliverExternal(c *Ctx, e *envelope, r *recorded, rerun bool) {
	defer func() {
		if !rerun {
			*r = recorded{now: c.now, seed: c.seed, hasNow: c.hasNow, hasSeed: c.hasSeed}
		}
		if p := recover(); p != nil {
			s.panicked(c, e, p)
		}
	}()
	c.message(e)
	if rerun {
		c.now, c.seed, c.hasNow, c.hasSeed = r.now, r.seed, r.hasNow, r.hasSeed
	}
	e.m.invoke(c, s.obj, e)
}

// releaseOutbox lets the committed run's effects out, in order, on the
// turn (a held send is posted as the handler would have posted it).
func (s *service) releaseOutbox(o *outbox) {
	for i, fn := range o.release {
		o.release[i] = nil
		fn()
	}
	o.reset()
}

// discardOutbox drops a run's effects: nothing of it leaves the process.
func (s *service) discardOutbox(o *outbox) {
	for _, fn := range o.discard {
		fn()
	}
	o.reset()
}

// failBatch answers every caller of a batch that was not committed with
// err. A continuation cannot be answered: it is queued again for a later
// turn (a few times, then dropped with an error in the log).
func (s *service) failBatch(keep []envelope, err error) {
	rt := s.kind.rt
	for i := range keep {
		e := &keep[i]
		if a, ok := e.m.(retryable); ok {
			if a.again(rt.cfg.StateAttempts) {
				if qerr := s.enqueue(*e, admitForced); qerr == nil {
					continue
				}
			}
			rt.log.Error("reactor: continuation dropped: its batch could not be committed", "service", s.addr(), "err", err)
			continue
		}
		e.m.fail(e, err)
	}
}

// retryable is a continuation that failBatch may queue again.
type retryable interface{ again(limit int) bool }

// contendedError fails the callers of a batch whose write kept conflicting:
// errors.Is(err, ErrBusy) (HTTP 503, retry later) and ErrConflict.
type contendedError struct {
	addr string
	runs int
	last error
}

func (e *contendedError) Error() string {
	return fmt.Sprintf("reactor: %s: busy: the state write still conflicted after %d runs of the batch (other writers); retry later", e.addr, e.runs)
}

func (e *contendedError) Is(target error) bool { return target == ErrBusy }
func (e *contendedError) Unwrap() error        { return e.last }
