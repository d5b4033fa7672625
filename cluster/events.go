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
// stream holds them all, PerAddress deep per address.
//
// Events are notifications, not the durable record (the journal is): a
// publish is not acknowledged, so the events an owner published just before
// it died may be missing (a gap: readers restart from a snapshot), or,
// rarely, be events of commands that never became durable, whose ids the
// next owner issues again. Readers see ids strictly increasing: an id not
// above the last one delivered is dropped.
type Events struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	cluster string
	log     *slog.Logger

	mu      sync.Mutex
	follows map[string]*follow
}

// follow is one address being followed.
type follow struct {
	cc   jetstream.ConsumeContext
	stop bool // guarded by Events.mu
}

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
	return &Events{nc: nc, js: js, stream: st, cluster: cfg.Cluster, log: cfg.Logger, follows: map[string]*follow{}}, nil
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

func decodeEvent(m jetstream.Msg) (reactor.StateEvent, error) {
	id, err := strconv.ParseUint(m.Headers().Get(hdrEventID), 10, 64)
	if err != nil || id == 0 {
		return reactor.StateEvent{}, fmt.Errorf("cluster: event on %s without an id: %w", m.Subject(), ErrCorrupt)
	}
	return reactor.StateEvent{ID: id, Data: m.Data()}, nil
}

// LastEvents returns the newest n events of addr, oldest first, ids
// strictly increasing.
func (e *Events) LastEvents(ctx context.Context, addr string, n int) ([]reactor.StateEvent, error) {
	subj := EventsSubject(e.cluster, addr)
	last, err := e.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: last event of %s: %w", addr, err)
	}
	cons, err := e.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, fmt.Errorf("cluster: read events of %s: %w", addr, err)
	}
	var out []reactor.StateEvent
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, fmt.Errorf("cluster: read events of %s: %w", addr, err)
		}
		got := 0
		done := false
		for m := range batch.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("cluster: read events of %s: %w", addr, err)
			}
			ev, err := decodeEvent(m)
			if err != nil {
				e.log.Error("cluster: event skipped", "addr", addr, "err", err)
			} else if len(out) == 0 || ev.ID > out[len(out)-1].ID {
				out = append(out, ev)
			}
			done = done || meta.Sequence.Stream >= last.Sequence
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("cluster: read events of %s: %w", addr, err)
		}
		if done {
			break
		}
		if got == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("cluster: read events of %s: %w", addr, ctx.Err())
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// Follow delivers every event of addr with an id above after, in order,
// until Unfollow (one follower per address: a second Follow replaces the
// first). deliver runs on one goroutine at a time; an error ends the
// following.
func (e *Events) Follow(addr string, after uint64, deliver func([]reactor.StateEvent, error)) {
	e.Unfollow(addr)
	f := &follow{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := e.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{EventsSubject(e.cluster, addr)}})
	if err != nil {
		deliver(nil, fmt.Errorf("cluster: follow events of %s: %w", addr, err))
		return
	}
	var dmu sync.Mutex // deliveries in order, one at a time
	last := after
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := decodeEvent(m)
		if err != nil {
			e.log.Error("cluster: event skipped", "addr", addr, "err", err)
			return
		}
		dmu.Lock()
		defer dmu.Unlock()
		e.mu.Lock()
		stopped := f.stop
		e.mu.Unlock()
		if stopped || ev.ID <= last {
			return
		}
		last = ev.ID
		deliver([]reactor.StateEvent{ev}, nil)
	})
	if err != nil {
		deliver(nil, fmt.Errorf("cluster: follow events of %s: %w", addr, err))
		return
	}
	e.mu.Lock()
	f.cc = cc
	e.follows[addr] = f
	e.mu.Unlock()
}

// Unfollow stops following addr.
func (e *Events) Unfollow(addr string) {
	e.mu.Lock()
	f := e.follows[addr]
	delete(e.follows, addr)
	if f != nil {
		f.stop = true
	}
	e.mu.Unlock()
	if f != nil {
		go f.cc.Stop() // not on the caller's goroutine: it may be a delivery
	}
}

// Close stops every follower.
func (e *Events) Close() {
	e.mu.Lock()
	fs := e.follows
	e.follows = map[string]*follow{}
	e.mu.Unlock()
	for _, f := range fs {
		f.cc.Stop()
	}
}
