package jobs

import (
	"math"
	"sync"
	"time"
)

// RateLimit limits how fast this process starts jobs of the kind: perSecond
// on average, with bursts of up to burst (at least 1) — a token bucket.
// It is a Define option (on Enqueue it has no effect). The limit is per
// process: the in-process pools and the remote workers served by this
// process (jobshttp) share one bucket per kind; N processes start up to N
// times the rate. A due job of a kind out of tokens stays pending and does
// not hold a worker: the lease passes over it to the other kinds.
func RateLimit(perSecond float64, burst int) Option {
	return func(s *settings) { s.rate, s.burst = perSecond, max(burst, 1) }
}

// bucket is a token bucket on an injected clock (Config.Clock), so tests
// drive it with a fake clock. It is shared by the pools and LeaseWait of
// one Queues, hence the mutex.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

// available is how many jobs may start now.
func (b *bucket) available(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return int(math.Floor(b.tokens))
}

// take spends one token per job started. Two callers sharing the bucket
// may both have seen the last token: the balance goes negative and the
// next tokens come later, so the rate holds on average.
func (b *bucket) take(now time.Time, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens -= float64(n)
}

// wait is how long until one token is available.
func (b *bucket) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 || b.rate <= 0 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// limits is a snapshot of the rate-limited kinds' buckets for one lease:
// the caps to send, the kinds to skip in a peek, and when the first of the
// exhausted kinds has a token again.
type limits struct {
	caps map[string]int
	skip []string
	wake time.Duration
}

// limitsFor computes the caps of the rate-limited kinds for a lease of up
// to free jobs.
func (qs *Queues) limitsFor(now time.Time, free int) limits {
	var l limits
	for kind, b := range qs.buckets {
		n := b.available(now)
		if n >= free {
			continue
		}
		if l.caps == nil {
			l.caps = map[string]int{}
		}
		l.caps[kind] = max(n, 0)
		if n <= 0 {
			l.skip = append(l.skip, kind)
			if w := b.wait(now); l.wake == 0 || w < l.wake {
				l.wake = max(w, time.Millisecond)
			}
		}
	}
	return l
}

// spend takes the tokens of the leased jobs.
func (qs *Queues) spend(now time.Time, leases []Lease) {
	for _, l := range leases {
		if b := qs.buckets[l.Kind]; b != nil {
			b.take(now, 1)
		}
	}
}
