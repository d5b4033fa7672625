package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/journal"
)

// A journaled service (option Journaled) gets its inputs through the
// journal: a modifying message is encoded, appended, and enqueued only once
// the journal reports it durable, so
//
//   - accepted means durable: Call and Send return without error only after
//     the fsync that covers the message;
//   - output commit: a handler runs only on durable inputs, so its replies,
//     sends and published events never get ahead of the journal;
//   - recovery is exact: Start loads each service's checkpoint, replays the
//     records after it in journal order with the recorded Ctx.Now and
//     Ctx.Rand, then calls OnActive.
//
// Messages that journaled handlers send to journaled services carry an
// origin key (the input's sequence number and the send's ordinal). During
// replay those sends are made again and the receiver drops the duplicates by
// key, so a message lost in the crash window is delivered once and a message
// that made it is not applied twice. Async replies to a journaled caller are
// journaled as its inputs too, so its continuations replay in place.

// jmeta is what the journal recorded about one message.
type jmeta struct {
	seq  uint64
	time int64
	seed uint64
	key  string
}

// jstate is the journal bookkeeping of one journaled service.
type jstate struct {
	applied      uint64 // last journaled input applied to the state (turn-owned)
	firstUnsaved uint64 // oldest input enqueued and not covered by a checkpoint (mu)
	lastEnqueued uint64 // newest input enqueued (mu)
	outSeq       uint64 // last record this service's handlers appended (turn-owned)
	replies      *replyTable
	checkpoint   bool // asked to checkpoint on its next turn (mu)
	// Checkpoint writes (mu; see ckpt.go): the newest snapshot waiting for
	// a writer, whether a write is in flight, and a channel closed when it
	// ends (nil while nobody waits).
	pending *saveJob
	writing bool
	idle    chan struct{}
}

// noteInput records a journaled input that the state does not yet cover
// (s.mu held, or no turn running).
func (js *jstate) noteInput(seq uint64) {
	if js.firstUnsaved == 0 {
		js.firstUnsaved = seq
	}
	js.lastEnqueued = max(js.lastEnqueued, seq)
}

const (
	replyMethod = "reactor.reply" // an async reply delivered to a journaled caller
	floorKey    = "/.reactor/journal-floor"
)

// Journaled makes a service (or every child of a parent) journaled: see
// Config.Journal. ReadOnly methods bypass the journal.
func Journaled() Option { return func(o *serviceOptions) { o.journaled = true } }

type idempotencyKey struct{}

// WithIdempotencyKey attaches a client's idempotency key to a call or send
// to a journaled service: a retry with the same key within
// Config.IdempotencyWindow gets the first answer and is not applied again,
// also after a restart. Deferred replies are not remembered.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

func keyFrom(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKey{}).(string)
	return k
}

func originKey(seq uint64, n int) string {
	return "\x00o" + strconv.FormatUint(seq, 36) + "." + strconv.Itoa(n)
}

// postJournaled appends a message for a journaled service and enqueues it
// once durable. A Send from outside waits for durability; a Call waits for
// its reply (which follows durability); sends from handlers do not block
// the turn: replay re-sends them if the crash came first.
func (m *MethodOf[S, Req, Resp]) postJournaled(ctx context.Context, to Ref, svc *service, req Req, e envelope, wait, force bool, key string) error {
	rt := svc.kind.rt
	c, internal := ctx.(*Ctx)
	var boxed any = e.arg // already boxed for the inbox: encode that, not a second copy
	if boxed == nil {
		boxed = req
	}
	payload, err := rt.cfg.Codec.Marshal(boxed)
	if err != nil {
		return fmt.Errorf("reactor: %s to %s: %w", m.name, to.addr, err)
	}
	if rt.replaying || force {
		// Resends after replay (the workers are not running yet) and timer
		// messages take their slot regardless of the capacity.
		svc.mu.Lock()
		if svc.dead {
			svc.mu.Unlock()
			return errRetry
		}
		svc.reserved++
		svc.mu.Unlock()
	} else if err := svc.reserve(ctx, wait); err != nil {
		return err
	}
	meta := &jmeta{time: rt.cfg.Clock().UnixNano(), seed: rt.nextSeed(), key: key}
	e.meta = meta
	var ack chan error
	if e.r == nil && !internal && !rt.replaying {
		ack = make(chan error, 1)
	}
	rec := journal.Record{Time: meta.time, Seed: meta.seed, Service: svc.addr(), Method: m.name, Key: key, Payload: payload}
	seq, err := rt.cfg.Journal.Append(ctx, &rec, func(seq uint64, err error) {
		if err != nil {
			rt.durable.advance(seq, false)
			svc.unreserve()
			m.fail(&e, fmt.Errorf("reactor: %s to %s not journaled: %w", m.name, to.addr, err))
			if ack != nil {
				ack <- err
			}
			return
		}
		meta.seq = seq
		if qerr := svc.enqueue(e, admitReserved); qerr != nil {
			rt.log.Error("reactor: durable message not enqueued", "service", svc.addr(), "seq", seq, "err", qerr)
		}
		rt.durable.advance(seq, true)
		if ack != nil {
			ack <- nil
		}
	})
	if err != nil {
		svc.unreserve()
		return fmt.Errorf("reactor: %s to %s: journal: %w", m.name, to.addr, err)
	}
	if internal && c.svc != nil && c.svc.js != nil {
		c.svc.js.outSeq = max(c.svc.js.outSeq, seq)
	}
	if ack == nil {
		return nil
	}
	select {
	case err := <-ack:
		if err != nil {
			return fmt.Errorf("reactor: %s to %s not journaled: %w", m.name, to.addr, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reactor: %s to %s: outcome unknown (journal write pending): %w", m.name, to.addr, ctx.Err())
	}
}

// decode rebuilds a message from its journal payload.
func (m *MethodOf[S, Req, Resp]) decode(codec Codec, payload []byte) (envelope, error) {
	var req Req
	if err := codec.Unmarshal(payload, &req); err != nil {
		return envelope{}, fmt.Errorf("reactor: decode %s request: %w", m.name, err)
	}
	return m.pack(req, nil), nil
}

// lookupReply answers a message whose idempotency key was seen before.
func (m *MethodOf[S, Req, Resp]) lookupReply(c *Ctx, e *envelope) bool {
	js := c.svc.js
	if js == nil || js.replies == nil || e.meta == nil || e.meta.key == "" {
		return false
	}
	r, ok := js.replies.get(e.meta.key, e.meta.time, c.rt.cfg.IdempotencyWindow)
	if !ok {
		return false
	}
	var resp Resp
	if r.value != nil {
		resp, _ = r.value.(Resp)
	} else if r.Raw != nil {
		if err := c.rt.cfg.Codec.Unmarshal(r.Raw, &resp); err != nil {
			c.rt.log.Error("reactor: remembered reply undecodable", "service", c.svc.addr(), "err", err)
		}
	}
	var err error
	if r.Err != "" {
		err = errors.New(r.Err)
	}
	c.replied = true
	if e.r != nil {
		e.r.(completer[Resp]).complete(resp, err)
	}
	return true
}

func (m *MethodOf[S, Req, Resp]) rememberReply(c *Ctx, e *envelope, resp Resp, err error) {
	js := c.svc.js
	if js == nil || e.meta == nil || e.meta.key == "" {
		return
	}
	if js.replies == nil {
		js.replies = &replyTable{m: make(map[string]*savedReply)}
	}
	r := &savedReply{Key: e.meta.key, At: e.meta.time, value: resp}
	if err != nil {
		r.Err = err.Error()
	}
	js.replies.put(r, c.rt.cfg.IdempotencyWindow)
}

// replyTable remembers answers by idempotency key, oldest first.
type replyTable struct {
	m     map[string]*savedReply
	order []*savedReply
}

type savedReply struct {
	Key   string          `json:"k"`
	At    int64           `json:"t"`
	Raw   json.RawMessage `json:"r,omitempty"`
	Err   string          `json:"e,omitempty"`
	value any
}

func (t *replyTable) get(key string, now int64, window time.Duration) (*savedReply, bool) {
	r, ok := t.m[key]
	if !ok || now-r.At > int64(window) {
		return nil, false
	}
	return r, true
}

func (t *replyTable) put(r *savedReply, window time.Duration) {
	cut := 0
	for cut < len(t.order) && r.At-t.order[cut].At > int64(window) {
		if t.m[t.order[cut].Key] == t.order[cut] {
			delete(t.m, t.order[cut].Key)
		}
		cut++
	}
	t.order = append(t.order[cut:], r)
	t.m[r.Key] = r
}

// journaledBody is the checkpoint of a journaled service: its state and
// the answers it must still remember.
type journaledBody struct {
	State   []byte        `json:"state"`
	Replies []*savedReply `json:"replies,omitempty"`
}

func (s *service) encodeCheckpoint(state []byte) ([]byte, error) {
	if s.js == nil {
		return state, nil
	}
	b := journaledBody{State: state}
	if t := s.js.replies; t != nil {
		for _, r := range t.order {
			if t.m[r.Key] != r {
				continue
			}
			if r.Raw == nil && r.value != nil {
				raw, err := s.kind.rt.cfg.Codec.Marshal(r.value)
				if err != nil {
					return nil, err
				}
				r.Raw = raw
			}
			b.Replies = append(b.Replies, r)
		}
	}
	return json.Marshal(b)
}

// decodeCheckpoint returns the state bytes of a checkpoint and, for a
// journaled service, restores its remembered replies and journal position.
func (s *service) decodeCheckpoint(cp checkpoint.Checkpoint) ([]byte, error) {
	if s.js == nil {
		return cp.Data, nil
	}
	var b journaledBody
	if err := json.Unmarshal(cp.Data, &b); err != nil {
		return nil, fmt.Errorf("reactor: checkpoint of %s: %w", s.addr(), err)
	}
	s.js.applied = cp.Seq
	if len(b.Replies) > 0 {
		s.js.replies = &replyTable{m: make(map[string]*savedReply, len(b.Replies))}
		for _, r := range b.Replies {
			s.js.replies.order = append(s.js.replies.order, r)
			s.js.replies.m[r.Key] = r
		}
	}
	return b.State, nil
}

// waitOutbound makes a checkpoint wait until every record the service's
// handlers appended is durable: a checkpoint that covers an input must not
// outrun the messages that input sent.
func (s *service) waitOutbound(ctx context.Context, outSeq uint64) error {
	err := s.kind.rt.durable.wait(ctx, outSeq)
	if errors.Is(err, errNotDurable) {
		err = fmt.Errorf("reactor: checkpoint of %s: a message it sent was not journaled: %w", s.addr(), err)
		if jerr := s.kind.rt.cfg.Journal.Stats().Err; jerr != nil {
			err = fmt.Errorf("%w (journal failed: %w)", err, jerr)
		}
	}
	return err
}

// replay applies the journal after the recorded floor.
func (rt *Runtime) replay(ctx context.Context) error {
	j := rt.cfg.Journal
	floor := uint64(0)
	cp, err := rt.cfg.Store.Load(ctx, floorKey)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reactor: load journal floor: %w", err)
	default:
		floor = cp.Seq
	}
	began, n := time.Now(), 0
	c := &Ctx{}
	err = j.Replay(ctx, floor, func(rec *journal.Record) error {
		s, err := rt.replayTarget(ctx, rec)
		if errors.Is(err, ErrNoService) {
			// The parent's factory refuses this key: live, the message
			// failed the same way, so replay skips it too.
			rt.log.Warn("reactor: replay: record for a refused child skipped", "seq", rec.Seq, "service", rec.Service)
			return nil
		}
		if err != nil {
			return err
		}
		if rec.Seq <= s.js.applied {
			return nil // covered by the checkpoint
		}
		var e envelope
		if rec.Method == replyMethod {
			p := rt.pending[rec.Key]
			if p == nil {
				return fmt.Errorf("reactor: replay seq %d: reply %q for %s has no pending call (was the service checkpointed with calls in flight?)", rec.Seq, rec.Key, rec.Service)
			}
			delete(rt.pending, rec.Key)
			if err := p.reply.decodeReply(rt.cfg.Codec, rec.Payload); err != nil {
				return fmt.Errorf("reactor: replay seq %d: %w", rec.Seq, err)
			}
			p.reply.settle()
			e = envelope{m: p.reply}
		} else {
			v, ok := methodNames.Load(rec.Method)
			if !ok {
				return fmt.Errorf("reactor: replay seq %d: unknown method %q for %s", rec.Seq, rec.Method, rec.Service)
			}
			e, err = v.(invoker).decode(rt.cfg.Codec, rec.Payload)
			if err != nil {
				return fmt.Errorf("reactor: replay seq %d (%s): %w", rec.Seq, rec.Service, err)
			}
		}
		e.meta = &jmeta{seq: rec.Seq, time: rec.Time, seed: rec.Seed, key: rec.Key}
		c.begin(rt, s)
		c.replay = true
		s.deliver(c, &e)
		c.end()
		c.replay = false
		s.js.noteInput(rec.Seq) // no lock needed: the workers are not running yet
		n++
		return nil
	})
	if err != nil {
		return err
	}
	rt.durable.advance(j.LastSeq(), true) // what recovery read is durable
	if n > 0 {
		rt.log.Info("reactor: journal replayed", "records", n, "after", floor, "took", time.Since(began))
	}
	// Messages the replayed handlers sent, and async calls whose replies
	// never made it to the journal, go out again; journaled receivers drop
	// the ones they already had, by key.
	resends := rt.resends
	for _, p := range rt.pending {
		resends = append(resends, p.resend)
	}
	rt.resends, rt.pending = nil, nil
	for _, resend := range resends {
		resend()
	}

	// Start returns once the resent messages are durable: the senders'
	// next checkpoints cover inputs whose sends only these records carry.
	switch err := rt.durable.wait(ctx, j.LastSeq()); {
	case errors.Is(err, errNotDurable):
		if jerr := j.Stats().Err; jerr != nil {
			err = jerr
		}
		return fmt.Errorf("reactor: resend after replay: %w", err)
	case err != nil:
		return fmt.Errorf("reactor: wait for resent messages: %w", err)
	}
	return nil
}

// pendingCall is an async call made by a replayed handler, waiting for its
// journaled reply.
type pendingCall struct {
	reply  replayedReply
	resend func()
}

// replayedReply is the part of an asyncCall that replay drives.
type replayedReply interface {
	invoker
	decodeReply(codec Codec, payload []byte) error
	settle()
}

// replayTarget resolves a record's service, loading a child from its
// checkpoint (without OnActive: that comes after replay).
func (rt *Runtime) replayTarget(ctx context.Context, rec *journal.Record) (*service, error) {
	s, err := Ref{rt: rt, addr: rec.Service}.resolve()
	if err != nil {
		return nil, fmt.Errorf("reactor: replay seq %d: %w", rec.Seq, err)
	}
	if s.js == nil {
		return nil, fmt.Errorf("reactor: replay seq %d: %s is not journaled", rec.Seq, rec.Service)
	}
	if s.obj == nil {
		c := &Ctx{}
		c.begin(rt, s)
		err := s.load(c, false)
		c.end()
		if err != nil {
			return nil, fmt.Errorf("reactor: replay seq %d: %w", rec.Seq, err)
		}
	}
	return s, nil
}

// checkpointRound asks modified journaled services to checkpoint, then
// releases the journal up to what every service has saved.
func (rt *Runtime) checkpointRound() {
	j := rt.cfg.Journal
	if j == nil {
		return
	}
	// Read durable first: every record at or below it is already counted in
	// some service's firstUnsaved (enqueue happens before the store).
	floor := rt.durable.Load()
	var ask []*service
	for _, s := range rt.all() {
		if s.js == nil {
			continue
		}
		s.mu.Lock()
		if fu := s.js.firstUnsaved; fu != 0 {
			floor = min(floor, fu-1)
			if !s.js.checkpoint && !s.dead {
				s.js.checkpoint = true
				if s.active == 0 {
					s.active++
					ask = append(ask, s)
				}
			}
		}
		s.mu.Unlock()
	}
	for _, s := range ask {
		rt.activate(s)
	}
	ctx := context.WithoutCancel(rt.ctx)
	if err := rt.cfg.Store.Save(ctx, floorKey, checkpoint.Checkpoint{Seq: floor}); err != nil {
		rt.log.Error("reactor: save journal floor", "err", err)
		return
	}
	if err := j.Release(floor); err != nil {
		rt.log.Error("reactor: release journal", "upTo", floor, "err", err)
	}
}

// checkpointTurn runs at the end of a turn of a service asked to
// checkpoint: it encodes the state and hands it to the checkpoint writers
// (ckpt.go), so the turn never waits for the store. Services with async
// calls in flight wait for a later round: a continuation cannot be saved.
func (s *service) checkpointTurn() {
	s.mu.Lock()
	want := s.js != nil && s.js.checkpoint && s.pins == 0
	if want {
		s.js.checkpoint = false
	}
	s.mu.Unlock()
	if !want {
		return
	}
	job, err := s.snapshot()
	if err != nil {
		s.kind.rt.log.Error("reactor: checkpoint failed", "service", s.addr(), "err", err)
		return
	}
	if job != nil {
		s.submit(job)
	}
}

// journalReply journals an async reply for a journaled caller and enqueues
// the continuation once durable.
func (a *asyncCall[Resp]) journalReply() error {
	rt := a.caller.kind.rt
	payload, err := a.encodeReply(rt.cfg.Codec)
	if err != nil {
		return err
	}
	meta := &jmeta{time: rt.cfg.Clock().UnixNano(), seed: rt.nextSeed(), key: a.key}
	rec := journal.Record{Time: meta.time, Seed: meta.seed, Service: a.caller.addr(), Method: replyMethod, Key: a.key, Payload: payload}
	_, err = rt.cfg.Journal.Append(rt.ctx, &rec, func(seq uint64, err error) {
		if err != nil {
			rt.durable.advance(seq, false)
			rt.log.Error("reactor: async reply not journaled; continuation dropped", "service", a.caller.addr(), "err", err)
			return
		}
		meta.seq = seq
		if err := a.caller.enqueue(envelope{m: a, meta: meta}, admitForced); err != nil {
			rt.log.Error("reactor: continuation lost", "service", a.caller.addr(), "err", err)
		}
		rt.durable.advance(seq, true)
	})
	return err
}

type wireReply struct {
	Resp []byte `json:"r,omitempty"`
	Err  string `json:"e,omitempty"`
}

func (a *asyncCall[Resp]) encodeReply(codec Codec) ([]byte, error) {
	raw, err := codec.Marshal(a.resp)
	if err != nil {
		return nil, fmt.Errorf("reactor: encode async reply: %w", err)
	}
	w := wireReply{Resp: raw}
	if a.err != nil {
		w.Err = a.err.Error()
	}
	return json.Marshal(w)
}

func (a *asyncCall[Resp]) decodeReply(codec Codec, payload []byte) error {
	var w wireReply
	if err := json.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("reactor: decode async reply: %w", err)
	}
	if err := codec.Unmarshal(w.Resp, &a.resp); err != nil {
		return fmt.Errorf("reactor: decode async reply: %w", err)
	}
	if w.Err != "" {
		a.err = errors.New(w.Err)
	}
	return nil
}

func (a *asyncCall[Resp]) decode(Codec, []byte) (envelope, error) {
	return envelope{}, fmt.Errorf("reactor: a continuation is not a method")
}
