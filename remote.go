package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Remote lets a runtime reach services that another process serves: the
// seam a cluster (package cluster's Node) plugs in. With Config.Remote nil
// a runtime serves every address itself; the check costs one nil test per
// message.
//
// Before resolving an address, every Call, TryCall, Send, SendWait, Async
// and Forward asks Owns; for an address this runtime does not own, the
// request is encoded with the runtime's Codec and handed to Call together
// with the method's name and the idempotency key the message would carry
// locally (the caller's WithIdempotencyKey, or, for a journaled handler's
// send, the origin key replay would use, so the receiver drops a
// duplicate). The far side hands the bytes to (*Runtime).Deliver.
//
// How each kind of message travels:
//
//   - Call and TryCall wait for Remote.Call (bounded by ctx) and decode
//     the reply. The far side admits the message like TryCall: a full
//     inbox fails with ErrBusy.
//   - Send and SendWait from outside any handler wait for Remote.Call and
//     return its error (so a caller learns of ErrBusy or a durable
//     failure); the reply is discarded. From a handler they do not block
//     the turn: Remote.Call runs on a goroutine and a failure is logged.
//   - Async and Forward run Remote.Call on a goroutine; the reply is
//     delivered as a local reply is — an Async continuation runs on the
//     caller's turn, and the caller stays resident until then.
//
// With Remote set, a journaled handler's origin keys name the sending
// service (journal sequences may be per partition) and count every
// modifying send, local or remote, so they are the same whether the
// target runs here or elsewhere, live or in replay. Its remote sends and
// Async calls are owed: the sender is not checkpointed past the input
// that made them until they were delivered (ErrBusy is retried), so after
// a crash or handoff the replay sends them again and the receiver drops
// duplicates by key.
type Remote interface {
	// Owns reports whether this runtime serves addr.
	Owns(addr string) bool
	// Call delivers an encoded request for method to addr where it is
	// served and returns the encoded reply. Errors from the far side are
	// restored (DecodeError) so errors.Is holds for registered sentinels.
	// key, if not empty, is the message's idempotency key.
	Call(ctx context.Context, addr, method string, payload []byte, key string) ([]byte, error)
}

// remoteInvoker is implemented by every MethodOf: the receiving side of a
// remote message.
type remoteInvoker interface {
	deliver(ctx context.Context, rt *Runtime, addr string, payload []byte) ([]byte, error)
}

// ReadOnlyMethod reports whether the method registered under name is
// ReadOnly: running it again cannot change anything, so a router may retry
// it after a timeout even without an idempotency key. False for a name no
// method has.
func ReadOnlyMethod(name string) bool {
	inv, ok := methodNames.Load(name)
	return ok && inv.(invoker).isReadOnly()
}

// Deliver is the receiving side of Remote.Call: it finds method by name,
// decodes payload with the Codec, calls addr in this runtime with TryCall
// semantics (ErrBusy when its inbox is full) under key as its idempotency
// key (if not empty), and returns the encoded reply. Put its error on the
// wire with EncodeError.
//
// An address this runtime does not own (Config.Remote says so) fails with
// ErrNoService rather than being passed on again.
func (rt *Runtime) Deliver(ctx context.Context, addr, method string, payload []byte, key string) ([]byte, error) {
	inv, ok := methodNames.Load(method)
	if !ok {
		return nil, fmt.Errorf("reactor: deliver %s to %s: %w", method, addr, ErrNoMethod)
	}
	ri, ok := inv.(remoteInvoker)
	if !ok {
		return nil, fmt.Errorf("reactor: deliver %s to %s: %w", method, addr, ErrNoMethod)
	}
	if r := rt.cfg.Remote; r != nil && !r.Owns(addr) {
		return nil, fmt.Errorf("reactor: deliver %s: %s not served here: %w", method, addr, ErrNoService)
	}
	if key != "" {
		ctx = WithIdempotencyKey(ctx, key)
	}
	return ri.deliver(ctx, rt, addr, payload)
}

func (m *MethodOf[S, Req, Resp]) deliver(ctx context.Context, rt *Runtime, addr string, payload []byte) ([]byte, error) {
	var req Req
	if err := rt.cfg.Codec.Unmarshal(payload, &req); err != nil {
		return nil, fmt.Errorf("reactor: decode %s request: %w", m.name, err)
	}
	resp, err := m.call(ctx, rt.Ref(addr), req, false)
	if err != nil {
		return nil, err
	}
	b, err := rt.cfg.Codec.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("reactor: encode %s reply: %w", m.name, err)
	}
	return b, nil
}

// EncodeError puts err on the wire: the JSON of ErrorOf(err) (code, id of
// the registered sentinel or type, message, detail). nil encodes as nil.
func EncodeError(err error) []byte {
	if err == nil {
		return nil
	}
	b, jerr := json.Marshal(ErrorOf(err))
	if jerr != nil {
		b, _ = json.Marshal(&Error{Code: CodeOf(err), Message: err.Error()})
	}
	return b
}

// DecodeError restores an error encoded by EncodeError as an *Error that
// unwraps to its registered sentinel or typed value, so errors.Is and
// errors.As hold as on the sending side. Bytes that are not an encoded
// error still give a non-nil error (CodeUnknown), never a panic; empty
// input gives nil.
func DecodeError(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var e Error
	if err := json.Unmarshal(b, &e); err != nil {
		return &Error{Code: CodeUnknown, Message: fmt.Sprintf("reactor: undecodable remote error (%d bytes)", len(b))}
	}
	if e.Message == "" {
		e.Message = "reactor: remote error " + e.Code.String()
	}
	return &e
}

// postRemote sends a message to an address this runtime does not own.
// c is the sending handler, nil from outside.
func (m *MethodOf[S, Req, Resp]) postRemote(ctx context.Context, c *Ctx, to Ref, req Req, e envelope, r Remote) error {
	rt := to.rt
	_, blocking := e.r.(blocker)
	if c != nil && c.replay && blocking {
		return fmt.Errorf("reactor: %s: blocking call from a handler during replay: %w", m.name, ErrDeadlock)
	}
	key := keyFrom(ctx)
	if c != nil && c.meta != nil && key == "" && !m.readOnly {
		c.sends++
		key = c.originKey()
	}
	// A journaled handler's message is owed: until it is delivered, no
	// checkpoint of the sender covers the input that sent it, so a new
	// owner replays that input and sends it again (the key dedups it).
	var owed *service
	if c != nil && c.svc != nil && c.svc.js != nil && key != "" && !blocking && (e.r == nil || !c.replay) {
		owed = c.svc
		owed.holdResend()
	}
	if c != nil && c.replay {
		// A replayed handler's side effect: a send owed to a journaled
		// receiver goes out again (it dedups by key); the rest was done.
		if owed == nil {
			return nil
		}
		rt.resends = append(rt.resends, func() { m.remoteBackground(rt, to.addr, req, key, r, nil, owed) })
		return nil
	}
	payload, err := rt.cfg.Codec.Marshal(req)
	if err != nil {
		if owed != nil {
			owed.releaseResend()
		}
		return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, err)
	}
	switch {
	case blocking:
		resp, err := m.remoteCall(ctx, rt, to.addr, payload, key, r)
		e.r.(completer[Resp]).complete(resp, err)
		return nil
	case e.r == nil && c == nil:
		_, err := m.remoteCall(ctx, rt, to.addr, payload, key, r)
		return err
	}
	var then completer[Resp]
	if e.r != nil {
		then = e.r.(completer[Resp])
	}
	m.remoteBackground(rt, to.addr, req, key, r, then, owed)
	return nil
}

// remoteBackground runs a remote call on a goroutine the runtime waits for
// at Close; then (nil for a send) gets the reply. An owed message (owed is
// its sender) is tried again after ErrBusy, as a local owed send bypasses
// the inbox bound; owed's hold is released once it was delivered, and
// kept if the runtime closes first (the sender is then not checkpointed
// past it).
func (m *MethodOf[S, Req, Resp]) remoteBackground(rt *Runtime, addr string, req Req, key string, r Remote, then completer[Resp], owed *service) {
	rt.remoteWG.Add(1)
	go func() {
		defer rt.remoteWG.Done()
		var resp Resp
		payload, err := rt.cfg.Codec.Marshal(req)
		delay := 10 * time.Millisecond
		for err == nil {
			resp, err = m.remoteCall(rt.ctx, rt, addr, payload, key, r)
			if owed == nil || !errors.Is(err, ErrBusy) {
				break
			}
			select {
			case <-rt.ctx.Done():
			case <-time.After(delay):
				delay = min(2*delay, time.Second)
				continue
			}
			break
		}
		delivered := rt.ctx.Err() == nil
		if then != nil {
			then.complete(resp, err) // a journaled caller journals the reply first
		} else if err != nil {
			rt.log.Warn("reactor: remote send failed", "to", addr, "method", m.name, "err", err)
		}
		if owed != nil && delivered {
			owed.releaseResend()
		}
	}()
}

func (m *MethodOf[S, Req, Resp]) remoteCall(ctx context.Context, rt *Runtime, addr string, payload []byte, key string, r Remote) (Resp, error) {
	var resp Resp
	b, err := r.Call(ctx, addr, m.name, payload, key)
	if err != nil {
		if _, far := err.(*Error); far {
			return resp, err // the far side's message already names method and address
		}
		return resp, fmt.Errorf("reactor: %s to %s: %w", m.name, addr, err)
	}
	if err := rt.cfg.Codec.Unmarshal(b, &resp); err != nil {
		return resp, fmt.Errorf("reactor: decode %s reply from %s: %w", m.name, addr, err)
	}
	return resp, nil
}
