package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// heartbeatPhases spreads the keep-alive comments of all streams over the
// interval, so that 10,000 streams do not all write at the same instant.
const heartbeatPhases = 16

// heartbeat drives the keep-alive comments of every event stream from one
// ticker instead of a timer per stream: stream i waits on C(i's phase),
// which is closed (and replaced) once per interval.
type heartbeat struct {
	mu   sync.Mutex
	chs  [heartbeatPhases]chan struct{}
	next atomic.Uint32
	stop chan struct{}
	done chan struct{}
}

func newHeartbeat(interval time.Duration) *heartbeat {
	h := &heartbeat{stop: make(chan struct{}), done: make(chan struct{})}
	for i := range h.chs {
		h.chs[i] = make(chan struct{})
	}
	step := max(interval/heartbeatPhases, time.Millisecond)
	go func() {
		defer close(h.done)
		t := time.NewTicker(step)
		defer t.Stop()
		for k := 0; ; k = (k + 1) % heartbeatPhases {
			select {
			case <-t.C:
			case <-h.stop:
				return
			}
			h.mu.Lock()
			close(h.chs[k])
			h.chs[k] = make(chan struct{})
			h.mu.Unlock()
		}
	}()
	return h
}

// phase returns the phase of a new stream (round robin).
func (h *heartbeat) phase() int { return int(h.next.Add(1) % heartbeatPhases) }

// C returns the channel closed at phase's next beat.
func (h *heartbeat) C(phase int) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.chs[phase]
}

// Stop ends the ticker.
func (h *heartbeat) Stop() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}
