package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
)

// EventsConfig configures OpenEvents.
type EventsConfig struct {
	// Cluster is the cluster name. Required.
	Cluster string
	// PerAddress is how many events the stream keeps per address, for
	// readers that resume (default 256).
	PerAddress int
	// MaxAge drops events older than this (default 24h; negative: never).
	MaxAge time.Duration
	// Replicas of the stream (3 on a NATS cluster; default 1).
	Replicas int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// EventsStream is the JetStream stream of a cluster's events;
// EventsSubject(cluster, addr) is one address's subject in it.
func EventsStream(cluster string) string { return cluster + "_events" }

// EventsSubject is the subject of addr's events.
func EventsSubject(cluster, addr string) string { return cluster + ".ev." + addrToken(addr) }

// addrToken spells addr as a subject token: readable ("/rooms/x" →
// "rooms/x") when it holds no character NATS treats specially, else
// base64url behind a '~' (which no readable token starts with).
func addrToken(addr string) string {
	plain := len(addr) > 1 && addr[0] == '/'
	for i := 1; plain && i < len(addr); i++ {
		c := addr[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
	}
	if plain {
		return addr[1:]
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(addr))
}

// hdrEventID carries a published event's id.
const hdrEventID = "Reactor-Event-Id"

// Events are the per-address event streams of a cluster, for notifications
// that readers on any node follow (a room's events for its Server-Sent
// Events streams): the owner of an address publishes, any node reads the
// last events of an address and follows what comes after. One JetStream
// stream keeps them all, PerAddress deep per address, for readers that
// start or resume; live events reach a follower through a core NATS
// subscription on the address's subject, so a follower costs the server
// an interest entry, not a consumer, and a node receives the events of the
// addresses it follows only. All of a node's followers share one channel
// and one dispatching goroutine.
//
// Events are notifications, not the durable record (the journal is): a
// publish is not acknowledged, so the events an owner published just before
// it died may be missing (a gap: readers restart from a snapshot), or,
// rarely, be events of commands that never became durable, whose ids the
// next owner issues again. Readers see ids strictly increasing: an id not
// above the last one delivered is dropped.
type Events struct {
	nc      *nats.Conn
	stream  jetstream.Stream
	cluster string
	log     *slog.Logger
	ch      chan *nats.Msg // every follower's subscription delivers here
	done    chan struct{}

	mu      sync.Mutex
	follows map[string]*follow // by subject
	closed  bool
}

// follow is one address being followed.
type follow struct {
	sub     *nats.Subscription
	deliver func([]reactor.StateEvent, error)
	// dmu orders the deliveries: the catch-up in Follow, then the
	// dispatcher's.
	dmu      sync.Mutex
	last     uint64               // dmu: id of the last event delivered
	catching bool                 // Events.mu: live events go to backlog
	backlog  []reactor.StateEvent // Events.mu
	stop     bool                 // Events.mu
}

// eventsBuffer is how many live events wait for the dispatcher; beyond it
// NATS drops them (a slow consumer) and followers see a gap.
const eventsBuffer = 64 << 10

// OpenEvents opens (or creates) the cluster's event stream.
func OpenEvents(ctx context.Context, nc *nats.Conn, cfg EventsConfig) (*Events, error) {
	if err := validName(cfg.Cluster); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, fmt.Errorf("%w: events Conn is nil", ErrInvalidConfig)
	}
	if cfg.PerAddress <= 0 {
		cfg.PerAddress = 256
	}
	switch {
	case cfg.MaxAge == 0:
		cfg.MaxAge = 24 * time.Hour
	case cfg.MaxAge < 0:
		cfg.MaxAge = 0
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: open events: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              EventsStream(cfg.Cluster),
		Description:       "reactor cluster events (notifications)",
		Subjects:          []string{cfg.Cluster + ".ev.>"},
		MaxMsgsPerSubject: int64(cfg.PerAddress),
		MaxAge:            cfg.MaxAge,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open events stream: %w", err)
	}
	e := &Events{nc: nc, stream: st, cluster: cfg.Cluster, log: cfg.Logger,
		ch: make(chan *nats.Msg, eventsBuffer), done: make(chan struct{}), follows: map[string]*follow{}}
	go e.dispatch()
	return e, nil
}

// Publish sends one event of addr. It does not wait: events of one
// publisher arrive in the order published.
func (e *Events) Publish(addr string, ev reactor.StateEvent) {
	msg := nats.NewMsg(EventsSubject(e.cluster, addr))
	msg.Header.Set(hdrEventID, strconv.FormatUint(ev.ID, 10))
	msg.Data = ev.Data
	if err := e.nc.PublishMsg(msg); err != nil {
		e.log.Warn("cluster: event not published", "addr", addr, "id", ev.ID, "err", err)
	}
}

func decodeEvent(subject string, h nats.Header, data []byte) (reactor.StateEvent, error) {
	id, err := strconv.ParseUint(h.Get(hdrEventID), 10, 64)
	if err != nil || id == 0 {
		return reactor.StateEvent{}, fmt.Errorf("cluster: event on %s without an id: %w", subject, ErrCorrupt)
	}
	return reactor.StateEvent{ID: id, Data: data}, nil
}

// history reads the retained events of subj with ids above after, oldest
// first, ids strictly increasing (a message get per event: no consumer).
func (e *Events) history(ctx context.Context, subj string, after uint64) ([]reactor.StateEvent, error) {
	last, err := e.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ev, err := decodeEvent(subj, last.Header, last.Data); err == nil && ev.ID <= after {
		return nil, nil // nothing new: the common case of a follower
	}
	var out []reactor.StateEvent
	for seq := uint64(1); seq <= last.Sequence; {
		m, err := e.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		ev, err := decodeEvent(subj, m.Header, m.Data)
		switch {
		case err != nil:
			e.log.Error("cluster: event skipped", "subject", subj, "seq", m.Sequence, "err", err)
		case ev.ID > after && (len(out) == 0 || ev.ID > out[len(out)-1].ID):
			out = append(out, ev)
		}
		seq = m.Sequence + 1
	}
	return out, nil
}

// LastEvents returns the newest n events of addr, oldest first, ids
// strictly increasing.
func (e *Events) LastEvents(ctx context.Context, addr string, n int) ([]reactor.StateEvent, error) {
	out, err := e.history(ctx, EventsSubject(e.cluster, addr), 0)
	if err != nil {
		return nil, fmt.Errorf("cluster: read events of %s: %w", addr, err)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// Follow delivers every event of addr with an id above after, in order,
// until Unfollow (one follower per address: a second Follow replaces the
// first): first those the stream holds, then the live ones. deliver runs
// on one goroutine at a time and must not block; an error ends the
// following.
func (e *Events) Follow(addr string, after uint64, deliver func([]reactor.StateEvent, error)) {
	e.Unfollow(addr)
	subj := EventsSubject(e.cluster, addr)
	f := &follow{deliver: deliver, last: after, catching: true}
	f.dmu.Lock()
	defer f.dmu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		deliver(nil, fmt.Errorf("cluster: follow events of %s: %w", addr, ErrClosed))
		return
	}
	e.follows[subj] = f
	e.mu.Unlock()
	// Subscribe before reading the stream: what is published meanwhile
	// waits in the backlog, and nothing falls between the two.
	sub, err := e.nc.ChanSubscribe(subj, e.ch)
	if err == nil {
		e.mu.Lock()
		f.sub = sub
		e.mu.Unlock()
		err = e.nc.FlushTimeout(5 * time.Second) // the server has the interest
	}
	var past []reactor.StateEvent
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		past, err = e.history(ctx, subj, after)
		cancel()
	}
	if err != nil {
		e.Unfollow(addr)
		deliver(nil, fmt.Errorf("cluster: follow events of %s: %w", addr, err))
		return
	}
	e.mu.Lock()
	backlog := f.backlog
	f.backlog, f.catching = nil, false
	e.mu.Unlock()
	f.deliverNew(past)
	f.deliverNew(backlog)
	// An event published just before the subscription existed reached no
	// subscriber and may not have been stored yet when the stream was
	// read (JetStream stores after its replicas agree): read the stream
	// again a few times shortly after.
	go func() {
		for _, d := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond} {
			time.Sleep(d)
			if !e.repair(subj, f) {
				return
			}
		}
	}()
}

// repair delivers what the stream holds above f.last; false once f stopped.
func (e *Events) repair(subj string, f *follow) bool {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	e.mu.Lock()
	stopped := f.stop
	e.mu.Unlock()
	if stopped {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	past, err := e.history(ctx, subj, f.last)
	if err != nil {
		e.log.Warn("cluster: events not read again", "subject", subj, "err", err)
		return true
	}
	f.deliverNew(past)
	return true
}

// deliverNew delivers the events above f.last (f.dmu held).
func (f *follow) deliverNew(events []reactor.StateEvent) {
	for _, ev := range events {
		if ev.ID > f.last {
			f.last = ev.ID
			f.deliver([]reactor.StateEvent{ev}, nil)
		}
	}
}

// dispatch hands the live events of every follower to it, in order.
func (e *Events) dispatch() {
	for {
		var msg *nats.Msg
		select {
		case msg = <-e.ch:
		case <-e.done:
			return
		}
		ev, err := decodeEvent(msg.Subject, msg.Header, msg.Data)
		if err != nil {
			e.log.Error("cluster: event skipped", "subject", msg.Subject, "err", err)
			continue
		}
		e.mu.Lock()
		f := e.follows[msg.Subject]
		if f != nil && f.catching {
			f.backlog = append(f.backlog, ev)
			f = nil
		}
		e.mu.Unlock()
		if f == nil {
			continue
		}
		if f.gapBefore(ev.ID) {
			// Events between the last delivered and this one reached no
			// subscription (published just before it existed, or dropped):
			// read them from the stream first.
			e.repair(msg.Subject, f)
		}
		f.dmu.Lock()
		e.mu.Lock()
		stopped := f.stop
		e.mu.Unlock()
		if !stopped {
			f.deliverNew([]reactor.StateEvent{ev})
		}
		f.dmu.Unlock()
	}
}

// gapBefore reports whether events are missing before id.
func (f *follow) gapBefore(id uint64) bool {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	return id > f.last+1
}

// Unfollow stops following addr.
func (e *Events) Unfollow(addr string) {
	subj := EventsSubject(e.cluster, addr)
	e.mu.Lock()
	f := e.follows[subj]
	delete(e.follows, subj)
	e.mu.Unlock()
	e.stop(f)
}

// Close stops every follower.
func (e *Events) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	fs := e.follows
	e.follows = map[string]*follow{}
	e.mu.Unlock()
	for _, f := range fs {
		e.stop(f)
	}
	close(e.done)
}

// stop ends a follower taken out of e.follows (nil: nothing).
func (e *Events) stop(f *follow) {
	if f == nil {
		return
	}
	e.mu.Lock()
	f.stop = true
	sub := f.sub
	e.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}
