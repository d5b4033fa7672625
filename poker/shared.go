package poker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/eventlog"
)

// Shared rooms: with Options.Shared the rooms are External children kept in
// a store many processes share (state/redis), and any process serves any
// room. What changes, and only here:
//
//   - A room's events are not appended to a local log by its turn: emit
//     collects them (Room.pending) and the runtime writes them with the
//     state, in the same atomic write (reactor.EventProducer,
//     reactor.EventStore), so a stream holds exactly the committed events,
//     numbered by the room's LastEventID like the local log numbers them.
//   - A process with open event streams for a room mirrors the room's
//     stream into a local eventlog.Log (the last EventHistory events, then
//     everything that follows): subscriptions, Last-Event-ID resume and
//     the SSE code are the journal mode's, unchanged.
//   - Existence is the store's: a room created through another process is
//     not in this one's known set, so every well-formed id is asked.

// SharedEvents reads the event streams of shared rooms (state/redis.Store
// with a Follower implements it through SharedStreams).
type SharedEvents interface {
	// LastEvents returns the newest n committed events of addr, oldest first.
	LastEvents(ctx context.Context, addr string, n int) ([]reactor.StateEvent, error)
	// Follow delivers every event of addr after id, in order, until
	// Unfollow; an error ends the following.
	Follow(addr string, after uint64, deliver func([]reactor.StateEvent, error))
	// Unfollow stops following addr.
	Unfollow(addr string)
}

// Shared configures rooms kept in a shared store (see Options.Shared).
type Shared struct {
	Store  reactor.EventStore
	Events SharedEvents
	// Census, if set, bounds the rooms that exist at once to
	// Options.MaxRooms across every process (without it, shared rooms are
	// bounded by their TTL only).
	Census RoomCensus
}

// RoomCensus counts the live rooms of every process (state/redis.Store
// with Options.Census implements it).
type RoomCensus interface {
	// Admit counts addr among the live rooms if fewer than limit are
	// live, atomically across processes; false: as many are live.
	Admit(ctx context.Context, addr string, limit int) (bool, error)
	// Leave stops counting addr (a room whose creation failed).
	Leave(ctx context.Context, addr string) error
}

// wireEvent is a room event in a shared stream.
type wireEvent struct {
	Type string          `json:"t"`
	To   string          `json:"to,omitempty"`
	Data json.RawMessage `json:"d"`
}

// decodeWireEvent reads one event of a shared stream.
func decodeWireEvent(b []byte) (wireEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return wireEvent{}, fmt.Errorf("poker: decode shared event: %w", err)
	}
	if w.Type == "" || !json.Valid(w.Data) {
		return wireEvent{}, fmt.Errorf("poker: decode shared event: %w", errBadEvent)
	}
	return w, nil
}

var errBadEvent = errors.New("no type or no JSON data")

// BeforeBatch drops the events a published room's replay produced: they
// were published when the commands first ran (Options.Publish).
func (r *Room) BeforeBatch(*reactor.Ctx) {
	if r.rooms.opt.Publish != nil {
		r.pending = r.pending[:0]
	}
}

// AfterBatch publishes the batch's events of a published room
// (Options.Publish), in order.
func (r *Room) AfterBatch(*reactor.Ctx) {
	if pub := r.rooms.opt.Publish; pub != nil && len(r.pending) > 0 {
		addr := Address + "/" + r.ID
		for _, ev := range r.pending {
			pub(addr, ev)
		}
		clear(r.pending)
		r.pending = r.pending[:0]
	}
}

// TakeEvents implements reactor.EventProducer (shared rooms).
func (r *Room) TakeEvents() []reactor.StateEvent {
	out := r.pending
	r.pending = nil
	return out
}

// emitShared queues an event for the write of this batch.
func (r *Room) emitShared(to, typ string, data []byte) {
	b, err := json.Marshal(wireEvent{Type: typ, To: to, Data: data})
	if err != nil {
		panic(fmt.Sprintf("poker: encode %s event: %v", typ, err))
	}
	r.pending = append(r.pending, reactor.StateEvent{ID: r.LastEventID, Data: b})
}

// mirror is this process's copy of a shared room's event stream, kept
// while it has subscribers.
type mirror struct {
	room  string
	log   *eventlog.Log
	refs  int           // p.mu
	moved chan struct{} // closed and replaced when events arrive (p.mu)
	dead  bool          // p.mu: the log was closed (gap, room closed, read error)
}

// acquireMirror returns the room's mirror, starting it from the stream's
// last EventHistory events, with one more reference.
func (p *Rooms) acquireMirror(ctx context.Context, room string) (*mirror, error) {
	p.mu.Lock()
	if m := p.mirrors[room]; m != nil && !m.dead {
		m.refs++
		p.mu.Unlock()
		return m, nil
	}
	closed := p.streamsClosed
	p.mu.Unlock()
	if closed {
		return nil, errStreamsClosed
	}
	addr := Address + "/" + room
	tail, err := p.opt.Shared.Events.LastEvents(ctx, addr, p.opt.EventHistory)
	if err != nil {
		return nil, fmt.Errorf("poker: read the events of room %s: %w", room, err)
	}
	start := uint64(0)
	if len(tail) > 0 {
		start = tail[0].ID - 1
	}
	l := eventlog.NewFrom(p.opt.EventHistory, start)
	l.SetBudget(p.opt.EventLogBytes, p.budget)
	m := &mirror{room: room, log: l, refs: 1, moved: make(chan struct{})}
	if !m.append(p, tail) {
		return nil, fmt.Errorf("poker: events of room %s out of step", room)
	}
	last := l.LastID()
	p.mu.Lock()
	if old := p.mirrors[room]; old != nil && !old.dead {
		// Another stream started one meanwhile: use it.
		old.refs++
		p.mu.Unlock()
		l.Close()
		return old, nil
	}
	if p.streamsClosed {
		p.mu.Unlock()
		l.Close()
		return nil, errStreamsClosed
	}
	p.mirrors[room] = m
	p.mu.Unlock()
	p.opt.Shared.Events.Follow(addr, last, func(events []reactor.StateEvent, err error) {
		if err != nil {
			p.log.Warn("poker: room events no longer read", "room", room, "err", err)
			p.killMirror(m)
			return
		}
		if !m.append(p, events) {
			p.log.Warn("poker: room events out of step: streams restart from a snapshot", "room", room)
			p.killMirror(m)
		}
	})
	return m, nil
}

// append adds events to the mirror's log; false when they do not follow
// on (events lost to the stream's trimming): the mirror must go.
func (m *mirror) append(p *Rooms, events []reactor.StateEvent) bool {
	if len(events) == 0 {
		return true
	}
	closed := false
	for _, e := range events {
		w, err := decodeWireEvent(e.Data)
		if err != nil {
			p.log.Error("poker: undecodable room event skipped", "room", m.room, "id", e.ID, "err", err)
			w = wireEvent{Type: "invalid", Data: json.RawMessage(`{}`)}
		}
		if e.ID != m.log.LastID()+1 {
			return false
		}
		m.log.AppendTo(w.To, w.Type, w.Data)
		closed = closed || w.Type == "room_closed"
	}
	p.mu.Lock()
	close(m.moved)
	m.moved = make(chan struct{})
	p.mu.Unlock()
	if closed {
		p.killMirror(m)
	}
	return true
}

// killMirror closes the mirror's log (its streams end; clients reconnect)
// and stops reading the room's stream.
func (p *Rooms) killMirror(m *mirror) {
	p.mu.Lock()
	if m.dead {
		p.mu.Unlock()
		return
	}
	m.dead = true
	if p.mirrors[m.room] == m {
		delete(p.mirrors, m.room)
	}
	p.mu.Unlock()
	p.opt.Shared.Events.Unfollow(Address + "/" + m.room)
	m.log.Close()
}

// releaseMirror drops a reference; the last one stops the mirror.
func (p *Rooms) releaseMirror(m *mirror) {
	p.mu.Lock()
	m.refs--
	last := m.refs <= 0
	p.mu.Unlock()
	if last {
		p.killMirror(m)
	}
}

// mirrorCatchUp waits until the mirror holds event id (a snapshot's), or
// ctx ends, or a few seconds pass.
func (p *Rooms) mirrorCatchUp(ctx context.Context, m *mirror, id uint64) error {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		moved, dead := m.moved, m.dead
		p.mu.Unlock()
		if m.log.LastID() >= id {
			return nil
		}
		if dead {
			return errMirrorGone
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("poker: room %s: the event stream did not reach event %d: %w", m.room, id, reactor.ErrBusy)
		}
	}
}

var (
	errMirrorGone    = errors.New("poker: room event mirror stopped")
	errStreamsClosed = fmt.Errorf("poker: event streams closed: %w", reactor.ErrClosed)
)

// subscribeShared is Subscribe for shared rooms.
func (p *Rooms) subscribeShared(ctx context.Context, room, token, asMember string, lastEventID uint64) (*Subscription, error) {
	for attempt := 0; ; attempt++ {
		s, err := do(ctx, p, snapshotMethod, room, stateQuery{auth: auth{HashToken(token)}, Member: asMember})
		if err != nil {
			return nil, err
		}
		m, err := p.acquireMirror(ctx, room)
		if err != nil {
			return nil, err
		}
		err = p.mirrorCatchUp(ctx, m, s.Event.ID)
		if err == nil {
			if lastEventID > 0 {
				if sub, ok := m.log.FollowSince(s.Member, lastEventID); ok {
					return p.countedShared(room, m, &Subscription{Member: s.Member, Sub: sub})
				}
			}
			if sub, ok := m.log.FollowSince(s.Member, s.Event.ID); ok {
				snap := s.Event
				return p.countedShared(room, m, &Subscription{Member: s.Member, Snapshot: &snap, Sub: sub})
			}
		}
		p.releaseMirror(m)
		if err != nil && !errors.Is(err, errMirrorGone) {
			return nil, err
		}
		if attempt == 2 {
			return nil, errors.New("poker: room events move faster than a snapshot can be taken")
		}
	}
}

// countedShared is counted for a subscription that holds a mirror.
func (p *Rooms) countedShared(room string, m *mirror, sub *Subscription) (*Subscription, error) {
	release, err := p.takeStream(room, sub.Member)
	if err != nil {
		sub.Sub.Close()
		p.releaseMirror(m)
		return nil, err
	}
	sub.release = func() {
		release()
		p.releaseMirror(m)
	}
	return sub, nil
}
