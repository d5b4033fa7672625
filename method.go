package reactor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/reactorgo/reactor/internal/failpoint"
)

// MethodOf is a typed, named handler of services with state S. Create one
// per method with Method, at package level, and call it with Call, Send,
// Async or Forward. The name is what the journal and the network carry: keep
// it stable across releases.
type MethodOf[S, Req, Resp any] struct {
	name      string
	fn        func(*S, *Ctx, Req) (Resp, error)
	readOnly  bool
	nilable   bool
	inline    bool // Req fits in envelope.word
	stateType reflect.Type
	calls     sync.Pool // *syncCall[Req, Resp]
}

// MethodOption configures a method.
type MethodOption func(*methodOptions)

type methodOptions struct{ readOnly bool }

// ReadOnly marks a method that does not modify the state: it does not make
// the service dirty (no save needed) and is not journaled.
func ReadOnly() MethodOption { return func(o *methodOptions) { o.readOnly = true } }

var methodNames sync.Map // name → invoker, so a journal record finds its method

// Method defines a method of services with state S. It panics if the name is
// empty or already taken (like http.Handle): methods are defined once, at
// package level.
//
//	var Add = reactor.Method("counter.add", (*Counter).Add)
func Method[S, Req, Resp any](name string, fn func(*S, *Ctx, Req) (Resp, error), opts ...MethodOption) *MethodOf[S, Req, Resp] {
	if name == "" || fn == nil {
		panic("reactor: Method needs a name and a function")
	}
	var o methodOptions
	for _, opt := range opts {
		opt(&o)
	}
	reqType := reflect.TypeFor[Req]()
	m := &MethodOf[S, Req, Resp]{
		name:      name,
		fn:        fn,
		readOnly:  o.readOnly,
		stateType: reflect.TypeFor[S](),
		nilable:   reqType.Kind() == reflect.Pointer || reqType.Kind() == reflect.Interface,
		inline:    reqType.Size() <= 8 && !hasPointers(reqType),
	}
	if _, dup := methodNames.LoadOrStore(name, m); dup {
		panic(fmt.Sprintf("reactor: method name %q defined twice", name))
	}
	return m
}

// Name returns the method's stable name.
func (m *MethodOf[S, Req, Resp]) Name() string { return m.name }

func (m *MethodOf[S, Req, Resp]) methodName() string { return m.name }

func (m *MethodOf[S, Req, Resp]) isReadOnly() bool { return m.readOnly }

// completer receives a reply.
type completer[Resp any] interface{ complete(resp Resp, err error) }

func (m *MethodOf[S, Req, Resp]) invoke(c *Ctx, obj any, e *envelope) {
	var req Req
	sc, isCall := e.r.(*syncCall[Req, Resp])
	if isCall {
		req = sc.req
	} else {
		req = m.unpack(e)
	}
	if m.lookupReply(c, e) {
		return // a retry: answered as the first time, not applied again
	}
	if !m.readOnly && !c.svc.dirty.Load() {
		c.svc.dirty.Store(true)
	}
	resp, err := m.fn(obj.(*S), c, req)
	if c.replied {
		return // deferred: a Reply answers later
	}
	c.replied = true
	if check := c.rt.cfg.CheckShared; check != nil && err == nil {
		check(c.svc.addr(), "reply of "+m.name, obj, resp)
	}
	m.rememberReply(c, e, resp, err)
	if c.out != nil {
		m.holdReply(c, e, sc, resp, err)
		return
	}
	switch {
	case isCall:
		sc.complete(resp, err)
	case e.r != nil:
		e.r.(completer[Resp]).complete(resp, err)
	case err != nil:
		c.rt.log.Debug("reactor: sent message failed", "service", c.svc.addr(), "method", m.name, "err", err)
	}
}

// holdReply puts a reply in the outbox of an External batch: it leaves
// once the state it was computed from is committed.
func (m *MethodOf[S, Req, Resp]) holdReply(c *Ctx, e *envelope, sc *syncCall[Req, Resp], resp Resp, err error) {
	switch {
	case sc != nil:
		c.out.hold(func() { sc.complete(resp, err) })
	case e.r != nil:
		to := e.r.(completer[Resp])
		c.out.hold(func() { to.complete(resp, err) })
	case err != nil:
		name, addr, log := m.name, c.svc.addr(), c.rt.log
		c.out.hold(func() { log.Debug("reactor: sent message failed", "service", addr, "method", name, "err", err) })
	}
}

func (m *MethodOf[S, Req, Resp]) fail(e *envelope, err error) {
	if e.r == nil {
		return
	}
	var zero Resp
	e.r.(completer[Resp]).complete(zero, err)
}

func (m *MethodOf[S, Req, Resp]) isNil(req Req) bool {
	if !m.nilable {
		return false
	}
	v := any(req)
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// pack puts a request that travels with the envelope (not inside a call).
func (m *MethodOf[S, Req, Resp]) pack(req Req, r any) envelope {
	e := envelope{m: m, r: r}
	if m.inline {
		*(*Req)(unsafe.Pointer(&e.word)) = req
	} else {
		e.arg = req
	}
	return e
}

func (m *MethodOf[S, Req, Resp]) unpack(e *envelope) Req {
	if m.inline {
		return *(*Req)(unsafe.Pointer(&e.word))
	}
	req, _ := e.arg.(Req)
	return req
}

// hasPointers reports whether values of t hold pointers the GC must see.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

// target resolves the address for this method, checking the service's type.
func (m *MethodOf[S, Req, Resp]) target(to Ref) (*service, error) {
	svc, err := to.resolve()
	if err != nil {
		return nil, err
	}
	if svc.kind.stateType != m.stateType {
		return nil, fmt.Errorf("reactor: %s on %s (state %v): %w", m.name, to.addr, svc.kind.stateType, ErrNoMethod)
	}
	return svc, nil
}

// post enqueues e, resolving again if a child was evicted under us.
func (m *MethodOf[S, Req, Resp]) post(ctx context.Context, to Ref, req Req, e envelope, wait, force bool) error {
	if m.isNil(req) {
		return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, ErrNilRequest)
	}
	if to.rt == nil {
		return fmt.Errorf("reactor: %s to a zero Ref: %w", m.name, ErrNoService)
	}
	c := handlerOf(ctx)
	internal := c != nil
	if internal && c.rt.cfg.CheckShared != nil && c.svc != nil {
		c.rt.cfg.CheckShared(c.svc.addr(), "send of "+m.name+" to "+to.addr, c.svc.obj, req)
	}
	if r := to.rt.cfg.Remote; r != nil && !r.Owns(to.addr) {
		if !internal && to.rt.closing.Load() {
			return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, ErrClosed)
		}
		if _, blocking := e.r.(blocker); internal && c.out != nil && !blocking {
			// From a batch of an External service: sent once its state is
			// committed, as a local post is.
			c.out.hold(m.heldPost(c, ctx, to, req, e, wait, force))
			return nil
		}
		return m.postRemote(ctx, c, to, req, e, r)
	}
	if !internal && to.rt.closing.Load() {
		return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, ErrClosed)
	}
	var origin string // the origin key of a journaled handler's send, once chosen
	for {
		svc, err := m.target(to)
		if err != nil {
			return err
		}
		_, blocking := e.r.(blocker)
		if blocking && internal && c.svc == svc && svc.kind.opts.workers <= 1 {
			return fmt.Errorf("reactor: %s: blocking call to itself (%s): %w", m.name, to.addr, ErrDeadlock)
		}
		journaled := svc.js != nil && !m.readOnly
		if e.meta == nil && svc.kind.opts.place == placeExternal && !m.readOnly {
			if key := keyFrom(ctx); key != "" {
				// The key and the request's fingerprint travel with the
				// message: the answer is stored with the state, in the
				// same write, so a retry through any process finds it.
				payload, err := to.rt.cfg.Codec.Marshal(req)
				if err != nil {
					return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, err)
				}
				e.meta = &jmeta{key: key, fp: fingerprint(m.name, payload), external: true}
			}
		}
		if internal && c.replay {
			return m.replayPost(c, to, svc, req, e, blocking, journaled, keyFrom(ctx))
		}
		if internal && c.out != nil && !blocking {
			// From a batch of an External service: posted once its state
			// is committed, never by a run that conflicted.
			c.out.hold(m.heldPost(c, ctx, to, req, e, wait, force))
			return nil
		}
		if journaled {
			key := keyFrom(ctx)
			if internal && c.meta != nil && key == "" {
				if origin == "" {
					// Numbered once per send, not per attempt: a retry after
					// the child was evicted under us must keep the key that
					// a replay of this handler will give the same send.
					c.sends++
					origin = c.originKey()
				}
				key = origin
			}
			if internal && c.meta != nil && e.r == nil {
				// A journaled input's send is owed: a replay sends it again
				// whatever happened live, so refusing it here (ErrBusy)
				// would only make the live run and the replay disagree.
				force = true
			}
			if failpoint.Inject(failpoint.SendTargetGone, to.rt.cfg.Journal) != nil {
				continue
			}
			err = m.postJournaled(ctx, c, to, svc, req, e, wait, force, key)
			if err == errRetry {
				continue
			}
			return err
		}
		if internal && c.meta != nil && !m.readOnly && to.rt.cfg.Remote != nil && keyFrom(ctx) == "" {
			// In a cluster a journaled handler counts every modifying send
			// as a send to a journaled service, as a remote one is counted
			// (see Remote): its origin keys stay the same whether the
			// target runs here or elsewhere, live and in replay.
			if origin == "" { // once per send, not per attempt (see above)
				c.sends++
				origin = c.originKey()
			}
		}
		// A caller that cannot give up (no Done channel) may run an idle
		// service's turn itself: it would wait for the reply regardless.
		if blocking && ctx.Done() == nil && svc.tryInline(e) {
			return nil
		}
		if wait {
			err = svc.enqueueWait(ctx, e)
		} else {
			how := admitBounded
			if force {
				how = admitForced
			}
			err = svc.enqueue(e, how)
		}
		if err == errRetry {
			continue
		}
		if err != nil {
			return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, err)
		}
		return nil
	}
}

// heldPost is a post from an External batch, made when the outbox is
// released: on the same turn, as the handler would have made it. An error
// then fails the message's reply target (an Async continuation or a
// forwarded Reply gets it) or is logged (a Send).
func (m *MethodOf[S, Req, Resp]) heldPost(c *Ctx, ctx context.Context, to Ref, req Req, e envelope, wait, force bool) func() {
	var rctx context.Context = c // not ctx: a context derived from c may be cancelled by then
	if key := keyFrom(ctx); key != "" {
		rctx = WithIdempotencyKey(c, key)
	}
	return func() {
		if err := m.post(rctx, to, req, e, wait, force); err != nil {
			if e.r != nil {
				m.fail(&e, err)
				return
			}
			c.rt.log.Warn("reactor: send from a committed batch not delivered", "service", c.svc.addr(), "to", to.addr, "method", m.name, "err", err)
		}
	}
}

// replayPost handles a message sent by a handler that is being replayed:
// sends to journaled services are queued to go out again after replay
// (their receivers drop duplicates by key); everything else is a side
// effect already done before the crash, and is suppressed.
func (m *MethodOf[S, Req, Resp]) replayPost(c *Ctx, to Ref, svc *service, req Req, e envelope, blocking, journaled bool, key string) error {
	if blocking {
		return fmt.Errorf("reactor: %s: blocking call from a handler during replay: %w", m.name, ErrDeadlock)
	}
	// Numbered as the live run numbered it (post): every unkeyed message to
	// a journaled service — a Forward or an Async too, which are not sent
	// again — and, in a cluster, every unkeyed modifying one. A message the
	// handler keyed itself (WithIdempotencyKey) took no number live and goes
	// out again under its own key; numbering it here would shift every
	// later send's key, and the receivers would apply those twice.
	if key == "" && (journaled || (c.rt.cfg.Remote != nil && !m.readOnly)) {
		c.sends++
	}
	if !journaled || e.r != nil {
		return nil
	}
	if key == "" {
		key = c.originKey()
	}
	rt := c.rt
	rt.resends = append(rt.resends, func() {
		if err := m.postJournaled(rt.ctx, nil, to, svc, req, e, false, true, key); err != nil {
			rt.log.Warn("reactor: resend after replay failed", "service", to.addr, "method", m.name, "err", err)
		}
	})
	return nil
}

// Call sends req and waits for the reply, or until ctx ends (also while
// waiting for inbox space). It allocates nothing in the steady state. When
// ctx can never end (context.Background) and the service is idle, the
// handler runs on the caller's goroutine, in a turn claimed like any other:
// the same guarantees, two goroutine switches fewer.
// Calling a service from its own handler fails with ErrDeadlock; use Async.
func (m *MethodOf[S, Req, Resp]) Call(ctx context.Context, to Ref, req Req) (Resp, error) {
	return m.call(ctx, to, req, true)
}

// TryCall is Call that fails at once with ErrBusy when the inbox is full,
// instead of waiting for space: for front ends that turn a full inbox into
// "503, retry later" rather than queueing callers. It still waits for the
// reply, until ctx ends.
func (m *MethodOf[S, Req, Resp]) TryCall(ctx context.Context, to Ref, req Req) (Resp, error) {
	return m.call(ctx, to, req, false)
}

func (m *MethodOf[S, Req, Resp]) call(ctx context.Context, to Ref, req Req, waitSpace bool) (Resp, error) {
	var zero Resp
	sc, _ := m.calls.Get().(*syncCall[Req, Resp])
	if sc == nil {
		sc = &syncCall[Req, Resp]{done: make(chan struct{}, 1)}
	}
	sc.req = req
	if err := m.post(ctx, to, req, envelope{m: m, r: sc}, waitSpace, false); err != nil {
		sc.req = *new(Req)
		m.calls.Put(sc)
		return zero, err
	}
	if sc.state.Load() == 1 { // answered already (the turn ran on this goroutine)
		<-sc.done
	} else {
		select {
		case <-sc.done:
		case <-ctx.Done():
			if sc.state.CompareAndSwap(0, 2) {
				return zero, fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, ctx.Err())
			}
			<-sc.done
		}
	}
	resp, err := sc.resp, sc.err
	sc.reset()
	m.calls.Put(sc)
	return resp, err
}

// Send delivers req without waiting for it to be handled. It never blocks:
// a full inbox fails at once with ErrBusy. From inside a handler pass the
// handler's *Ctx as ctx (sends are then suppressed during journal replay).
func (m *MethodOf[S, Req, Resp]) Send(ctx context.Context, to Ref, req Req) error {
	return m.post(ctx, to, req, m.pack(req, nil), false, false)
}

// SendWait is Send that waits for inbox space until ctx ends instead of
// failing with ErrBusy: back pressure for producers that may block.
func (m *MethodOf[S, Req, Resp]) SendWait(ctx context.Context, to Ref, req Req) error {
	return m.post(ctx, to, req, m.pack(req, nil), true, false)
}

// Async calls to from inside a handler without blocking the turn. then runs
// later as a message in the caller's own inbox — on the caller's turn, never
// on the callee's goroutine — with the reply or the error (ErrBusy included).
// The caller stays resident until then has run.
func (m *MethodOf[S, Req, Resp]) Async(c *Ctx, to Ref, req Req, then func(c *Ctx, resp Resp, err error)) {
	ac := &asyncCall[Resp]{caller: c.svc, then: then}
	if c.meta != nil && c.svc.js != nil {
		// A journaled caller journals the reply as its own input, keyed
		// like the request, so the continuation replays in place.
		c.sends++
		ac.key = c.originKey()
	}
	c.svc.mu.Lock()
	c.svc.pins++
	c.svc.mu.Unlock()
	if c.out != nil {
		// External batch: the request is held (post) and dropped with the
		// run if its write conflicts; the pin goes with it.
		svc := c.svc
		c.out.discard = append(c.out.discard, func() { ac.unpin(svc) })
	}
	send := func(ctx context.Context) {
		if ac.key != "" {
			ctx = WithIdempotencyKey(ctx, ac.key)
		}
		if err := m.post(ctx, to, req, m.pack(req, ac), false, false); err != nil {
			ac.complete(*new(Resp), err)
		}
	}
	if c.replay {
		if ac.key != "" {
			c.rt.pending[ac.key] = &pendingCall{reply: ac, resend: func() { send(c.rt.ctx) }}
		}
		return
	}
	send(c)
}

// Forward calls to and lets its reply complete r directly: the answer goes
// to whoever r answers, without passing through this service again.
func (m *MethodOf[S, Req, Resp]) Forward(c *Ctx, to Ref, req Req, r *Reply[Resp]) {
	if err := m.post(c, to, req, m.pack(req, r), false, false); err != nil {
		r.Fail(err)
	}
}

// After delivers req to the calling service itself after d, as a message
// (so it runs on the service's turn). Stop the returned Timer to cancel it.
// Timers are not journaled until they fire: re-arm them in OnActive.
func (m *MethodOf[S, Req, Resp]) After(c *Ctx, d time.Duration, req Req) *Timer {
	t := &Timer{}
	if c.replay {
		t.stopped.Store(true)
		return t
	}
	self := c.Self()
	arm := func() {
		if t.stopped.Load() {
			return
		}
		t.t = self.rt.cfg.Timers.AfterFunc(d, func() {
			if t.stopped.Load() {
				return
			}
			if err := m.post(self.rt.ctx, self, req, m.pack(req, nil), false, true); err != nil && !errors.Is(err, ErrClosed) {
				self.rt.log.Warn("reactor: timer message not delivered", "service", self.addr, "method", m.name, "err", err)
			}
		})
	}
	if c.out != nil {
		c.out.hold(arm) // External batch: armed once its state is committed
	} else {
		arm()
	}
	return t
}

// Timer is a pending After message.
type Timer struct {
	t       Stopper
	stopped atomic.Bool
}

// Stop cancels the timer. It reports whether the message was still pending.
func (t *Timer) Stop() bool {
	if t == nil || t.stopped.Swap(true) {
		return false
	}
	return t.t == nil || t.t.Stop()
}

// syncCall is a blocking caller's reply slot, pooled per method.
type syncCall[Req, Resp any] struct {
	req   Req
	resp  Resp
	err   error
	done  chan struct{}
	state atomic.Int32 // 0 waiting, 1 answered, 2 abandoned by the caller
}

// blocker marks reply targets whose sender blocks until the answer.
type blocker interface{ blocking() }

func (s *syncCall[Req, Resp]) blocking() {}

func (s *syncCall[Req, Resp]) complete(resp Resp, err error) {
	if s.state.CompareAndSwap(0, 1) {
		s.resp, s.err = resp, err
		s.done <- struct{}{}
	}
}

func (s *syncCall[Req, Resp]) reset() {
	var req Req
	var resp Resp
	s.req, s.resp, s.err = req, resp, nil
	s.state.Store(0)
}

// asyncCall carries an async call's reply back into the caller's inbox.
type asyncCall[Resp any] struct {
	caller *service
	then   func(*Ctx, Resp, error)
	resp   Resp
	err    error
	once   once
	key    string // journaled caller: the reply is journaled under this key
	// External caller: the batch that runs the continuation may run more
	// than once, or be queued again (failBatch); the pin goes once.
	unpinned once
	requeued int
}

// unpin releases the caller's pin on the continuation's first run (or when
// an External run that made the call is discarded).
func (a *asyncCall[Resp]) unpin(s *service) {
	if a.unpinned.do() {
		s.mu.Lock()
		s.pins--
		s.mu.Unlock()
	}
}

// again reports whether a continuation whose External batch was not
// committed may be queued again; if not, it lets go of its pin.
func (a *asyncCall[Resp]) again(limit int) bool {
	a.requeued++
	if a.requeued <= limit {
		return true
	}
	a.unpin(a.caller)
	return false
}

func (a *asyncCall[Resp]) isReadOnly() bool { return false }

// settle marks a replayed call answered, so a late live reply is dropped.
func (a *asyncCall[Resp]) settle() { a.once.do() }

func (a *asyncCall[Resp]) complete(resp Resp, err error) {
	if !a.once.do() {
		return
	}
	a.resp, a.err = resp, err
	if a.key != "" {
		if jerr := a.journalReply(); jerr != nil {
			a.caller.kind.rt.log.Error("reactor: async reply not journaled; continuation dropped", "service", a.caller.addr(), "err", jerr)
		}
		return
	}
	// Pinned, so the caller cannot have been evicted: enqueue cannot retry.
	if err := a.caller.enqueue(envelope{m: a}, admitForced); err != nil {
		a.caller.kind.rt.log.Error("reactor: continuation lost", "service", a.caller.addr(), "err", err)
	}
}

func (a *asyncCall[Resp]) invoke(c *Ctx, _ any, _ *envelope) {
	a.unpin(c.svc)
	if c.svc.ext != nil {
		c.svc.dirty.Store(true) // a continuation may change the state: commit it
	}
	c.replied = true
	a.then(c, a.resp, a.err)
}

func (a *asyncCall[Resp]) fail(*envelope, error) {}

func (a *asyncCall[Resp]) methodName() string { return "continuation" }

type once struct{ v atomic.Bool }

func (o *once) do() bool { return o.v.CompareAndSwap(false, true) }
