package reactor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Checkpoint writers.
//
// A periodic checkpoint is encoded on the service's turn (snapshot: the
// state, the journal position it covers, the oldest input still queued)
// and persisted by a small pool of writer goroutines, so a checkpoint
// round never parks a worker on a file write or an fsync. Per service:
//
//   - at most one write is in flight (jstate.writing), so two checkpoints of
//     one service never race to the store and land in the wrong order;
//   - a newer snapshot supersedes one still queued (jstate.pending): it
//     covers at least as much;
//   - the journal bookkeeping (firstUnsaved, hence the journal floor) moves
//     only when a write completed, from what that write stored.
//
// Eviction and Close save on their own goroutine, after the write in
// flight (saveNow), so the newest state is the one the store keeps.

// ckptWriters is the writer pool: a FIFO of services with a queued
// snapshot, drained by a fixed number of goroutines.
type ckptWriters struct {
	rt      *Runtime
	mu      sync.Mutex
	cond    sync.Cond
	queue   ring[*service]
	stopped bool
	wg      sync.WaitGroup
}

const checkpointWriters = 2

func (w *ckptWriters) start(rt *Runtime, n int) {
	w.rt = rt
	w.cond.L = &w.mu
	for range n {
		w.wg.Add(1)
		go w.run()
	}
}

// stop lets the writers finish every queued write, then waits for them.
func (w *ckptWriters) stop() {
	w.mu.Lock()
	w.stopped = true
	w.cond.Broadcast()
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *ckptWriters) push(s *service) {
	w.mu.Lock()
	w.queue.push(s)
	w.cond.Signal()
	w.mu.Unlock()
}

func (w *ckptWriters) run() {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		for w.queue.len() == 0 && !w.stopped {
			w.cond.Wait()
		}
		if w.queue.len() == 0 {
			w.mu.Unlock()
			return
		}
		s := w.queue.pop()
		w.mu.Unlock()
		w.write(s)
	}
}

// write persists s's queued snapshot, unless another goroutine holds the
// service's write slot (it requeues s when done) or nothing is queued.
func (w *ckptWriters) write(s *service) {
	js := s.js
	s.mu.Lock()
	job := js.pending
	if job == nil || js.writing {
		s.mu.Unlock()
		return
	}
	js.pending, js.writing = nil, true
	s.mu.Unlock()
	if err := job.write(context.WithoutCancel(w.rt.ctx)); err != nil {
		w.rt.log.Error("reactor: checkpoint failed", "service", s.addr(), "err", err)
	}
	s.releaseWrite()
}

// submit queues a snapshot for the writers; it never blocks on I/O.
func (s *service) submit(job *saveJob) {
	js := s.js
	s.mu.Lock()
	queued := js.pending != nil || js.writing
	js.pending = job // a newer snapshot supersedes a queued one
	s.mu.Unlock()
	if !queued {
		s.kind.rt.writers.push(s)
	}
}

// releaseWrite ends a write of s: it requeues a snapshot that arrived
// meanwhile and wakes whoever waits for the slot.
func (s *service) releaseWrite() {
	js := s.js
	s.mu.Lock()
	js.writing = false
	again := js.pending != nil
	if js.idle != nil {
		close(js.idle)
		js.idle = nil
	}
	s.mu.Unlock()
	if again {
		s.kind.rt.writers.push(s)
	}
}

// saveNow saves s on the calling goroutine (eviction, Close), ordered after
// any write of s in flight and superseding a queued one — or, for a child
// whose handler called Ctx.Forget, deletes its checkpoint. It runs on the
// service's turn or while no turn can run.
func (s *service) saveNow(ctx context.Context) error {
	s.mu.Lock()
	forget := s.forget
	s.mu.Unlock()
	if forget {
		return s.deleteNow(ctx)
	}
	js := s.js
	if js == nil {
		return s.save(ctx)
	}
	if err := s.lockWhenNotWriting(ctx); err != nil {
		return fmt.Errorf("reactor: save %s: %w", s.addr(), err)
	}
	queued := js.pending
	js.pending, js.writing = nil, true
	s.mu.Unlock()
	defer s.releaseWrite()
	job, err := s.snapshot()
	if err != nil {
		return err // still dirty: the queued snapshot is older than the state
	}
	if job == nil {
		job = queued // not modified since the queued snapshot: that one is current
	}
	if job == nil {
		return nil
	}
	return job.write(ctx)
}

// seqWaiter tracks the journal's completions for the runtime: durable is the
// highest sequence acknowledged durable, settled the highest whose outcome
// (durable or failed) is known; both only grow (the journal calls back in
// sequence order, on one goroutine). Goroutines wait for a sequence without
// polling.
type seqWaiter struct {
	durable atomic.Uint64
	settled atomic.Uint64
	waiting atomic.Int32
	mu      sync.Mutex
	waits   []seqWait
}

type seqWait struct {
	seq uint64
	ch  chan struct{}
}

var errNotDurable = errors.New("reactor: journal record failed")

// Load returns the highest sequence known durable.
func (w *seqWaiter) Load() uint64 { return w.durable.Load() }

// advance records the outcome of the journal record seq (ok: durable).
func (w *seqWaiter) advance(seq uint64, ok bool) {
	if ok {
		raise(&w.durable, seq)
	}
	raise(&w.settled, seq)
	if w.waiting.Load() == 0 {
		return
	}
	w.mu.Lock()
	keep := w.waits[:0]
	for _, x := range w.waits {
		if x.seq <= seq {
			close(x.ch)
			w.waiting.Add(-1)
		} else {
			keep = append(keep, x)
		}
	}
	clear(w.waits[len(keep):])
	w.waits = keep
	w.mu.Unlock()
}

// raise sets v to max(v, x). Start's replay and the journal callbacks of
// messages sent before Start may both advance the waiter.
func raise(v *atomic.Uint64, x uint64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// wait returns once seq is durable, errNotDurable if it failed, or ctx's
// error.
func (w *seqWaiter) wait(ctx context.Context, seq uint64) error {
	for {
		// settled first: advance raises durable before settled, so a
		// record seen settled here has its durable mark visible below. (Read
		// the other way round, a record acknowledged between the two loads
		// looked failed: a spurious "journal record failed" at Start.)
		settled := w.settled.Load()
		if w.durable.Load() >= seq {
			return nil
		}
		if settled >= seq {
			return errNotDurable
		}
		w.mu.Lock()
		ch := make(chan struct{})
		w.waits = append(w.waits, seqWait{seq: seq, ch: ch})
		w.waiting.Add(1)
		if w.settled.Load() >= seq { // settled before we were listed
			w.waits = w.waits[:len(w.waits)-1]
			w.waiting.Add(-1)
			w.mu.Unlock()
			continue
		}
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// deleteNow removes a forgotten child's checkpoint, after any write of it in
// flight and instead of a queued one.
func (s *service) deleteNow(ctx context.Context) error {
	if js := s.js; js != nil {
		if err := s.lockWhenNotWriting(ctx); err != nil {
			return fmt.Errorf("reactor: forget %s: %w", s.addr(), err)
		}
		js.pending = nil
		js.firstUnsaved = 0 // its inputs no longer hold the journal back
		s.mu.Unlock()
	}
	if err := s.kind.rt.cfg.Store.Delete(ctx, s.addr()); err != nil {
		return fmt.Errorf("reactor: forget %s: %w", s.addr(), err)
	}
	s.dirty.Store(false)
	return nil
}

// lockWhenNotWriting waits until no checkpoint write of s is in flight and
// returns with s.mu held (or an error, without it).
func (s *service) lockWhenNotWriting(ctx context.Context) error {
	js := s.js
	s.mu.Lock()
	for js.writing {
		if js.idle == nil {
			js.idle = make(chan struct{})
		}
		idle := js.idle
		s.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("wait for the checkpoint being written: %w", ctx.Err())
		}
		s.mu.Lock()
	}
	return nil
}
