package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/reactorgo/reactor/eventlog"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/poker"
)

// streamWriters serves the detached event streams from a few goroutines
// instead of one parked goroutine per stream. A stream is queued when its
// room's log signals it (eventlog.Subscription.OnReady) or its heartbeat
// is due; a writer takes it, reads what it has not seen (Next) and writes
// it with one write that waits at most streamQuickWrite. A client whose
// socket does not take that in time gets a goroutine of its own (the
// in-handler loop, serveStream) for the rest of its stream, so it never
// holds a writer.
//
// What this saves: a parked stream goroutine cost ~4.6 KiB of stack per
// connected member (8 KiB once a write grew it), the largest item of the
// server's memory per member; and a room's event woke one goroutine per
// member, each doing its own scheduling round trip, where now the writers
// drain the queue in turn (at most one wake-up per writer).
type streamWriters struct {
	s       *Server
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*pooledStream
	head    int
	stopped bool
	// phases holds the streams by heartbeat phase (for the pings), which
	// is also the set of streams the writers own.
	phases   [heartbeatPhases]map[*pooledStream]struct{}
	wg       sync.WaitGroup
	stop     chan struct{}
	handoffs atomic.Int64
}

// streamWriterCount is how many goroutines write the pooled streams. Writes
// to a socket with room in its buffer do not block: a few writers keep
// both cores busy while one waits on a syscall.
const streamWriterCount = 4

// streamQuickWrite is how long a pooled stream's write may wait for the
// client's socket before the stream is handed to a goroutine of its own.
// The deadline also runs while the writer waits for a core, so it is not
// much shorter than a scheduling delay on a busy machine.
var streamQuickWrite = 50 * time.Millisecond // a variable for the tests

// pooledStream states.
const (
	psIdle    int32 = iota // nothing to do
	psQueued               // in the queue
	psRunning              // a writer is serving it
	psRerun                // a writer is serving it and it was signalled again
	psGone                 // handed to its own goroutine, or ended
)

type pooledStream struct {
	w         *streamWriters
	st        *gateway.Stream
	sub       *poker.Subscription
	phase     int
	state     atomic.Int32
	ping      atomic.Bool
	lastWrite atomic.Int64 // unix nanoseconds
}

func newStreamWriters(s *Server) *streamWriters {
	w := &streamWriters{s: s, stop: make(chan struct{})}
	w.cond.L = &w.mu
	for i := range w.phases {
		w.phases[i] = map[*pooledStream]struct{}{}
	}
	for range streamWriterCount {
		w.wg.Add(1)
		go w.run()
	}
	w.wg.Add(1)
	go w.heartbeats()
	return w
}

// serve starts a detached stream: it writes the reconnection delay and the
// snapshot on the calling goroutine (the request's), then hands the stream
// to the writers. It reports false, having closed nothing, when the writers
// have stopped.
func (w *streamWriters) serve(st *gateway.Stream, sub *poker.Subscription) bool {
	if err := st.Retry(2 * time.Second); err != nil {
		st.Close()
		sub.Close()
		return true
	}
	if sub.Snapshot != nil {
		err := st.Send(*sub.Snapshot)
		sub.Snapshot = nil // ~1 KiB a stream would otherwise hold for its lifetime
		if err != nil {
			st.Close()
			sub.Close()
			return true
		}
	}
	p := &pooledStream{w: w, st: st, sub: sub, phase: w.s.beat.phase()}
	p.lastWrite.Store(time.Now().UnixNano())
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	w.phases[p.phase][p] = struct{}{}
	w.mu.Unlock()
	sub.Sub.OnReady(p.notify) // queues p at once if events are waiting
	return true
}

// notify queues p for a writer, or marks it to be served again by the
// writer serving it. It runs under the room log's lock: it only flips
// p's state and appends to the queue.
func (p *pooledStream) notify() {
	for {
		switch st := p.state.Load(); st {
		case psIdle:
			if p.state.CompareAndSwap(psIdle, psQueued) {
				p.w.push(p)
				return
			}
		case psRunning:
			if p.state.CompareAndSwap(psRunning, psRerun) {
				return
			}
		default: // queued, rerun or gone
			return
		}
	}
}

func (w *streamWriters) push(p *pooledStream) {
	w.mu.Lock()
	if !w.stopped {
		w.queue = append(w.queue, p)
		w.cond.Signal()
	}
	w.mu.Unlock()
}

// pop returns the next queued stream, nil once stopped and drained.
func (w *streamWriters) pop() *pooledStream {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head == len(w.queue) {
		if w.stopped {
			return nil
		}
		if w.head > 0 { // empty: reuse the array from its start
			clear(w.queue)
			w.queue, w.head = w.queue[:0], 0
		}
		w.cond.Wait()
	}
	p := w.queue[w.head]
	w.queue[w.head] = nil
	w.head++
	return p
}

func (w *streamWriters) run() {
	defer w.wg.Done()
	for {
		p := w.pop()
		if p == nil {
			return
		}
		if !p.state.CompareAndSwap(psQueued, psRunning) {
			continue // gone meanwhile
		}
		if p.step() {
			continue
		}
		if p.state.CompareAndSwap(psRunning, psIdle) {
			continue
		}
		// Signalled while being served: back of the queue, so that one
		// busy room does not hold a writer.
		if p.state.CompareAndSwap(psRerun, psQueued) {
			w.push(p)
		}
	}
}

// step writes what p's member has not seen yet, or a ping when due. It
// reports true when p left the writers (ended, or handed to a goroutine
// of its own).
func (p *pooledStream) step() bool {
	s := p.w.s
	bp := eventBufs.Get().(*[]eventlog.Event)
	evs, end := p.sub.Sub.Next((*bp)[:0])
	for i, e := range evs {
		if removes(e, p.sub.Member) {
			evs, end = evs[:i+1], errRemoved
			break
		}
	}
	var pending bool
	var err error
	now := time.Now()
	switch {
	case len(evs) > 0:
		pending, err = p.st.SendAllWithin(evs, streamQuickWrite)
		p.lastWrite.Store(now.UnixNano())
	case p.ping.Swap(false) && end == nil && now.Sub(time.Unix(0, p.lastWrite.Load())) >= s.cfg.Heartbeat/2:
		pending, err = p.st.CommentWithin("ping", streamQuickWrite)
		p.lastWrite.Store(now.UnixNano())
	}
	clear(evs)
	*bp = evs[:0]
	eventBufs.Put(bp)
	switch {
	case err != nil || (end != nil && !pending):
		p.finish()
		return true
	case pending:
		p.handOff(end)
		return true
	}
	return false
}

// finish ends p: its connection and subscription are closed.
func (p *pooledStream) finish() {
	p.state.Store(psGone)
	p.w.forget(p)
	p.st.Close()
	p.sub.Close()
}

func (w *streamWriters) forget(p *pooledStream) {
	w.mu.Lock()
	delete(w.phases[p.phase], p)
	w.mu.Unlock()
}

// handOff gives a slow client's stream a goroutine of its own: it sends
// what is pending with the full write timeout, then serves the stream as
// an in-handler stream does. end is why the stream ends after that (nil:
// it goes on).
func (p *pooledStream) handOff(end error) {
	p.state.Store(psGone)
	w := p.w
	w.forget(p)
	w.handoffs.Add(1)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := p.st.Flush(); err != nil || end != nil {
			p.st.Close()
			p.sub.Close()
			return
		}
		w.s.serveStream(p.st, p.sub)
	}()
}

// heartbeats queues, at each beat of the shared heartbeat, the streams of
// that phase that wrote nothing for half an interval.
func (w *streamWriters) heartbeats() {
	defer w.wg.Done()
	var due []*pooledStream
	for k := 0; ; k = (k + 1) % heartbeatPhases {
		select {
		case <-w.s.beat.C(k):
		case <-w.stop:
			return
		}
		idle := time.Now().Add(-w.s.cfg.Heartbeat / 2).UnixNano()
		w.mu.Lock()
		for p := range w.phases[k] {
			if p.lastWrite.Load() <= idle {
				due = append(due, p)
			}
		}
		w.mu.Unlock()
		for _, p := range due {
			p.ping.Store(true)
			p.notify()
		}
		clear(due)
		due = due[:0]
	}
}

// close stops the writers once they have written what is queued, and ends
// every stream they still hold. Streams handed to goroutines of their own
// end with their subscriptions (close the logs first).
func (w *streamWriters) close() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.cond.Broadcast()
	w.mu.Unlock()
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	var left []*pooledStream
	for i := range w.phases {
		for p := range w.phases[i] {
			left = append(left, p)
		}
	}
	w.mu.Unlock()
	for _, p := range left {
		p.finish()
	}
}

// open returns the number of streams the writers hold.
func (w *streamWriters) open() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i := range w.phases {
		n += len(w.phases[i])
	}
	return n
}
