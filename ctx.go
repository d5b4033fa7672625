package reactor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"time"
)

// Ctx is what a handler gets besides its request: the service's identity,
// recorded time and randomness, and the ability to defer its reply. It is a
// context.Context (cancelled when the runtime closes), so it can be passed to
// calls and I/O. A Ctx is valid only during the handler's turn: do not keep
// it or use it from another goroutine.
type Ctx struct {
	rt      *Runtime
	svc     *service
	env     *envelope
	now     time.Time
	seed    uint64
	hasNow  bool
	hasSeed bool
	seeded  bool // pcg was seeded for the current message
	replied bool // the reply was sent or handed to a Reply
	rng     *rand.Rand
	pcg     rand.PCG
	replay  bool
	meta    *jmeta  // the journal record of the current message, if any
	sends   int     // journaled sends made by the current message, for origin keys
	out     *outbox // External batches: effects held until the state is committed
}

var _ context.Context = (*Ctx)(nil)

// begin points c at s for a turn. c.rt is written only when it changes:
// Done, Err and Value read it, and a driver may still be watching Done of
// the previous message's Ctx (workers reuse theirs).
func (c *Ctx) begin(rt *Runtime, s *service) {
	if c.rt != rt {
		c.rt = rt
	}
	c.svc = s
}

func (c *Ctx) message(e *envelope) {
	c.env = e
	c.hasNow, c.hasSeed, c.seeded, c.replied = false, false, false, false
	c.meta, c.sends = e.meta, 0
	if e.meta != nil && e.meta.external {
		// Only an idempotency key: not a journal record, so no Seq, no
		// origin keys for sends, and the handler's own clock and seed.
		c.meta = nil
	} else if e.meta != nil {
		c.now, c.hasNow = time.Unix(0, e.meta.time), true
		c.seed, c.hasSeed = e.meta.seed, true
	}
}

func (c *Ctx) end() { c.env, c.svc, c.meta = nil, nil, nil }

// Deadline implements context.Context: a turn has no deadline of its own.
func (c *Ctx) Deadline() (time.Time, bool) { return c.rt.ctx.Deadline() }

// Done implements context.Context: closed when the runtime shuts down.
func (c *Ctx) Done() <-chan struct{} { return c.rt.ctx.Done() }

// Err implements context.Context.
func (c *Ctx) Err() error { return c.rt.ctx.Err() }

// handlerKey finds the handler's Ctx through a context derived from it.
type handlerKey struct{}

// Value implements context.Context. A context derived from a Ctx
// (context.WithTimeout, WithValue, errgroup.WithContext, …) finds the
// handler through it, so sends and calls made with the derived context keep
// every handler-side guarantee: origin keys, replay suppression and the
// self-call deadlock check.
func (c *Ctx) Value(key any) any {
	if key == (handlerKey{}) {
		if c.svc == nil {
			return nil // outside a turn: the derived context is a plain one now
		}
		return c
	}
	return c.rt.ctx.Value(key)
}

// HandlerOf returns the handler whose turn ctx belongs to — ctx itself, or
// a context derived from it during that turn — or nil for a context from
// outside the runtime. Libraries that take a context.Context use it to act
// as part of the calling handler's turn (transactionally, for a journaled
// one).
func HandlerOf(ctx context.Context) *Ctx { return handlerOf(ctx) }

func handlerOf(ctx context.Context) *Ctx {
	if c, ok := ctx.(*Ctx); ok {
		return c
	}
	c, _ := ctx.Value(handlerKey{}).(*Ctx)
	return c
}

// Now is the time of the current message. It is read once per message, and
// for a journaled message it is the time recorded in the journal, so replay
// sees the same time.
func (c *Ctx) Now() time.Time {
	if !c.hasNow {
		c.now, c.hasNow = c.rt.cfg.Clock(), true
	}
	return c.now
}

// Rand returns a random source for the current message, seeded per message.
// In deterministic mode and for journaled messages the seed is recorded, so
// a replay draws the same numbers.
func (c *Ctx) Rand() *rand.Rand {
	if !c.hasSeed {
		c.seed, c.hasSeed = c.rt.nextSeed(), true
	}
	if !c.seeded { // once per message: later calls continue the sequence
		c.pcg.Seed(c.seed, c.seed^0xda3e39cb94b95bdb)
		c.seeded = true
	}
	if c.rng == nil {
		c.rng = rand.New(&c.pcg)
	}
	return c.rng
}

// Self is a reference to the service whose turn this is.
func (c *Ctx) Self() Ref { return c.rt.ref(c.svc.addr(), c.svc) }

// Key is the child key of a keyed child ("42" for /rooms/42), or "".
func (c *Ctx) Key() string { return c.svc.key() }

// Seq is the journal sequence number of the current message, or 0 if it
// was not journaled. It is unique and increasing per journal: a service
// that applies effects elsewhere (a database) can store it alongside them
// and skip a replayed message it has already applied.
func (c *Ctx) Seq() uint64 {
	if c.meta == nil {
		return 0
	}
	return c.meta.seq
}

// Replaying reports whether the current message is being replayed from the
// journal. Outbound sends and timers are suppressed during replay already;
// use this for other side effects.
func (c *Ctx) Replaying() bool { return c.replay }

// Logger returns the runtime's logger with the service address attached.
func (c *Ctx) Logger() *slog.Logger { return c.rt.log.With("service", c.svc.addr()) }

// Forget marks the state of a keyed child as finished: when the child is
// next evicted (idle, over its family's bounds, or at Close) its checkpoint
// is deleted instead of saved, and a later message to its key starts from
// the factory's fresh state. Use it for state that must not outlive its
// purpose on disk (a closed room, an expired session). For a journaled
// child, inputs the journal still holds are replayed into a fresh state
// after a crash, so a forgotten state should behave like a fresh one (refuse
// what it refuses). It has no effect on top-level services.
func (c *Ctx) Forget() {
	if c.svc.path == "" {
		return
	}
	c.svc.mu.Lock()
	c.svc.forget = true
	c.svc.mu.Unlock()
}

// MarkModified records that the state changed outside a modifying method
// (for example in a continuation), so it is saved before eviction or Close.
func (c *Ctx) MarkModified() { c.svc.dirty.Store(true) }

// Reply is a deferred reply: a handler that calls Defer returns at once
// (its return values are ignored) and completes the reply later, from a
// continuation, a timer, or another service it hands the Reply to. Completing
// is safe from any goroutine; only the first completion counts.
//
// A Reply that is never completed does not hang its caller forever: when
// the runtime closes, and when the garbage collector finds the Reply
// dropped (for example with the state of an evicted child), the caller gets
// ErrNoReply.
type Reply[Resp any] struct{ p *pendingReply[Resp] }

// pendingReply is the part of a Reply the runtime keeps: it must not point
// back at the Reply, so that a dropped Reply can be collected and noticed.
type pendingReply[Resp any] struct {
	to   completer[Resp]
	done once
	rt   *Runtime
}

// outstanding is a deferred reply not completed yet.
type outstanding interface{ abandon(err error) }

func (p *pendingReply[Resp]) abandon(err error) {
	if p.done.do() {
		var zero Resp
		p.to.complete(zero, err)
	}
}

// Defer takes over the current message's reply. Resp must be the method's
// reply type.
func Defer[Resp any](c *Ctx) *Reply[Resp] {
	if c.env == nil {
		panic("reactor: Defer outside a handler")
	}
	if c.replied {
		panic("reactor: Defer called twice, or after the reply was sent")
	}
	if c.svc.ext != nil {
		panic(fmt.Sprintf("reactor: Defer in %s: a service with External state cannot defer its reply (the reply could leave before the state that made it is committed); reply from the handler", c.svc.addr()))
	}
	p := &pendingReply[Resp]{rt: c.rt}
	if c.env.r != nil {
		var ok bool
		p.to, ok = c.env.r.(completer[Resp])
		if !ok {
			panic(fmt.Sprintf("reactor: Defer[%T] in method %s, which replies with another type", *new(Resp), c.env.m.methodName()))
		}
	}
	c.replied = true
	r := &Reply[Resp]{p: p}
	if p.to != nil {
		c.rt.deferred.Store(p, nil)
		runtime.AddCleanup(r, func(p *pendingReply[Resp]) {
			p.rt.deferred.Delete(p)
			p.abandon(fmt.Errorf("reactor: deferred reply dropped without being completed: %w", ErrNoReply))
		}, p)
	}
	return r
}

// OK completes the reply with a value.
func (r *Reply[Resp]) OK(v Resp) { r.Complete(v, nil) }

// Fail completes the reply with an error.
func (r *Reply[Resp]) Fail(err error) { var zero Resp; r.Complete(zero, err) }

// Complete completes the reply; later completions are ignored.
func (r *Reply[Resp]) Complete(v Resp, err error) {
	if r == nil || r.p.to == nil || !r.p.done.do() {
		return
	}
	r.p.rt.deferred.Delete(r.p)
	r.p.to.complete(v, err)
}

// complete lets a *Reply be the target of Forward.
func (r *Reply[Resp]) complete(v Resp, err error) { r.Complete(v, err) }

// Then returns a continuation for an async call that maps the callee's
// answer and completes this reply with the result (Baratine's result.of()).
func Then[In, Resp any](r *Reply[Resp], fn func(c *Ctx, in In) (Resp, error)) func(c *Ctx, in In, err error) {
	return func(c *Ctx, in In, err error) {
		if err != nil {
			r.Fail(err)
			return
		}
		r.Complete(fn(c, in))
	}
}

// PanicError is the error a caller gets when the handler panicked.
type PanicError struct {
	Service, Method string
	Value           any
	Stack           []byte
}

func newPanicError(svc, method string, v any) *PanicError {
	return &PanicError{Service: svc, Method: method, Value: v, Stack: debug.Stack()}
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("reactor: %s %s panicked: %v\n%s", e.Service, e.Method, e.Value, e.Stack)
}

// MarshalJSON records the panic value as text: it may be of any type.
func (e *PanicError) MarshalJSON() ([]byte, error) {
	return json.Marshal(panicJSON{e.Service, e.Method, fmt.Sprint(e.Value), string(e.Stack)})
}

// UnmarshalJSON restores a recorded panic; Value becomes its text.
func (e *PanicError) UnmarshalJSON(b []byte) error {
	var p panicJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = PanicError{Service: p.Service, Method: p.Method, Value: p.Value, Stack: []byte(p.Stack)}
	return nil
}

type panicJSON struct {
	Service string `json:"service"`
	Method  string `json:"method"`
	Value   string `json:"value"`
	Stack   string `json:"stack,omitempty"`
}

// Unwrap makes errors.Is(err, ErrPanic) true.
func (e *PanicError) Unwrap() error { return ErrPanic }
