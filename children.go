package reactor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// childOverhead approximates what the runtime spends on one resident child
// besides its state: the service struct and its map entry.
const childOverhead = int64(unsafe.Sizeof(service{})) + 48

// family holds the resident keyed children of one parent address in a map
// and an LRU list (head = most recently used).
type family struct {
	kind *kind
	mu   sync.Mutex
	m    map[string]*service
	head *service
	tail *service
	// bytes is the approximate memory of resident children.
	bytes int64
	// evicting counts children asked to leave and not gone yet, so shed does
	// not ask more than needed.
	evicting int
	// pausedUntil (unix nanoseconds): after a failed eviction save, shedding
	// pauses for a second instead of retrying the failing store in a loop.
	pausedUntil atomic.Int64
}

func newFamily(k *kind) *family {
	return &family{kind: k, m: make(map[string]*service)}
}

func (f *family) baseSize(key string) int64 {
	return childOverhead + int64(len(key)) + int64(f.kind.stateType.Size())
}

// child returns the resident child for key, creating it (unloaded) if needed,
// and marks it most recently used.
func (f *family) child(key string) *service {
	f.mu.Lock()
	s := f.m[key]
	if s == nil {
		s = &service{kind: f.kind, path: f.kind.addr + "/" + key, size: f.baseSize(key)}
		key = s.key() // the map key shares the path's bytes
		switch f.kind.opts.place {
		case placeJournal:
			s.js = &jstate{}
		case placeExternal:
			s.ext = &extState{}
		}
		s.lastUsed = f.kind.rt.coarseNow()
		f.m[key] = s
		f.bytes += s.size
		f.pushFront(s)
	} else if f.head != s {
		f.unlink(s)
		f.pushFront(s)
	}
	over := f.overLocked()
	f.mu.Unlock()
	if over {
		f.shed()
	}
	return s
}

func (f *family) overLocked() bool {
	o := &f.kind.opts
	n := len(f.m) - f.evicting
	return n > o.maxChildren || (o.maxMemory > 0 && f.bytes > o.maxMemory && n > 1)
}

func (f *family) overBudget() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overLocked()
}

// shed asks least recently used idle children to save and leave until the
// family is back within its bounds.
func (f *family) shed() {
	if f.kind.rt.closing.Load() || f.kind.rt.cfg.Timers.Now().UnixNano() < f.pausedUntil.Load() {
		return
	}
	o := &f.kind.opts
	f.mu.Lock()
	var wake []*service
	excessCount := len(f.m) - f.evicting - o.maxChildren
	excessBytes := int64(0)
	if o.maxMemory > 0 {
		excessBytes = f.bytes - o.maxMemory
	}
	for s := f.tail; s != nil && (excessCount > 0 || excessBytes > 0); s = s.prev {
		if f.ask(s) {
			wake = append(wake, s)
			excessCount--
			excessBytes -= s.size
		}
	}
	f.mu.Unlock()
	for _, s := range wake {
		f.kind.rt.activate(s)
	}
}

// expire asks children idle since before now-IdleTimeout to leave.
func (f *family) expire(now int64) {
	d := f.kind.opts.idleTimeout
	if d <= 0 || f.kind.rt.cfg.Timers.Now().UnixNano() < f.pausedUntil.Load() {
		return
	}
	limit := now - int64((d+999_999_999)/1_000_000_000)
	f.mu.Lock()
	var wake []*service
	for s := f.tail; s != nil; s = s.prev {
		if atomic.LoadInt64(&s.lastUsed) > limit {
			continue
		}
		if f.ask(s) {
			wake = append(wake, s)
		}
	}
	f.mu.Unlock()
	for _, s := range wake {
		f.kind.rt.activate(s)
	}
}

// ask marks an idle child for eviction and reports whether it must be
// scheduled for the turn that saves it. f.mu is held.
func (f *family) ask(s *service) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evict || s.dead || s.active != 0 || s.inbox.n != 0 || s.pins != 0 || s.reserved != 0 || s.writingCheckpoint() {
		return false
	}
	s.evict = true
	s.active++
	f.evicting++
	return true
}

// evict runs at the end of a turn of s (so nothing else touches its state):
// it saves s and, if no mail arrived meanwhile, removes it. It reports
// whether s is gone.
func (f *family) evict(s *service) bool {
	rt := f.kind.rt
	err := s.saveNow(context.WithoutCancel(rt.ctx)) // after a checkpoint write in flight
	if err != nil {
		rt.log.Error("reactor: evict: save failed; child stays resident", "service", s.addr(), "err", err)
		f.pausedUntil.Store(rt.cfg.Timers.Now().Add(time.Second).UnixNano())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	f.evicting--
	s.evict = false
	if err != nil || s.inbox.n != 0 || s.pins != 0 || s.reserved != 0 {
		return false
	}
	s.dead = true
	s.active = 0
	s.dropPins()
	s.obj = nil
	delete(f.m, s.key())
	f.unlink(s)
	f.bytes -= s.size
	f.kind.stats.evicted.Add(1)
	return true
}

// resize updates a child's size after a turn, for Sizer states.
func (f *family) resize(s *service) {
	sz, ok := s.obj.(Sizer)
	if !ok {
		return
	}
	n := f.baseSize(s.key()) + int64(sz.SizeHint())
	f.mu.Lock()
	if !s.dead {
		f.bytes += n - s.size
		s.size = n
	}
	f.mu.Unlock()
}

func (f *family) resident() []*service {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*service, 0, len(f.m))
	for _, s := range f.m {
		out = append(out, s)
	}
	return out
}

// depth returns the resident count and the messages queued or in flight.
func (f *family) depth() (resident, queued int) {
	f.mu.Lock()
	resident = len(f.m)
	f.mu.Unlock()
	st := &f.kind.stats
	return resident, int(st.received.Load() - st.handled.Load())
}

func (f *family) pushFront(s *service) {
	s.prev, s.next = nil, f.head
	if f.head != nil {
		f.head.prev = s
	}
	f.head = s
	if f.tail == nil {
		f.tail = s
	}
}

func (f *family) unlink(s *service) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		f.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		f.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// writingCheckpoint reports a checkpoint write of s in flight: its eviction
// would wait for it on a worker, so the family asks again later. s.mu is held.
func (s *service) writingCheckpoint() bool { return s.js != nil && s.js.writing }
