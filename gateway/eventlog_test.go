package gateway_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/reactorgo/reactor/gateway"
)

func ids(es []gateway.Event) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func TestEventLogSince(t *testing.T) {
	l := gateway.NewEventLog(4)
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

func TestEventLogTargeted(t *testing.T) {
	l := gateway.NewEventLog(10)
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
	recv := func(s *gateway.Subscription) []uint64 {
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

func TestEventLogSlowSubscriberDropped(t *testing.T) {
	l := gateway.NewEventLog(100)
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
	if !errors.Is(slow.Err(), gateway.ErrSubscriberTooSlow) {
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

func TestEventLogClose(t *testing.T) {
	l := gateway.NewEventLog(2)
	s := l.Subscribe("", 1)
	l.Close()
	l.Close()
	if _, open := <-s.Events(); open || !errors.Is(s.Err(), gateway.ErrLogClosed) {
		t.Errorf("open=%v err=%v", open, s.Err())
	}
	if id := l.Append("e", nil); id != 0 {
		t.Errorf("Append after Close = %d", id)
	}
	_, s2, ok := l.SubscribeSince("", 0, 1)
	if _, open := <-s2.Events(); !ok || open || !errors.Is(s2.Err(), gateway.ErrLogClosed) {
		t.Errorf("subscribe after close: ok=%v open=%v err=%v", ok, open, s2.Err())
	}
}

// One publisher, many readers resuming and subscribing: every reader sees
// a gapless, ordered sequence (run with -race).
func TestEventLogConcurrent(t *testing.T) {
	const n = 2000
	l := gateway.NewEventLog(64)
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
				check := func(e gateway.Event) {
					if e.ID != last+1 {
						t.Errorf("reader got %d after %d", e.ID, last)
					}
					last = e.ID
				}
				for _, e := range backlog {
					check(e)
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

func TestEventLogFromContinuesIDs(t *testing.T) {
	l := gateway.NewEventLogFrom(4, 41)
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
