package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
)

// ErrCallbackGone: a pinned callback can no longer run — its owner released
// it, or the owner's activation ended (evicted, forgotten, or its runtime
// closed). Nothing was delivered; a publisher drops such a subscriber.
var ErrCallbackGone = errors.New("reactor: callback gone")

// Callback is a pinned callback (Baratine's @Pin): a small value that one
// service creates and hands to others, and that runs, when anyone invokes
// it, on its owner's turn — in the owner's inbox, on the owner's goroutine,
// with the owner's state — never on the invoker's. It is the typed form of
// a listener, a watch or a subscription.
//
// There are two kinds, with one rule each:
//
//   - Pin(c, fn) pins a closure. It lives as long as the activation whose
//     state it captured: until the owner calls Release, or the owner is
//     evicted, forgotten or closed. It never keeps its owner resident — a
//     forgotten callback cannot block an eviction — and after the owner is
//     gone an Invoke fails with ErrCallbackGone. Only in-memory services pin
//     closures: a closure cannot be replayed from a journal or re-run by an
//     External batch.
//   - Method.Pin(c) pins a method of the owner. It is an address and a
//     method name, so it survives restarts, evictions and encoding: an
//     invocation is an ordinary message to the owner — journaled and
//     deduplicated by origin key when the owner is journaled, loading an
//     evicted owner like any message. Journaled and External services pin
//     methods.
//
// Invoke is bounded like every send: a full inbox fails with ErrBusy.
// A Callback encodes to JSON (so it can travel in a journaled request or
// sit in checkpointed state); a decoded closure callback still reaches its
// owner while that activation lives, in the same process.
type Callback[T any] struct {
	rt     *Runtime // nil once decoded: the invoking handler's runtime is used
	owner  string
	token  uint64 // a pinned closure: its key in pinned
	method string // a pinned method: its name
}

// pinned maps a pinned closure's token to its entry, for every runtime in
// the process (a decoded Callback carries only the token).
var pinned sync.Map // uint64 → *pinEntry

type pinEntry struct {
	svc *service
	fn  any // func(*Ctx, T)
}

// pinSeq numbers pinned closures. It starts at a random point so a token
// encoded by an earlier process does not name a closure of this one.
var pinSeq atomic.Uint64

func init() { pinSeq.Store(rand.Uint64() >> 1) }

// Pin pins fn to the calling service: the returned Callback runs fn on this
// service's turn whenever it is invoked, until Release or the end of this
// activation. Call it from a handler of an in-memory service; journaled and
// External services pin a method instead (Method.Pin), and Pin panics
// there.
func Pin[T any](c *Ctx, fn func(c *Ctx, v T)) Callback[T] {
	if c == nil || c.svc == nil {
		panic("reactor: Pin outside a handler")
	}
	if fn == nil {
		panic("reactor: Pin of a nil function")
	}
	s := c.svc
	if s.js != nil || s.ext != nil {
		panic(fmt.Sprintf("reactor: Pin in %s: a journaled or External service pins a method (Method.Pin), whose invocations can be journaled and replayed; a closure cannot", s.addr()))
	}
	token := pinSeq.Add(1)
	pinned.Store(token, &pinEntry{svc: s, fn: fn})
	s.mu.Lock()
	if s.pinned == nil {
		s.pinned = make(map[uint64]struct{})
	}
	s.pinned[token] = struct{}{}
	s.mu.Unlock()
	return Callback[T]{rt: c.rt, owner: s.addr(), token: token}
}

// Pin pins this method of the calling service: the returned Callback sends
// its value to the method at the caller's address. Unlike a pinned closure
// it is durable — an address and a method name — so journaled and External
// services use it, and it works after a restart.
func (m *MethodOf[S, Req, Resp]) Pin(c *Ctx) Callback[Req] {
	if c == nil || c.svc == nil {
		panic("reactor: Pin outside a handler")
	}
	if c.svc.kind.stateType != m.stateType {
		panic(fmt.Sprintf("reactor: %s.Pin in %s: the method is not one of this service's (state %v)", m.name, c.svc.addr(), c.svc.kind.stateType))
	}
	return Callback[Req]{rt: c.rt, owner: c.svc.addr(), method: m.name}
}

// Owner returns the address of the service the callback runs on.
func (cb Callback[T]) Owner() string { return cb.owner }

// IsZero reports a Callback that was never pinned.
func (cb Callback[T]) IsZero() bool { return cb.token == 0 && cb.method == "" }

// Invoke delivers v to the callback's owner, where it runs on the owner's
// turn. It does not wait for it to run. It fails with ErrBusy when the
// owner's inbox is full, and with ErrCallbackGone when a pinned closure was
// released or its owner's activation ended. From a handler, pass the
// handler's *Ctx: invocations made while that handler is replayed are not
// made again, and a journaled handler's invocation of a pinned method is
// keyed like any of its sends.
func (cb Callback[T]) Invoke(ctx context.Context, v T) error {
	switch {
	case cb.token != 0:
		return invokeClosure(ctx, cb, v)
	case cb.method != "":
		return cb.invokeMethod(ctx, v)
	default:
		return fmt.Errorf("reactor: invoke of a zero Callback: %w", ErrCallbackGone)
	}
}

// Release unpins a closure callback. Only the owner releases its own
// callbacks: it reports false for a callback of another service, for one
// already gone, and for a pinned method (which is not held anywhere; stop
// it at the publisher, with the Cancel it returned).
func (cb Callback[T]) Release(c *Ctx) bool {
	if cb.token == 0 || c == nil || c.svc == nil {
		return false
	}
	v, ok := pinned.Load(cb.token)
	if !ok || v.(*pinEntry).svc != c.svc {
		return false
	}
	pinned.Delete(cb.token)
	c.svc.mu.Lock()
	delete(c.svc.pinned, cb.token)
	c.svc.mu.Unlock()
	return true
}

func invokeClosure[T any](ctx context.Context, cb Callback[T], v T) error {
	found, ok := pinned.Load(cb.token)
	if !ok {
		return fmt.Errorf("reactor: callback on %s: %w", cb.owner, ErrCallbackGone)
	}
	entry := found.(*pinEntry)
	fn, ok := entry.fn.(func(*Ctx, T))
	if !ok {
		return fmt.Errorf("reactor: callback on %s takes %T, not %T: %w", cb.owner, entry.fn, v, ErrNoMethod)
	}
	owner := entry.svc
	c := handlerOf(ctx)
	if c != nil && c.svc != nil && c.rt.cfg.CheckShared != nil {
		c.rt.cfg.CheckShared(c.svc.addr(), "callback to "+cb.owner, c.svc.obj, v)
	}
	if c != nil && c.replay {
		return nil // made before the crash; the activation it ran on is gone
	}
	e := envelope{m: &pinCall[T]{token: cb.token, fn: fn, v: v}}
	if c != nil && c.out != nil {
		// From a batch of an External service: delivered once its state is
		// committed, never by a run that conflicted.
		c.out.hold(func() {
			if err := owner.enqueue(e, admitForced); err != nil {
				c.rt.log.Debug("reactor: callback from a committed batch not delivered", "owner", cb.owner, "err", err)
			}
		})
		return nil
	}
	if owner.kind.rt.closing.Load() && c == nil {
		return fmt.Errorf("reactor: callback on %s: %w: %w", cb.owner, ErrCallbackGone, ErrClosed)
	}
	switch err := owner.enqueue(e, admitBounded); {
	case err == errRetry: // evicted after the lookup
		return fmt.Errorf("reactor: callback on %s: %w", cb.owner, ErrCallbackGone)
	case err != nil:
		return fmt.Errorf("reactor: callback on %s: %w", cb.owner, err)
	}
	return nil
}

// valueSender is a method that can be sent a value of its request type
// without its static types: how a pinned method is invoked.
type valueSender interface {
	sendValue(ctx context.Context, to Ref, v any) error
	requestType() reflect.Type
}

func (m *MethodOf[S, Req, Resp]) sendValue(ctx context.Context, to Ref, v any) error {
	req, ok := v.(Req)
	if !ok {
		return fmt.Errorf("reactor: %s takes %v, not %T: %w", m.name, reflect.TypeFor[Req](), v, ErrNoMethod)
	}
	return m.Send(ctx, to, req)
}

func (m *MethodOf[S, Req, Resp]) requestType() reflect.Type { return reflect.TypeFor[Req]() }

// sendByName sends v to the method called name at addr, on rt or, for a
// value decoded from bytes, on the runtime of the handler ctx belongs to.
func sendByName(ctx context.Context, rt *Runtime, addr, name string, v any) error {
	if rt == nil {
		c := handlerOf(ctx)
		if c == nil {
			return fmt.Errorf("reactor: %s on %s was decoded outside a runtime: invoke it from a handler: %w", name, addr, ErrNoService)
		}
		rt = c.rt
	}
	found, ok := methodNames.Load(name)
	if !ok {
		return fmt.Errorf("reactor: %s on %s: no method of that name in this program: %w", name, addr, ErrNoMethod)
	}
	sender, ok := found.(valueSender)
	if !ok {
		return fmt.Errorf("reactor: %s on %s: %w", name, addr, ErrNoMethod)
	}
	return sender.sendValue(ctx, Ref{rt: rt, addr: addr}, v)
}

func (cb Callback[T]) invokeMethod(ctx context.Context, v T) error {
	return sendByName(ctx, cb.rt, cb.owner, cb.method, v)
}

// callbackWire is a Callback's JSON form.
type callbackWire struct {
	Owner  string `json:"owner"`
	Method string `json:"method,omitempty"`
	Pin    uint64 `json:"pin,omitempty,string"`
}

// MarshalJSON encodes the callback's owner and its method name or closure
// token.
func (cb Callback[T]) MarshalJSON() ([]byte, error) {
	return json.Marshal(callbackWire{Owner: cb.owner, Method: cb.method, Pin: cb.token})
}

// UnmarshalJSON decodes a callback encoded by MarshalJSON. A method it
// names that this program lacks, or that takes another type, fails the
// Invoke (ErrNoMethod), not the decoding: a checkpoint holding an outdated
// subscriber still loads.
func (cb *Callback[T]) UnmarshalJSON(data []byte) error {
	var w callbackWire
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("reactor: decode callback: %w", err)
	}
	switch {
	case w.Method != "" && w.Pin != 0:
		return errors.New("reactor: decode callback: both a method and a pinned closure")
	case (w.Method != "" || w.Pin != 0) && w.Owner == "":
		return errors.New("reactor: decode callback: no owner")
	case w.Method == "" && w.Pin == 0 && w.Owner != "":
		return errors.New("reactor: decode callback: an owner but neither a method nor a pinned closure")
	}
	if w.Method != "" {
		if found, ok := methodNames.Load(w.Method); ok {
			if s, ok := found.(valueSender); ok && s.requestType() != reflect.TypeFor[T]() {
				return fmt.Errorf("reactor: decode callback: %s takes %v, not %v", w.Method, s.requestType(), reflect.TypeFor[T]())
			}
		}
	}
	*cb = Callback[T]{owner: w.Owner, method: w.Method, token: w.Pin}
	return nil
}

// pinCall is one invocation of a pinned closure, in its owner's inbox.
type pinCall[T any] struct {
	token uint64
	fn    func(*Ctx, T)
	v     T
}

func (p *pinCall[T]) invoke(c *Ctx, _ any, _ *envelope) {
	c.replied = true
	if _, live := pinned.Load(p.token); !live {
		return // released after it was sent
	}
	if !c.svc.dirty.Load() {
		c.svc.dirty.Store(true)
	}
	p.fn(c, p.v)
}

func (p *pinCall[T]) decode(Codec, []byte) (envelope, error) {
	return envelope{}, errors.New("reactor: a pinned closure's invocation is never journaled")
}

func (p *pinCall[T]) fail(*envelope, error) {}

func (p *pinCall[T]) methodName() string { return "callback" }

func (p *pinCall[T]) isReadOnly() bool { return false }

// dropPins ends the closures pinned by s, whose activation is over. s.mu
// is held.
func (s *service) dropPins() {
	for token := range s.pinned {
		pinned.Delete(token)
	}
	s.pinned = nil
}
