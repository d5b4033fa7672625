package reactor

import (
	"math/rand/v2"
	"sync"
)

// scheduler hands ready services to a fixed set of worker goroutines. A
// service is in the ready queue at most once per turn it has been granted
// (service.active: at most 1, or n for a Workers(n) service; enqueue grants
// a turn only when one is due), so the queue is bounded by the number of
// services with mail. Workers take services in FIFO order; a service drains
// at most one batch per turn and goes to the back of the queue if mail
// remains, so a flood to one service cannot starve the others.
type scheduler struct {
	mu      sync.Mutex
	queue   ring[*service]
	parked  []chan struct{} // workers waiting for work, LIFO (warm caches first)
	closed  bool
	abort   bool       // stop even though services are still queued
	rng     *rand.Rand // non-nil: pick a random ready service (seeded, deterministic mode)
	workers sync.WaitGroup
}

func newScheduler(seed uint64, deterministic bool) *scheduler {
	s := &scheduler{}
	if deterministic {
		s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return s
}

// start launches n workers; stop waits for them.
func (s *scheduler) start(n int) {
	for i := 0; i < n; i++ {
		s.workers.Add(1)
		go s.work()
	}
}

// push makes svc runnable. The caller has counted the turn in svc.active.
func (s *scheduler) push(svc *service) {
	s.mu.Lock()
	s.queue.push(svc)
	if n := len(s.parked); n > 0 {
		w := s.parked[n-1]
		s.parked = s.parked[:n-1]
		s.mu.Unlock()
		w <- struct{}{}
		return
	}
	s.mu.Unlock()
}

func (s *scheduler) next(wake chan struct{}) *service {
	s.mu.Lock()
	for s.queue.len() == 0 || s.abort {
		if s.closed {
			s.mu.Unlock()
			return nil
		}
		s.parked = append(s.parked, wake)
		s.mu.Unlock()
		<-wake
		s.mu.Lock()
	}
	var svc *service
	if s.rng != nil && s.queue.len() > 1 {
		svc = s.queue.removeAt(s.rng.IntN(s.queue.len()))
	} else {
		svc = s.queue.pop()
	}
	s.mu.Unlock()
	return svc
}

func (s *scheduler) work() {
	defer s.workers.Done()
	wake := make(chan struct{}, 1)
	w := &worker{}
	for {
		svc := s.next(wake)
		if svc == nil {
			return
		}
		svc.runTurn(w)
	}
}

// stop lets workers exit once the queue is empty (abort: after their
// current turn) and, if wait, waits for them.
func (s *scheduler) stop(abort, wait bool) {
	s.mu.Lock()
	s.closed = true
	s.abort = abort
	parked := s.parked
	s.parked = nil
	s.mu.Unlock()
	for _, w := range parked {
		w <- struct{}{}
	}
	if wait {
		s.workers.Wait()
	}
}

// ring is a growable FIFO queue. Not safe for concurrent use.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *ring[T]) grow() {
	size := len(r.buf) * 2
	if size == 0 {
		size = 4
	}
	buf := make([]T, size)
	for i := 0; i < r.n; i++ {
		buf[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
	}
	r.buf, r.head = buf, 0
}

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

// popInto moves the n oldest elements to the end of dst, in order, with
// at most two bulk copies and one bulk clear per contiguous run (a turn
// takes a whole batch at once; per-element pops cost a write barrier and a
// cache-line write each).
func (r *ring[T]) popInto(dst []T, n int) []T {
	for n > 0 {
		run := min(n, len(r.buf)-r.head)
		seg := r.buf[r.head : r.head+run]
		dst = append(dst, seg...)
		clear(seg)
		r.head = (r.head + run) & (len(r.buf) - 1)
		r.n -= run
		n -= run
	}
	return dst
}

// removeAt removes the i-th element (0 = oldest), keeping the others in order.
func (r *ring[T]) removeAt(i int) T {
	var zero T
	mask := len(r.buf) - 1
	v := r.buf[(r.head+i)&mask]
	for j := i; j > 0; j-- {
		r.buf[(r.head+j)&mask] = r.buf[(r.head+j-1)&mask]
	}
	r.buf[r.head] = zero
	r.head = (r.head + 1) & mask
	r.n--
	return v
}
