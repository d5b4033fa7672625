package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/internal/failpoint"
	"github.com/reactorgo/reactor/journal"
)

// The journaled-service contract is documented in doc.go ("Journaled
// services"). Implementation notes: a message a journaled handler sends to
// a journaled service is keyed by originKey(input seq, send ordinal), so
// replay can send it again and the receiver drop the duplicate.

// jmeta is what the journal recorded about one message.
type jmeta struct {
	seq  uint64
	time int64
	seed uint64
	key  string
	fp   uint64 // keyed messages: fingerprint of method and payload
	// external: not a journal record but a keyed message to an External
	// service, carrying only key and fp (the handler's clock and seed are
	// its own, recorded per batch run).
	external bool
}

// fingerprint identifies a keyed request by its method and encoded
// payload (FNV-1a), so a key reused for another request is recognised,
// also on replay. Never 0.
func fingerprint(method string, payload []byte) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(method); i++ {
		h = (h ^ uint64(method[i])) * 1099511628211
	}
	h = (h ^ 0xff) * 1099511628211
	for _, b := range payload {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return h | 1
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
	// Messages its handlers sent whose journal write failed and that are
	// being sent again (mu). No checkpoint is written meanwhile.
	resending int
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

// Journal is what the runtime needs of a write-ahead journal. The journal
// package (*journal.Journal, local segment files) is the default; a
// replicated log — a partition's stream in a cluster — implements the same
// contract:
//
//   - Append assigns the next sequence number (contiguous, growing, for
//     the journal's whole life), returns it at once and calls done exactly
//     once, in sequence order, when the record is durable (nil) or can never
//     be (an error). Records are durable in sequence order.
//   - Replay calls fn with every record after the given sequence, in order,
//     and fails on a record it cannot verify rather than pass it on.
//   - Release lets the journal drop records up to and including upTo (a
//     checkpoint covers them); LastSeq is the newest sequence appended.
//   - Stats().Err is non-nil once the journal has failed for good.
type Journal interface {
	Append(ctx context.Context, rec *journal.Record, done func(seq uint64, err error)) (uint64, error)
	Replay(ctx context.Context, after uint64, fn func(*journal.Record) error) error
	Release(upTo uint64) error
	LastSeq() uint64
	Stats() journal.Stats
}

var _ Journal = (*journal.Journal)(nil)

// appendRecord is Journal.Append with the local journal called directly:
// through the interface the record would escape to the heap (one more
// allocation per message).
func (rt *Runtime) appendRecord(ctx context.Context, rec *journal.Record, done func(uint64, error)) (uint64, error) {
	if j, ok := rt.cfg.Journal.(*journal.Journal); ok {
		return j.Append(ctx, rec, done)
	}
	r := *rec // a copy escapes, not the caller's record
	return rt.cfg.Journal.Append(ctx, &r, done)
}

// Journaled makes a service (or every child of a parent) journaled: see
// Config.Journal. ReadOnly methods bypass the journal. Placement options
// (InMemory, Journaled, External): the last one given wins.
func Journaled() Option {
	return func(o *serviceOptions) { o.place, o.store = placeJournal, nil }
}

type idempotencyKey struct{}

// WithIdempotencyKey attaches a client's idempotency key to a call or send
// to a journaled service: a retry with the same key within
// Config.IdempotencyWindow gets the first answer and is not applied again,
// also after a restart. Deferred replies are not remembered.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// WithDeliveryKey is WithIdempotencyKey for keys from a trusted source — a
// broker's message id, a job id, an upstream system's event id — which
// must hold for the whole Config.IdempotencyWindow however many arrive: a
// redelivery within the window is never applied twice. Client keys are
// bounded per scope and per service (so one caller cannot grow the table
// or push others' answers out); delivery keys, like the keys the runtime
// gives messages between journaled services, are pruned by the window
// only — so never pass a key an untrusted client chose, and size the window
// to the redelivery horizon (memory grows with arrival rate × window).
func WithDeliveryKey(ctx context.Context, key string) context.Context {
	return WithIdempotencyKey(ctx, deliveryKeyPrefix+key)
}

// deliveryKeyPrefix marks a delivery key: like the runtime's own keys it
// starts with a NUL byte, which clientKey reads as "not bounded".
const deliveryKeyPrefix = "\x00d"

func keyFrom(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKey{}).(string)
	return k
}

func originKey(seq uint64, n int) string {
	return "\x00o" + strconv.FormatUint(seq, 36) + "." + strconv.Itoa(n)
}

// originKey is the key of the handler's current send (c.sends). In a
// cluster (Config.Remote set) sequence numbers are per partition journal,
// so the key also names the sending service: two partitions' inputs of
// the same seq must not look like one message to a receiver.
func (c *Ctx) originKey() string {
	k := originKey(c.meta.seq, c.sends)
	if c.rt.cfg.Remote != nil && c.svc != nil {
		k += "@" + c.svc.addr()
	}
	return k
}

// postJournaled appends a message for a journaled service and enqueues it
// once durable. A Send from outside waits for durability; a Call waits for
// its reply (which follows durability); sends from handlers do not block
// the turn: replay re-sends them if the crash came first.
// c is the sending handler (post found it already), nil from outside.
func (m *MethodOf[S, Req, Resp]) postJournaled(ctx context.Context, c *Ctx, to Ref, svc *service, req Req, e envelope, wait, force bool, key string) error {
	rt := svc.kind.rt
	internal := c != nil
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
	if key != "" {
		meta.fp = fingerprint(m.name, payload)
	}
	e.meta = meta
	var ack chan error
	if e.r == nil && !internal && !rt.replaying {
		ack = make(chan error, 1)
	}
	// A handler's fire-and-forget send whose write fails is sent again
	// (it carries an origin key, so the receiver drops a duplicate): its
	// cause is durable and applied, so dropping it would lose it until a
	// restart replayed the cause.
	var sender *service
	var resend func(error) // built only for a handler's send: no cost for the others
	if internal && c.svc != nil && c.svc.js != nil && e.r == nil && key != "" {
		sender = c.svc
		resend = func(err error) { m.resendLater(sender, to, req, key, err) }
	}
	rec := journal.Record{Time: meta.time, Seed: meta.seed, Service: svc.addr(), Method: m.name, Key: key, Payload: payload}
	seq, err := rt.appendRecord(ctx, &rec, func(seq uint64, err error) {
		if err != nil {
			if sender != nil {
				sender.holdResend() // before the failure is visible to checkpoint writers
			}
			rt.durable.advance(seq, false)
			svc.unreserve()
			m.fail(&e, fmt.Errorf("reactor: %s to %s not journaled: %w", m.name, to.addr, err))
			if ack != nil {
				ack <- err
			}
			if resend != nil {
				resend(err)
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
	if e.meta == nil || e.meta.key == "" {
		return false
	}
	t, now := c.svc.replyTable(c, e.meta)
	if t == nil {
		return false
	}
	r, ok := t.get(e.meta.key, now, c.rt.cfg.IdempotencyWindow)
	if !ok {
		return false
	}
	if r.Fp != 0 && e.meta.fp != 0 && r.Fp != e.meta.fp {
		// The key's first request was another one: refuse this one, apply
		// nothing, and keep remembering the first answer.
		c.replied = true
		err := fmt.Errorf("reactor: %s to %s, key %q: %w", m.name, c.svc.addr(), e.meta.key, ErrKeyReused)
		if c.out != nil {
			to := *e
			c.out.hold(func() { m.fail(&to, err) }) // once, by the run that commits
			return true
		}
		m.fail(e, err)
		return true
	}
	var resp Resp
	if r.value != nil {
		resp, _ = r.value.(Resp)
	} else if r.Raw != nil {
		if err := c.rt.cfg.Codec.Unmarshal(r.Raw, &resp); err != nil {
			c.rt.log.Error("reactor: remembered reply undecodable", "service", c.svc.addr(), "err", err)
		}
	}
	err := r.err()
	c.replied = true
	if e.r != nil {
		if c.out != nil {
			// External batch: a re-run after a conflict answers again, so
			// only the committed run's answer leaves.
			to := e.r.(completer[Resp])
			c.out.hold(func() { to.complete(resp, err) })
			return true
		}
		e.r.(completer[Resp]).complete(resp, err)
	}
	return true
}

func (m *MethodOf[S, Req, Resp]) rememberReply(c *Ctx, e *envelope, resp Resp, err error) {
	// Checked here, before resp is boxed: most messages carry no key.
	if e.meta == nil || e.meta.key == "" {
		return
	}
	if js := c.svc.js; js != nil {
		js.remember(e.meta, resp, err, c.rt.cfg.IdempotencyWindow)
	} else if x := c.svc.ext; x != nil && e.meta.external {
		x.remember(c, e.meta, resp, err)
	}
}

// replyTable returns the remembered answers of the service c runs on and
// the time a keyed message is looked up at: the journal's time for a
// journaled message, the handler's (recorded per run) for an External one.
func (s *service) replyTable(c *Ctx, meta *jmeta) (*replyTable, int64) {
	switch {
	case s.js != nil:
		return s.js.replies, meta.time
	case s.ext != nil && meta.external:
		return s.ext.replies, c.Now().UnixNano()
	}
	return nil, 0
}

// remember keeps the answer to a keyed message for the idempotency window.
func (js *jstate) remember(meta *jmeta, resp any, err error, window time.Duration) {
	if meta == nil || meta.key == "" {
		return
	}
	if js.replies == nil {
		js.replies = newReplyTable(0)
	}
	r := &savedReply{Key: meta.key, At: meta.time, Fp: meta.fp, value: resp, errValue: err}
	if err != nil {
		r.Fail = ErrorOf(err)
	}
	js.replies.put(r, window)
}

// outcomeMethod marks a journal record that settles an earlier input whose
// handler panicked: replay answers that input with the recorded error
// instead of running the handler again. The record's key is the input's
// sequence number.
const outcomeMethod = "reactor.outcome"

// recordOutcome makes a panicked journaled input final: its error is
// remembered for its idempotency key and journaled as an outcome record, and
// the service is checkpointed at the end of the turn, so that recovery
// starts from the state the panic left rather than replaying it. (During
// replay the record is appended once replay is done.)
func (s *service) recordOutcome(c *Ctx, e *envelope, err error) {
	js, rt := s.js, s.kind.rt
	if js == nil || e.meta == nil || e.meta.seq == 0 {
		return
	}
	if _, continuation := e.m.(replayedReply); continuation {
		return // a continuation's input is its call's reply: replayed as is
	}
	js.remember(e.meta, nil, err, rt.cfg.IdempotencyWindow)
	payload, jerr := json.Marshal(ErrorOf(err))
	if jerr != nil {
		rt.log.Error("reactor: outcome of a panicked input not recorded", "service", s.addr(), "seq", e.meta.seq, "err", jerr)
		return
	}
	rec := &journal.Record{Time: e.meta.time, Service: s.addr(), Method: outcomeMethod, Key: strconv.FormatUint(e.meta.seq, 10), Payload: payload}
	if c.replay {
		rt.outcomes = append(rt.outcomes, rec)
		return
	}
	rt.appendOutcome(rec)
	s.mu.Lock()
	js.checkpoint = true
	s.mu.Unlock()
}

func (rt *Runtime) appendOutcome(rec *journal.Record) {
	_, err := rt.appendRecord(rt.ctx, rec, func(seq uint64, err error) {
		rt.durable.advance(seq, err == nil)
		if err != nil {
			rt.log.Error("reactor: outcome record not journaled", "service", rec.Service, "input", rec.Key, "err", err)
		}
	})
	if err != nil {
		rt.log.Error("reactor: outcome record not journaled", "service", rec.Service, "input", rec.Key, "err", err)
	}
}

// scanOutcomes reads the outcome records after floor: the inputs whose
// handlers panicked, and the errors they answered.
func (rt *Runtime) scanOutcomes(ctx context.Context, floor uint64) (map[uint64]*Error, error) {
	out := map[uint64]*Error{}
	err := rt.cfg.Journal.Replay(ctx, floor, func(rec *journal.Record) error {
		if rec.Method != outcomeMethod {
			return nil
		}
		input, err := strconv.ParseUint(rec.Key, 10, 64)
		if err != nil {
			return fmt.Errorf("reactor: replay seq %d: outcome record names input %q: %w", rec.Seq, rec.Key, err)
		}
		var e Error
		if err := json.Unmarshal(rec.Payload, &e); err != nil {
			return fmt.Errorf("reactor: replay seq %d: outcome of input %d: %w", rec.Seq, input, err)
		}
		out[input] = &e
		return nil
	})
	return out, err
}

// Bounds of the answers one journaled service remembers for client keys
// (WithIdempotencyKey): at most maxClientReplies in all and, for keys of
// the form "scope:rest", at most maxScopeReplies per scope (a caller's
// credentials, say), so one caller flooding keys can neither grow the table
// without bound nor push every other caller's answers out. Beyond a bound
// the oldest answer is forgotten first (a retry of it is then applied
// again). The keys the runtime gives messages between journaled services
// are not bounded: forgetting one could apply a resent message twice; the
// window alone prunes them.
const (
	maxClientReplies = 1024
	maxScopeReplies  = 64
)

// replyTable remembers answers by idempotency key, oldest first. order may
// hold entries already forgotten (m no longer points at them); they are
// skipped and compacted away.
type replyTable struct {
	m       map[string]*savedReply
	order   []*savedReply
	clients int            // live entries with client keys
	scopes  map[string]int // live entries per client-key scope
}

type savedReply struct {
	Key  string          `json:"k"`
	At   int64           `json:"t"`
	Raw  json.RawMessage `json:"r,omitempty"`
	Fp   uint64          `json:"h,omitempty"` // the request's fingerprint; 0 in older checkpoints
	Fail *Error          `json:"f,omitempty"`
	Err  string          `json:"e,omitempty"` // checkpoints before error codes: the text only
	// value and errValue are the answer as the handler gave it, while the
	// service stays in memory.
	value    any
	errValue error
}

// err returns the remembered error: the handler's own while in memory,
// restored to its sentinel or type (errors.Is and errors.As hold) after a
// checkpoint.
func (r *savedReply) err() error {
	switch {
	case r.errValue != nil:
		return r.errValue
	case r.Fail != nil:
		return r.Fail
	case r.Err != "":
		return &Error{Code: CodeUnknown, Message: r.Err}
	}
	return nil
}

func newReplyTable(n int) *replyTable {
	return &replyTable{m: make(map[string]*savedReply, n), scopes: map[string]int{}}
}

// clientKey reports whether key came from WithIdempotencyKey (the
// runtime's own keys start with a NUL byte).
func clientKey(key string) bool { return !strings.HasPrefix(key, "\x00") }

// keyScope returns the scope of a client key "scope:rest", "" if none.
func keyScope(key string) string {
	if i := strings.IndexByte(key, ':'); i > 0 {
		return key[:i]
	}
	return ""
}

func (t *replyTable) live(r *savedReply) bool { return t.m[r.Key] == r }

func (t *replyTable) count(r *savedReply, d int) {
	if !clientKey(r.Key) {
		return
	}
	t.clients += d
	if sc := keyScope(r.Key); sc != "" {
		if t.scopes[sc] += d; t.scopes[sc] <= 0 {
			delete(t.scopes, sc)
		}
	}
}

func (t *replyTable) forget(r *savedReply) {
	if t.live(r) {
		delete(t.m, r.Key)
		t.count(r, -1)
	}
}

func (t *replyTable) get(key string, now int64, window time.Duration) (*savedReply, bool) {
	r, ok := t.m[key]
	if !ok || now-r.At > int64(window) {
		return nil, false
	}
	return r, true
}

// put remembers r, forgetting the answers older than the window before
// r.At and, for a client key, the oldest answers beyond the bounds.
func (t *replyTable) put(r *savedReply, window time.Duration) {
	t.prune(r.At - int64(window))
	if old := t.m[r.Key]; old != nil {
		t.forget(old)
	}
	t.add(r)
	t.bound(r.Key)
}

func (t *replyTable) add(r *savedReply) {
	if t.m[r.Key] != nil {
		t.forget(t.m[r.Key])
	}
	t.order = append(t.order, r)
	t.m[r.Key] = r
	t.count(r, 1)
}

// bound forgets the oldest client answers while key's scope or the table
// is over its bound.
func (t *replyTable) bound(key string) {
	if !clientKey(key) {
		return
	}
	if sc := keyScope(key); sc != "" {
		for i := 0; t.scopes[sc] > maxScopeReplies && i < len(t.order); i++ {
			if r := t.order[i]; t.live(r) && clientKey(r.Key) && keyScope(r.Key) == sc {
				t.forget(r)
			}
		}
	}
	for i := 0; t.clients > maxClientReplies && i < len(t.order); i++ {
		if r := t.order[i]; t.live(r) && clientKey(r.Key) {
			t.forget(r)
		}
	}
	t.compact()
}

// prune forgets the answers given before cut (unix nanoseconds).
func (t *replyTable) prune(cut int64) {
	i := 0
	for i < len(t.order) && t.order[i].At < cut {
		t.forget(t.order[i])
		i++
	}
	if i > 0 {
		t.order = append(t.order[:0:0], t.order[i:]...)
	}
	t.compact()
}

// compact drops forgotten entries from order once they are the majority.
func (t *replyTable) compact() {
	if len(t.order) <= 2*len(t.m)+32 {
		return
	}
	live := make([]*savedReply, 0, len(t.m))
	for _, r := range t.order {
		if t.live(r) {
			live = append(live, r)
		}
	}
	t.order = live
}

// journaledBody is the checkpoint of a journaled service: its state and
// the answers it must still remember.
type journaledBody struct {
	State   []byte        `json:"state"`
	Replies []*savedReply `json:"replies,omitempty"`
	// Now is the clock when the checkpoint was encoded: answers older than
	// twice the idempotency window before it are not kept (0: older
	// checkpoints).
	Now int64 `json:"now,omitempty"`
}

func (s *service) encodeCheckpoint(state []byte) ([]byte, error) {
	if s.js == nil {
		return state, nil
	}
	b := journaledBody{State: state}
	if t := s.js.replies; t != nil {
		// Answers older than twice the window are forgotten here too (not
		// only when a new one is stored), in memory as in the checkpoint, so
		// a table a flood filled does not stay for the service's life. Twice:
		// an input still queued behind the checkpoint may be up to a window
		// late and must find the answer replay will find.
		rt := s.kind.rt
		b.Now = rt.cfg.Clock().UnixNano()
		t.prune(b.Now - 2*int64(rt.cfg.IdempotencyWindow))
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
		// Pruned and bounded as when they were stored (checkpoints written
		// before the bounds existed may hold many more).
		t := newReplyTable(len(b.Replies))
		newest := int64(0)
		for _, r := range b.Replies {
			t.add(r)
			newest = max(newest, r.At)
		}
		w := int64(s.kind.rt.cfg.IdempotencyWindow)
		if b.Now != 0 {
			t.prune(b.Now - 2*w)
		} else {
			t.prune(newest - w)
		}
		for _, r := range b.Replies {
			if t.live(r) {
				t.bound(r.Key)
			}
		}
		s.js.replies = t
	}
	return b.State, nil
}

// resendLater sends again, with backoff, a handler's message whose journal
// write failed, until it is durable or the runtime closes (then the sender
// stays uncheckpointed and replay sends it after the restart).
func (m *MethodOf[S, Req, Resp]) resendLater(sender *service, to Ref, req Req, key string, cause error) {
	rt := sender.kind.rt
	delay := 10 * time.Millisecond
	rt.log.Warn("reactor: a message was not journaled; sending it again", "from", sender.addr(), "to", to.addr, "method", m.name, "err", cause)
	var try func()
	try = func() {
		err := m.post(WithIdempotencyKey(rt.ctx, key), to, req, m.pack(req, nil), false, true)
		switch {
		case err == nil:
			sender.releaseResend()
		case rt.closing.Load():
			rt.log.Warn("reactor: message still not journaled at close; replay will send it", "from", sender.addr(), "to", to.addr, "method", m.name, "err", err)
		default:
			delay = min(2*delay, time.Second)
			rt.cfg.Timers.AfterFunc(delay, try)
		}
	}
	rt.cfg.Timers.AfterFunc(delay, try)
}

func (s *service) holdResend() {
	s.mu.Lock()
	s.js.resending++
	s.mu.Unlock()
}

func (s *service) releaseResend() {
	s.mu.Lock()
	s.js.resending--
	s.mu.Unlock()
}

// checkResends fails a checkpoint of s while a message it sent is being
// sent again: the input that sent it must stay in the journal until the
// message is. It does not wait (the journal may be down for long, and an
// eviction runs on a worker): the next round tries again.
func (s *service) checkResends() error {
	if s.js == nil {
		return nil
	}
	s.mu.Lock()
	n := s.js.resending
	s.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("reactor: checkpoint of %s: %d message(s) it sent not journaled yet (being sent again)", s.addr(), n)
	}
	return nil
}

// waitOutbound makes a checkpoint wait until every record the service's
// handlers appended is durable: a checkpoint that covers an input must not
// outrun the messages that input sent (nor one being sent again).
func (s *service) waitOutbound(ctx context.Context, outSeq uint64) error {
	err := s.kind.rt.durable.wait(ctx, outSeq)
	// Resends are counted after the wait: a failed record is counted
	// before it is settled, so every failure the wait saw is counted now.
	// (Counted before the wait, a send failing meanwhile was missed once a
	// later record made the wait pass, and the checkpoint covered its cause.)
	if rerr := s.checkResends(); rerr != nil {
		return rerr
	}
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
	outcomes, err := rt.scanOutcomes(ctx, floor)
	if err != nil {
		return err
	}
	began, n := time.Now(), 0
	c := &Ctx{}
	err = j.Replay(ctx, floor, func(rec *journal.Record) error {
		if err := failpoint.Inject(failpoint.Replay, j); err != nil {
			return fmt.Errorf("reactor: replay seq %d: %w", rec.Seq, err)
		}
		if rec.Method == outcomeMethod {
			return nil // read by scanOutcomes
		}
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
		if rec.Key != "" && rec.Method != replyMethod {
			e.meta.fp = fingerprint(rec.Method, rec.Payload)
		}
		if failed := outcomes[rec.Seq]; failed != nil && rec.Method != replyMethod {
			// Its handler panicked when it ran: answer as it did then.
			s.js.applied = max(s.js.applied, rec.Seq)
			s.js.remember(e.meta, nil, failed, rt.cfg.IdempotencyWindow)
			s.js.noteInput(rec.Seq)
			n++
			return nil
		}
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
	for _, rec := range rt.outcomes {
		rt.appendOutcome(rec)
	}
	rt.outcomes = nil

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
// Checkpoint runs a checkpoint round now instead of waiting for
// Config.CheckpointInterval: every modified journaled service is asked to
// checkpoint at the end of its next turn (written off the turn), and the
// journal is released up to what every service has stored. It returns
// without waiting for the writes. Tests and simulations drive rounds with it.
func (rt *Runtime) Checkpoint() { rt.checkpointRound() }

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
	_, err = rt.appendRecord(rt.ctx, &rec, func(seq uint64, err error) {
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
	Fail *Error `json:"f,omitempty"`
	Err  string `json:"e,omitempty"` // journals before error codes: the text only
}

func (a *asyncCall[Resp]) encodeReply(codec Codec) ([]byte, error) {
	raw, err := codec.Marshal(a.resp)
	if err != nil {
		return nil, fmt.Errorf("reactor: encode async reply: %w", err)
	}
	w := wireReply{Resp: raw, Fail: ErrorOf(a.err)}
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
	switch {
	case w.Fail != nil:
		a.err = w.Fail
	case w.Err != "":
		a.err = &Error{Code: CodeUnknown, Message: w.Err}
	}
	return nil
}

func (a *asyncCall[Resp]) decode(Codec, []byte) (envelope, error) {
	return envelope{}, fmt.Errorf("reactor: a continuation is not a method")
}
