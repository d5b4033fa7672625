package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// TopicOf is a subscription point of services with state S: subscribers
// hand it a Callback[T] and get back a Cancel; the publisher calls Publish
// from its handlers and every live subscriber's callback runs on that
// subscriber's turn. The subscriber set lives in the publisher's state (a
// Subscribers[T] field), so it is saved, journaled and restored with it.
// Define one per topic with Topic, at package level.
type TopicOf[S, T any] struct {
	// Subscribe adds a callback and answers the Cancel that removes it.
	// Every call style works: Async from a handler, Call from outside.
	Subscribe *MethodOf[S, Callback[T], Cancel]
	cancel    *MethodOf[S, uint64, bool]
	set       func(*S) *Subscribers[T]
}

// Topic defines a topic of services with state S. subscribers returns the
// field of the state that holds the topic's subscribers. It defines two
// methods, name+".subscribe" and name+".cancel": keep name stable.
//
//	type Account struct{ Balance int64; Watchers reactor.Subscribers[int64] }
//	var BalanceWatch = reactor.Topic("account.balance", func(a *Account) *reactor.Subscribers[int64] { return &a.Watchers })
func Topic[S, T any](name string, subscribers func(*S) *Subscribers[T]) *TopicOf[S, T] {
	if subscribers == nil {
		panic("reactor: Topic needs the state's Subscribers field")
	}
	t := &TopicOf[S, T]{set: subscribers}
	t.cancel = Method(name+".cancel", func(s *S, _ *Ctx, id uint64) (bool, error) {
		return t.set(s).remove(id), nil
	})
	t.Subscribe = Method(name+".subscribe", func(s *S, c *Ctx, cb Callback[T]) (Cancel, error) {
		if cb.IsZero() {
			return Cancel{}, fmt.Errorf("reactor: %s.subscribe with a zero Callback: %w", name, ErrNilRequest)
		}
		id := t.set(s).add(cb)
		return Cancel{rt: c.rt, publisher: c.svc.addr(), method: t.cancel.name, id: id}, nil
	})
	return t
}

// Publish invokes every subscriber's callback with v, in subscription
// order, and reports how many accepted it. Call it from a handler of the
// publisher. A subscriber whose callback is gone (ErrCallbackGone, or its
// service no longer exists) is removed; one whose inbox is full misses v
// (Publish never blocks the publisher's turn on a slow subscriber).
//
// For a journaled publisher the removal is a message to itself, journaled
// like any input: a replay, which does not invoke callbacks again, then
// removes exactly the subscribers the live run removed.
func (t *TopicOf[S, T]) Publish(c *Ctx, v T) int {
	if c == nil || c.svc == nil {
		panic("reactor: Publish outside a handler")
	}
	state, ok := c.svc.obj.(*S)
	if !ok {
		panic(fmt.Sprintf("reactor: %s published by %s, which is not a service of its state type", t.cancel.name, c.svc.addr()))
	}
	subs := t.set(state)
	delivered := 0
	for _, id := range subs.ids() {
		err := subs.subs[id].Invoke(c, v)
		switch {
		case err == nil:
			delivered++
		case errors.Is(err, ErrCallbackGone), errors.Is(err, ErrNoService), errors.Is(err, ErrNoMethod):
			t.dropGone(c, subs, id)
		default:
			c.rt.log.Debug("reactor: subscriber missed a value", "publisher", c.svc.addr(), "subscriber", subs.subs[id].owner, "err", err)
		}
	}
	return delivered
}

// dropGone removes a subscriber whose callback is gone. A journaled or
// External publisher sends the removal to itself instead, so that it is
// an input of its own (replayed in place, or committed with a batch): a
// replay does not invoke callbacks and could not tell which were gone. The
// removal's key is its own, not the next origin key of the handler: a
// replayed handler makes no such send, and its later sends must keep the
// keys they had.
func (t *TopicOf[S, T]) dropGone(c *Ctx, subs *Subscribers[T], id uint64) {
	if c.svc.js == nil && c.svc.ext == nil {
		subs.remove(id)
		return
	}
	var ctx context.Context = c
	if c.meta != nil {
		ctx = WithIdempotencyKey(c, originKey(c.meta.seq, 0)+".gone."+strconv.FormatUint(id, 10))
	}
	if err := t.cancel.Send(ctx, c.Self(), id); err != nil {
		c.rt.log.Debug("reactor: gone subscriber not removed yet", "publisher", c.svc.addr(), "err", err)
	}
}

// Subscribers is the set of callbacks subscribed to one topic: a field of
// the publisher's state. Its zero value is empty and ready. It encodes to
// JSON with the state.
type Subscribers[T any] struct {
	next uint64
	subs map[uint64]Callback[T]
}

// Len returns the number of subscribers.
func (s *Subscribers[T]) Len() int { return len(s.subs) }

func (s *Subscribers[T]) add(cb Callback[T]) uint64 {
	s.next++
	if s.subs == nil {
		s.subs = make(map[uint64]Callback[T])
	}
	s.subs[s.next] = cb
	return s.next
}

func (s *Subscribers[T]) remove(id uint64) bool {
	_, ok := s.subs[id]
	delete(s.subs, id)
	return ok
}

// ids returns the subscription ids in order: publishing is deterministic.
func (s *Subscribers[T]) ids() []uint64 { return slices.Sorted(maps.Keys(s.subs)) }

type subscribersWire[T any] struct {
	Next uint64                 `json:"next,string"`
	Subs map[string]Callback[T] `json:"subs,omitempty"`
}

// MarshalJSON encodes the set.
func (s Subscribers[T]) MarshalJSON() ([]byte, error) {
	w := subscribersWire[T]{Next: s.next}
	if len(s.subs) > 0 {
		w.Subs = make(map[string]Callback[T], len(s.subs))
		for id, cb := range s.subs {
			w.Subs[strconv.FormatUint(id, 10)] = cb
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes a set encoded by MarshalJSON.
func (s *Subscribers[T]) UnmarshalJSON(data []byte) error {
	var w subscribersWire[T]
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("reactor: decode subscribers: %w", err)
	}
	out := Subscribers[T]{next: w.Next}
	for key, cb := range w.Subs {
		id, err := strconv.ParseUint(key, 10, 64)
		if err != nil || id == 0 || id > w.Next {
			return fmt.Errorf("reactor: decode subscribers: bad subscription id %q", key)
		}
		if cb.IsZero() {
			return fmt.Errorf("reactor: decode subscribers: subscription %d has no callback", id)
		}
		if out.subs == nil {
			out.subs = make(map[uint64]Callback[T], len(w.Subs))
		}
		out.subs[id] = cb
	}
	*s = out
	return nil
}

// Cancel ends one subscription. It is pinned to the publisher: Cancel runs
// on the publisher's turn (as a message to it, journaled if the publisher
// is), wherever it is called from. It is a small value that encodes to
// JSON, so a subscriber can keep it in its state.
type Cancel struct {
	rt        *Runtime
	publisher string
	method    string
	id        uint64
}

// Cancel asks the publisher to remove the subscription. It does not wait
// for it: a value published before the removal runs may still arrive.
// Canceling twice is harmless.
func (x Cancel) Cancel(ctx context.Context) error {
	if x.method == "" {
		return fmt.Errorf("reactor: cancel of a zero Cancel: %w", ErrNilRequest)
	}
	return sendByName(ctx, x.rt, x.publisher, x.method, x.id)
}

// IsZero reports a Cancel that no subscription returned.
func (x Cancel) IsZero() bool { return x.method == "" }

type cancelWire struct {
	Publisher string `json:"publisher"`
	Method    string `json:"method"`
	ID        uint64 `json:"id,string"`
}

// MarshalJSON encodes the publisher, its cancel method and the subscription.
func (x Cancel) MarshalJSON() ([]byte, error) {
	return json.Marshal(cancelWire{Publisher: x.publisher, Method: x.method, ID: x.id})
}

// UnmarshalJSON decodes a Cancel encoded by MarshalJSON.
func (x *Cancel) UnmarshalJSON(data []byte) error {
	var w cancelWire
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("reactor: decode cancel: %w", err)
	}
	if (w.Method == "") != (w.Publisher == "") || (w.Method == "") != (w.ID == 0) {
		return errors.New("reactor: decode cancel: publisher, method and id go together")
	}
	*x = Cancel{publisher: w.Publisher, method: w.Method, id: w.ID}
	return nil
}
