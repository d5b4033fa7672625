// Package eventlog keeps, per topic (a room, a stream), the last N events
// in a ring and fans them out to subscribers, so that a reconnecting client
// resumes from the last id it saw and one too far behind is told to take a
// fresh snapshot instead.
//
// A [Log] is owned by one publisher (typically the service that owns the
// topic, publishing from inside its turn) and read by any number of
// goroutines. Subscribers have bounded buffers: one that falls behind is
// dropped ([ErrSubscriberTooSlow]) and resumes later, so a slow reader never
// blocks the publisher nor grows an unbounded queue. For many long-lived
// readers, [Log.FollowSince] makes a subscriber that reads the log's own
// ring ([Subscription.Next], signalled by [Subscription.Ready]) instead of
// holding a buffered channel.
//
// Nothing here is HTTP: package gateway serves a Log as Server-Sent Events
// (gateway.ServeEvents), and a domain package such as poker publishes to it
// without depending on gateway.
package eventlog

import (
	"sync"
	"sync/atomic"
)

// Event is one entry of a [Log] (served to HTTP clients as one SSE event
// by package gateway).
type Event struct {
	ID   uint64 // assigned by the log, strictly increasing from 1
	Type string // SSE "event:" field, e.g. "vote_cast"
	Data []byte // SSE "data:" payload, usually JSON
	// To, when not empty, restricts the event to subscribers whose key
	// equals To (e.g. a "rejected" event for one member). Others never see
	// it, neither live nor in [Log.Since].
	To string
}

// visibleTo reports whether a subscriber with key may see e.
func (e *Event) visibleTo(key string) bool { return e.To == "" || e.To == key }

// DefaultSubscriberBuffer is the buffer of a subscription created with 0.
const DefaultSubscriberBuffer = 64

// Log keeps the last Capacity events of one topic and fans them out to
// subscribers.
//
// It is built for one publisher (the service that owns the topic calls
// [Log.Append] from its turn) and many readers (HTTP goroutines call
// Since and Subscribe); all methods are safe for concurrent use. Append
// never blocks on a subscriber: each has a bounded buffer and is dropped
// (its channel closed, Err() = [ErrSubscriberTooSlow]) when it is full.
// A single mutex guards the ring and subscriber set and is held only for
// copying and non-blocking channel sends.
type Log struct {
	mu     sync.Mutex
	ring   []Event // grows to capacity, then circular
	cap    int     // capacity
	start  int     // index of the oldest retained event
	n      int     // number of retained events
	last   uint64  // id of the newest event (0: none yet)
	subs   map[*Subscription]struct{}
	closed bool

	bytes    int64   // size of the retained events (see eventSize)
	maxBytes int64   // 0: no byte bound
	budget   *Budget // shared by many logs; nil: none
}

// eventSize approximates what a retained event costs in memory.
func eventSize(e *Event) int64 { return int64(len(e.Data)+len(e.Type)+len(e.To)) + 64 }

// Budget bounds the bytes of the events retained by every log that shares
// it (see [Log.SetBudget]): while the total is over Max, a log that
// appends drops its own oldest events (keeping at least [MinRetained]),
// so the logs that publish the most give way first. Safe for concurrent
// use.
type Budget struct {
	Max   int64
	total atomic.Int64
}

// Used returns the bytes retained now by the logs sharing b.
func (b *Budget) Used() int64 { return b.total.Load() }

// MinRetained is how many events a log keeps however tight the global
// [Budget] is (a per-log byte bound may still drop them).
const MinRetained = 16

// New returns a log that retains the last capacity events
// (minimum 1).
func New(capacity int) *Log {
	if capacity < 1 {
		capacity = 1
	}
	// The ring grows on demand: most topics never fill it.
	return &Log{cap: capacity, subs: make(map[*Subscription]struct{})}
}

// NewFrom returns a log like [New] whose next event gets id
// lastID+1. A publisher whose state is restored after a restart (from a
// checkpoint that recorded the last id it issued) uses it so that ids keep
// increasing across restarts: a client resuming from an id the new log
// cannot bridge is told to take a fresh snapshot instead of being sent
// events under reused ids.
func NewFrom(capacity int, lastID uint64) *Log {
	l := New(capacity)
	l.last = lastID
	return l
}

// SetBudget bounds the retained events by bytes: maxBytes for this log
// (0: no bound; the newest event is always kept), and the shared budget
// (nil: none). Oldest events go first; a follower that had not read them
// is dropped ([ErrSubscriberTooSlow]) and resumes from a snapshot. Call it
// before the first Append.
func (l *Log) SetBudget(maxBytes int64, budget *Budget) {
	l.mu.Lock()
	l.maxBytes, l.budget = maxBytes, budget
	l.mu.Unlock()
}

// evictLocked drops the oldest retained event.
func (l *Log) evictLocked() {
	c := len(l.ring)
	sz := eventSize(&l.ring[l.start])
	l.ring[l.start] = Event{}
	l.start = (l.start + 1) % c
	l.n--
	l.bytes -= sz
	if l.budget != nil {
		l.budget.total.Add(-sz)
	}
}

// Append publishes a broadcast event and returns its id.
func (l *Log) Append(typ string, data []byte) uint64 { return l.AppendTo("", typ, data) }

// AppendTo publishes an event visible only to subscribers with key to
// (everyone when to is ""), and returns its id. data must not be modified
// afterwards. Appending to a closed log returns 0 and does nothing.
func (l *Log) AppendTo(to, typ string, data []byte) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0
	}
	l.last++
	e := Event{ID: l.last, Type: typ, Data: data, To: to}
	switch {
	case l.n < len(l.ring): // a slot freed by the byte bounds
		l.ring[(l.start+l.n)%len(l.ring)] = e
		l.n++
	case l.n < l.cap: // grow (the ring is full: put it in order first)
		if l.start != 0 {
			l.ring = append(l.ring[l.start:], l.ring[:l.start]...)
			l.start = 0
		}
		l.ring = append(l.ring, e)
		l.n++
	default:
		l.bytes -= eventSize(&l.ring[l.start])
		if l.budget != nil {
			l.budget.total.Add(-eventSize(&l.ring[l.start]))
		}
		l.ring[l.start] = e
		l.start = (l.start + 1) % len(l.ring)
	}
	sz := eventSize(&e)
	l.bytes += sz
	if l.budget != nil {
		l.budget.total.Add(sz)
	}
	for l.n > 1 && l.maxBytes > 0 && l.bytes > l.maxBytes {
		l.evictLocked()
	}
	for l.n > MinRetained && l.budget != nil && l.budget.Max > 0 && l.budget.total.Load() > l.budget.Max {
		l.evictLocked()
	}
	for s := range l.subs {
		if s.ready != nil {
			// A follower reads the ring itself; it is dropped once the
			// first event it has not read is evicted.
			if s.cursor+1 < l.last-uint64(l.n)+1 {
				l.dropLocked(s, ErrSubscriberTooSlow)
				continue
			}
			if e.visibleTo(s.key) {
				select {
				case s.ready <- struct{}{}:
				default: // already signalled
				}
				if s.notify != nil {
					s.notify()
				}
			}
			continue
		}
		if !e.visibleTo(s.key) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			l.dropLocked(s, ErrSubscriberTooSlow)
		}
	}
	return e.ID
}

// LastID returns the id of the newest event, 0 if none. A snapshot of the
// topic's state taken in the publisher's turn should carry this id, so that
// a subscriber resumes exactly after it.
func (l *Log) LastID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Since returns the broadcast events after id (targeted events are left
// out; see [Log.SinceFor]). ok is false when the log cannot bridge the
// gap — events after id were already evicted, or id is newer than any
// event this log has issued (e.g. the server restarted) — and the client
// must start again from a fresh snapshot.
func (l *Log) Since(id uint64) (events []Event, ok bool) { return l.SinceFor("", id) }

// SinceFor is like [Log.Since] for the subscriber key: it returns the
// broadcast events after id and those targeted at key, in id order. The
// gap check counts all events, targeted or not.
func (l *Log) SinceFor(key string, id uint64) (events []Event, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sinceLocked(key, id)
}

func (l *Log) sinceLocked(key string, id uint64) ([]Event, bool) {
	if id > l.last {
		return nil, false
	}
	oldest := l.last - uint64(l.n) + 1 // id of the oldest retained event
	if id+1 < oldest {
		return nil, false
	}
	return l.appendSinceLocked(nil, key, id, oldest), true
}

// appendSinceLocked appends the retained events after id visible to key;
// oldest is the id of the oldest retained event, at most id+1.
func (l *Log) appendSinceLocked(out []Event, key string, id, oldest uint64) []Event {
	c := len(l.ring)
	for i := int(id + 1 - oldest); i < l.n; i++ {
		e := l.ring[(l.start+i)%c]
		if e.visibleTo(key) {
			out = append(out, e)
		}
	}
	return out
}

// FollowSince registers a subscriber with key that reads the events after
// id (broadcasts and those targeted at key) straight from the log's ring
// with [Subscription.Next], instead of through a buffered channel: it
// costs a few dozen bytes however many events it is behind, and it is
// dropped ([ErrSubscriberTooSlow]) only when the ring evicts an event
// published after the last one it read. [Subscription.Ready] signals new events. ok is false
// when the gap after id cannot be bridged (see [Log.Since]).
func (l *Log) FollowSince(key string, id uint64) (sub *Subscription, ok bool) {
	s := &Subscription{log: l, key: key, cursor: id, ready: make(chan struct{}, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if id > l.last || id+1 < l.last-uint64(l.n)+1 {
		return nil, false
	}
	if l.closed {
		s.err = ErrClosed
		s.done = true
		close(s.ready)
		return s, true
	}
	l.subs[s] = struct{}{}
	if id < l.last {
		s.ready <- struct{}{} // events are already waiting
	}
	return s, true
}

// Subscribe registers a subscriber with key that receives the events
// appended from now on (broadcasts and those targeted at key), buffering
// at most buffer of them (0 means [DefaultSubscriberBuffer]).
func (l *Log) Subscribe(key string, buffer int) *Subscription {
	_, s, _ := l.subscribe(key, buffer, 0, false)
	return s
}

// SubscribeSince atomically returns the events after id visible to key and
// subscribes to the following ones, so nothing is missed or repeated in
// between. When ok is false the gap cannot be bridged (see
// [Log.Since]) and sub is nil.
func (l *Log) SubscribeSince(key string, id uint64, buffer int) (backlog []Event, sub *Subscription, ok bool) {
	return l.subscribe(key, buffer, id, true)
}

func (l *Log) subscribe(key string, buffer int, id uint64, since bool) ([]Event, *Subscription, bool) {
	if buffer <= 0 {
		buffer = DefaultSubscriberBuffer
	}
	s := &Subscription{log: l, key: key, ch: make(chan Event, buffer)}
	l.mu.Lock()
	defer l.mu.Unlock()
	var backlog []Event
	if since {
		var ok bool
		if backlog, ok = l.sinceLocked(key, id); !ok {
			return nil, nil, false
		}
	}
	if l.closed {
		s.err = ErrClosed
		close(s.ch)
		return backlog, s, true
	}
	l.subs[s] = struct{}{}
	return backlog, s, true
}

func (l *Log) dropLocked(s *Subscription, err error) {
	if _, ok := l.subs[s]; !ok {
		return
	}
	delete(l.subs, s)
	s.err = err
	if s.ready != nil {
		s.done = true
		close(s.ready)
		if s.notify != nil {
			s.notify()
		}
		return
	}
	close(s.ch)
}

// Subscribers returns the number of live subscriptions.
func (l *Log) Subscribers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}

// Close ends every subscription with [ErrClosed]; later appends are
// ignored. Retained events can still be read with Since. Close is
// idempotent.
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for s := range l.subs {
		l.dropLocked(s, ErrClosed)
	}
	if l.budget != nil { // retained events stay readable, but no longer count
		l.budget.total.Add(-l.bytes)
		l.budget = nil
	}
}

// Bytes returns the approximate memory of the retained events.
func (l *Log) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// Subscription receives the events of a [Log]. Its channel is closed
// when the subscriber is dropped (too slow), unsubscribed, or the log is
// closed; Err then tells which.
type Subscription struct {
	log *Log
	key string
	ch  chan Event // Subscribe, SubscribeSince
	err error      // guarded by log.mu

	// FollowSince: the subscriber reads the ring from cursor on.
	ready  chan struct{}
	cursor uint64 // id of the last event read; guarded by log.mu
	done   bool   // ended (ready closed); guarded by log.mu
	notify func() // OnReady; guarded by log.mu
}

// Events returns the channel delivering events in id order (nil for a
// subscription made by [Log.FollowSince], which reads with
// [Subscription.Next]).
func (s *Subscription) Events() <-chan Event { return s.ch }

// Ready returns, for a subscription made by [Log.FollowSince], a
// channel that receives when events may be waiting for [Subscription.Next]
// and is closed when the subscription has ended. Nil otherwise.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// OnReady makes a [Log.FollowSince] subscription call fn whenever it
// signals Ready (an event it may see was appended) and when it ends, and
// once now if events are already waiting or it has ended — so a pool of
// writers can serve many subscribers without a goroutine parked on each
// Ready channel. fn runs with the log's lock held, on the publisher's
// goroutine: it must return at once and must not call the log or the
// subscription (queue the subscriber for a worker, as the poker server's
// stream writers do). It panics for other subscriptions.
func (s *Subscription) OnReady(fn func()) {
	if s.ready == nil {
		panic("eventlog: OnReady on a channel subscription")
	}
	l := s.log
	l.mu.Lock()
	s.notify = fn
	now := s.done || s.cursor < l.last
	l.mu.Unlock()
	if now {
		fn()
	}
}

// Next appends to buf the events a [Log.FollowSince] subscriber has
// not read yet, in id order, and marks them read. A non-nil error means
// the subscription has ended after the returned events:
// [ErrSubscriberTooSlow] (events it had not read were evicted: none are
// returned), [ErrClosed] or [ErrUnsubscribed]. It panics for other
// subscriptions.
func (s *Subscription) Next(buf []Event) ([]Event, error) {
	if s.ready == nil {
		panic("eventlog: Next on a channel subscription")
	}
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.err == ErrSubscriberTooSlow {
		return buf, s.err
	}
	if s.cursor < l.last {
		oldest := l.last - uint64(l.n) + 1
		if s.cursor+1 < oldest {
			if !s.done {
				l.dropLocked(s, ErrSubscriberTooSlow)
			}
			s.err = ErrSubscriberTooSlow
			return buf, s.err
		}
		buf = l.appendSinceLocked(buf, s.key, s.cursor, oldest)
		s.cursor = l.last
	}
	if s.done {
		if s.err == nil {
			return buf, ErrUnsubscribed
		}
		return buf, s.err
	}
	return buf, nil
}

// Key returns the subscriber key given to Subscribe.
func (s *Subscription) Key() string { return s.key }

// Err returns nil while the subscription is live, then why it ended:
// [ErrSubscriberTooSlow], [ErrClosed] or nil after Close.
func (s *Subscription) Err() error {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.err
}

// Close unsubscribes. It is idempotent.
func (s *Subscription) Close() {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	s.log.dropLocked(s, nil)
}
