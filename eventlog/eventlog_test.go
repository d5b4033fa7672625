package eventlog_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reactorgo/reactor/eventlog"
)

func ids(es []eventlog.Event) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestLogSince(t *testing.T) {
	l := eventlog.New(4)
	if es, ok := l.Since(0); !ok || len(es) != 0 {
		t.Fatalf("empty log Since(0) = %v, %v", es, ok)
	}
	for i := 1; i <= 6; i++ {
		if id := l.Append("e", []byte(fmt.Sprint(i))); id != uint64(i) {
			t.Fatalf("Append #%d returned id %d", i, id)
		}
	}
	// Retained: 3,4,5,6.
	tests := []struct {
		since uint64
		want  []uint64
		ok    bool
	}{
		{0, nil, false}, {1, nil, false}, {2, []uint64{3, 4, 5, 6}, true},
		{4, []uint64{5, 6}, true}, {6, []uint64{}, true}, {7, nil, false},
	}
	for _, tt := range tests {
		es, ok := l.Since(tt.since)
		if ok != tt.ok || (ok && fmt.Sprint(ids(es)) != fmt.Sprint(tt.want)) {
			t.Errorf("Since(%d) = %v, %v; want %v, %v", tt.since, ids(es), ok, tt.want, tt.ok)
		}
	}
	if l.LastID() != 6 {
		t.Errorf("LastID = %d", l.LastID())
	}
}

func TestLogTargeted(t *testing.T) {
	l := eventlog.New(10)
	ann := l.Subscribe("ann", 10)
	bob := l.Subscribe("bob", 10)
	l.Append("vote_cast", nil)                 // 1
	l.AppendTo("ann", "rejected", []byte("x")) // 2
	l.Append("session_finished", nil)          // 3
	if es, _ := l.Since(0); fmt.Sprint(ids(es)) != "[1 3]" {
		t.Errorf("Since(0) = %v, want broadcasts only", ids(es))
	}
	if es, _ := l.SinceFor("ann", 0); fmt.Sprint(ids(es)) != "[1 2 3]" {
		t.Errorf("SinceFor(ann) = %v", ids(es))
	}
	if es, _ := l.SinceFor("bob", 1); fmt.Sprint(ids(es)) != "[3]" {
		t.Errorf("SinceFor(bob, 1) = %v", ids(es))
	}
	recv := func(s *eventlog.Subscription) []uint64 {
		var out []uint64
		for len(s.Events()) > 0 {
			out = append(out, (<-s.Events()).ID)
		}
		return out
	}
	if got := recv(ann); fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("ann got %v", got)
	}
	if got := recv(bob); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("bob got %v (must not see ann's rejected)", got)
	}
}

func TestLogSlowSubscriberDropped(t *testing.T) {
	l := eventlog.New(100)
	slow := l.Subscribe("slow", 2)
	fast := l.Subscribe("fast", 100)
	for i := 0; i < 5; i++ {
		l.Append("e", nil) // must never block
	}
	var got []uint64
	for e := range slow.Events() { // closed after the buffered ones
		got = append(got, e.ID)
	}
	if fmt.Sprint(got) != "[1 2]" {
		t.Errorf("slow got %v", got)
	}
	if !errors.Is(slow.Err(), eventlog.ErrSubscriberTooSlow) {
		t.Errorf("slow.Err = %v", slow.Err())
	}
	if len(fast.Events()) != 5 || fast.Err() != nil {
		t.Errorf("fast has %d events, err %v", len(fast.Events()), fast.Err())
	}
	if n := l.Subscribers(); n != 1 {
		t.Errorf("Subscribers = %d, want 1", n)
	}
	// It resumes where it stopped.
	backlog, sub, ok := l.SubscribeSince("slow", 2, 10)
	if !ok || fmt.Sprint(ids(backlog)) != "[3 4 5]" {
		t.Fatalf("resume = %v, %v", ids(backlog), ok)
	}
	sub.Close()
	sub.Close()
	if _, open := <-sub.Events(); open || sub.Err() != nil {
		t.Errorf("after Close: open=%v err=%v", open, sub.Err())
	}
}

func TestLogClose(t *testing.T) {
	l := eventlog.New(2)
	s := l.Subscribe("", 1)
	l.Close()
	l.Close()
	if _, open := <-s.Events(); open || !errors.Is(s.Err(), eventlog.ErrClosed) {
		t.Errorf("open=%v err=%v", open, s.Err())
	}
	if id := l.Append("e", nil); id != 0 {
		t.Errorf("Append after Close = %d", id)
	}
	_, s2, ok := l.SubscribeSince("", 0, 1)
	if _, open := <-s2.Events(); !ok || open || !errors.Is(s2.Err(), eventlog.ErrClosed) {
		t.Errorf("subscribe after close: ok=%v open=%v err=%v", ok, open, s2.Err())
	}
}

// One publisher, many readers resuming and subscribing: every reader sees
// a gapless, ordered sequence (run with -race).
func TestLogConcurrent(t *testing.T) {
	const n = 2000
	l := eventlog.New(64)
	var wg sync.WaitGroup
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for last < n {
				backlog, sub, ok := l.SubscribeSince("", last, 16)
				if !ok {
					last = l.LastID() // "fresh snapshot"
					continue
				}
				check := func(e eventlog.Event) {
					if e.ID != last+1 {
						t.Errorf("reader got %d after %d", e.ID, last)
					}
					last = e.ID
				}
				for _, e := range backlog {
					check(e)
				}
				if last == n { // the backlog held the last event: nothing more will come
					sub.Close()
					break
				}
				for e := range sub.Events() {
					check(e)
					if last == n {
						sub.Close()
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		l.Append("e", nil)
	}
	wg.Wait()
}

func TestLogFromContinuesIDs(t *testing.T) {
	l := eventlog.NewFrom(4, 41)
	if got := l.LastID(); got != 41 {
		t.Fatalf("LastID = %d, want 41", got)
	}
	if _, ok := l.Since(40); ok {
		t.Fatal("Since(40) bridged a gap the log never held")
	}
	if ev, ok := l.Since(41); !ok || len(ev) != 0 {
		t.Fatalf("Since(41) = %v, %v; want no events, ok", ev, ok)
	}
	if id := l.Append("x", nil); id != 42 {
		t.Fatalf("first id = %d, want 42", id)
	}
	if ev, ok := l.Since(41); !ok || len(ev) != 1 || ev[0].ID != 42 {
		t.Fatalf("Since(41) = %v, %v", ev, ok)
	}
}

func TestFollowSince(t *testing.T) {
	l := eventlog.New(4)
	l.Append("e", nil)                 // 1
	l.AppendTo("bob", "rejected", nil) // 2
	s, ok := l.FollowSince("ann", 1)
	if !ok {
		t.Fatal("FollowSince(1) not ok")
	}
	if s.Events() != nil {
		t.Error("a follower has an events channel")
	}
	l.Append("e", nil)                 // 3
	l.AppendTo("ann", "rejected", nil) // 4
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	es, err := s.Next(nil)
	if err != nil || fmt.Sprint(ids(es)) != "[3 4]" {
		t.Fatalf("Next = %v, %v; want [3 4] (not bob's 2)", ids(es), err)
	}
	if es, err := s.Next(nil); err != nil || len(es) != 0 {
		t.Fatalf("Next again = %v, %v", ids(es), err)
	}
	l.AppendTo("bob", "rejected", nil) // 5: not for ann, no wake-up
	select {
	case <-s.Ready():
		t.Error("woken for another member's event")
	default:
	}
	if _, ok := l.FollowSince("ann", 0); ok {
		t.Error("FollowSince(0) bridged an evicted gap")
	}
	if _, ok := l.FollowSince("ann", 9); ok {
		t.Error("FollowSince(future id) ok")
	}
	// Falling behind: the ring (4) holds 5..8, then 9 evicts 5, which
	// came after the last event ann read.
	for range 3 {
		l.Append("e", nil) // 6..8
	}
	if l.Subscribers() != 1 {
		t.Fatalf("dropped too early: %d subscribers", l.Subscribers())
	}
	l.Append("e", nil) // 9 evicts 5
	if l.Subscribers() != 0 {
		t.Fatal("a follower behind the ring was not dropped")
	}
	for range s.Ready() { // a pending signal, then closed
	}
	if es, err := s.Next(nil); !errors.Is(err, eventlog.ErrSubscriberTooSlow) || len(es) != 0 {
		t.Fatalf("Next after drop = %v, %v", ids(es), err)
	}
	if !errors.Is(s.Err(), eventlog.ErrSubscriberTooSlow) {
		t.Errorf("Err = %v", s.Err())
	}
}

func TestFollowSinceCloseAndUnsubscribe(t *testing.T) {
	l := eventlog.New(8)
	a, _ := l.FollowSince("", 0)
	b, _ := l.FollowSince("", 0)
	l.Append("e", nil)
	b.Close()
	if es, err := b.Next(nil); !errors.Is(err, eventlog.ErrUnsubscribed) || fmt.Sprint(ids(es)) != "[1]" {
		t.Errorf("Next after Close = %v, %v", ids(es), err)
	}
	if b.Err() != nil {
		t.Errorf("Err after Close = %v", b.Err())
	}
	l.Append("e", nil)
	l.Close()
	// Events published before the log closed are still delivered.
	if es, err := a.Next(nil); !errors.Is(err, eventlog.ErrClosed) || fmt.Sprint(ids(es)) != "[1 2]" {
		t.Errorf("Next after log Close = %v, %v", ids(es), err)
	}
	if c, ok := l.FollowSince("", 2); !ok {
		t.Error("FollowSince on a closed log not ok")
	} else if _, err := c.Next(nil); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Next on closed log = %v", err)
	}
}

// TestFollowConcurrent: a follower reading while a publisher appends sees
// every event exactly once, in order (run with -race).
func TestFollowConcurrent(t *testing.T) {
	l := eventlog.New(1024)
	s, _ := l.FollowSince("", 0)
	const n = 5000
	var got []uint64
	var read atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var buf []eventlog.Event
		for range s.Ready() {
			var err error
			buf, err = s.Next(buf[:0])
			for _, e := range buf {
				got = append(got, e.ID)
			}
			read.Store(uint64(len(got)))
			if err != nil || len(got) == n {
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		l.Append("e", nil)
		if i%512 == 0 {
			for l.LastID()-read.Load() > 512 { // let the reader keep up
				runtime.Gosched()
			}
		}
	}
	<-done
	for i, id := range got {
		if id != uint64(i+1) {
			t.Fatalf("event %d has id %d", i, id)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
}

// TestByteBudgets: a log keeps its events within its own byte bound and,
// with others, within a shared budget; ids and resumption stay right.
func TestByteBudgets(t *testing.T) {
	big := make([]byte, 1000)
	l := eventlog.New(256)
	l.SetBudget(10_000, nil)
	for range 100 {
		l.Append("x", big)
	}
	if b := l.Bytes(); b > 10_000 {
		t.Fatalf("log holds %d bytes, bound 10000", b)
	}
	evs, ok := l.Since(95)
	if !ok || len(evs) != 5 || evs[0].ID != 96 {
		t.Fatalf("since 95: ok=%v %d events", ok, len(evs))
	}
	if _, ok := l.Since(10); ok {
		t.Fatal("resumed across evicted events")
	}

	budget := &eventlog.Budget{Max: 100_000}
	logs := make([]*eventlog.Log, 50)
	for i := range logs {
		logs[i] = eventlog.New(256)
		logs[i].SetBudget(0, budget)
	}
	for range 100 {
		for _, l := range logs {
			l.Append("x", big)
		}
	}
	// Each log keeps at least MinRetained events.
	if max := int64(100_000 + 50*eventlog.MinRetained*1100); budget.Used() > max {
		t.Fatalf("budget used %d, want at most %d", budget.Used(), max)
	}
	for _, l := range logs {
		l.Close()
	}
	if budget.Used() != 0 {
		t.Fatalf("closed logs still count %d bytes", budget.Used())
	}
}

// TestOnReady: a follower's callback runs at registration when events are
// waiting, on every visible append, and when the subscription ends.
func TestOnReady(t *testing.T) {
	l := eventlog.New(16)
	l.Append("a", nil)
	sub, ok := l.FollowSince("k", 0)
	if !ok {
		t.Fatal("FollowSince failed")
	}
	var calls atomic.Int32
	sub.OnReady(func() { calls.Add(1) })
	if calls.Load() != 1 {
		t.Fatalf("%d calls at registration with an event waiting, want 1", calls.Load())
	}
	if evs, err := sub.Next(nil); err != nil || len(evs) != 1 {
		t.Fatalf("Next: %v %v", evs, err)
	}
	l.AppendTo("other", "hidden", nil) // not visible to k: no call
	l.Append("b", nil)
	l.AppendTo("k", "mine", nil)
	if calls.Load() != 3 {
		t.Fatalf("%d calls after two visible appends, want 3", calls.Load())
	}
	l.Close()
	if calls.Load() != 4 {
		t.Fatalf("%d calls after Close, want 4", calls.Load())
	}
	evs, err := sub.Next(nil)
	if len(evs) != 2 || !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Next after Close: %d events, %v", len(evs), err)
	}
	// Registering on an ended subscription calls at once.
	var late atomic.Int32
	sub.OnReady(func() { late.Add(1) })
	if late.Load() != 1 {
		t.Fatal("OnReady on an ended subscription did not call")
	}
}
