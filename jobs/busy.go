package jobs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/reactorgo/reactor"
)

// BusyError is the error of an Enqueue refused because the queue holds
// MaxDepth jobs. It wraps reactor.ErrBusy (so it is CodeUnavailable, HTTP
// 503) and says when to come back: RetryAfter is the queue's depth divided
// by the rate at which it drained over the last minute (Little's law: the
// time the jobs ahead need to leave), clamped to [1s, RetryAfterMax].
//
// It is a registered reactor error type: it keeps its fields when a reply
// is answered from the idempotency table or replayed.
type BusyError struct {
	Queue    string `json:"queue"`
	Depth    int    `json:"depth"`
	MaxDepth int    `json:"maxDepth"`
	// Drain is the measured drain rate, jobs per second (0: nothing left
	// the queue in the last minute).
	Drain float64 `json:"drain"`
	// Wait is the advised delay before retrying.
	Wait time.Duration `json:"wait"`
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("jobs: queue %q holds %d jobs (MaxDepth %d), draining %.1f/s: retry after %s: %s",
		e.Queue, e.Depth, e.MaxDepth, e.Drain, e.Wait, reactor.ErrBusy)
}

// Unwrap makes errors.Is(err, reactor.ErrBusy) hold.
func (e *BusyError) Unwrap() error { return reactor.ErrBusy }

// RetryAfter is the advised delay before retrying. HTTP layers can find it
// with errors.As(err, &interface{ RetryAfter() time.Duration }) and send it
// as the Retry-After header (see RetryAfterSeconds).
func (e *BusyError) RetryAfter() time.Duration { return e.Wait }

func init() { reactor.RegisterErrorType[*BusyError]("jobs.busy", reactor.CodeUnavailable) }

// RetryAfter returns the delay a refused enqueue advises (an error in err's
// chain with a RetryAfter() method, such as *BusyError), or 0.
func RetryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, for an HTTP
// Retry-After header: at least 1 for any error that wraps reactor.ErrBusy,
// 0 for other errors.
func RetryAfterSeconds(err error) int {
	d := RetryAfter(err)
	if d <= 0 {
		if errors.Is(err, reactor.ErrBusy) {
			return 1
		}
		return 0
	}
	return max(1, int(math.Ceil(d.Seconds())))
}

// busy builds the refusal of an enqueue into a full queue.
func (q *queue) busy(now time.Time) error {
	return &BusyError{Queue: q.Name, Depth: q.Live, MaxDepth: q.cfg.MaxDepth, Drain: q.drained.rate(now), Wait: q.retryAfter(now)}
}

// retryAfter applies Little's law: with L jobs in the queue draining at λ
// per second, a job added now waits about W = L/λ. Clamped to
// [1s, RetryAfterMax]; with nothing drained it is the maximum.
func (q *queue) retryAfter(now time.Time) time.Duration {
	ceil := q.cfg.RetryAfterMax
	if ceil <= 0 {
		ceil = 5 * time.Minute
	}
	rate := q.drained.rate(now)
	if rate <= 0 {
		return ceil
	}
	w := float64(q.Live) / rate * float64(time.Second)
	if w >= float64(ceil) {
		return ceil
	}
	return max(time.Second, time.Duration(w))
}

// meter counts events in one-second buckets over the last minute.
type meter struct {
	start time.Time
	sec   [60]int64
	n     [60]uint32
}

// touch starts the measurement (at the queue's first enqueue), so that a
// rate counts from when there was something to drain.
func (m *meter) touch(now time.Time) {
	if m.start.IsZero() {
		m.start = now
	}
}

func (m *meter) add(now time.Time) {
	m.touch(now)
	s := now.Unix()
	i := int(uint64(s) % 60)
	if m.sec[i] != s {
		m.sec[i], m.n[i] = s, 0
	}
	m.n[i]++
}

// rate is the events per second over the last minute, or since the first
// event if that is more recent (at least one second).
func (m *meter) rate(now time.Time) float64 {
	if m.start.IsZero() {
		return 0
	}
	s := now.Unix()
	var sum uint32
	for i := range m.sec {
		if age := s - m.sec[i]; age >= 0 && age < 60 {
			sum += m.n[i]
		}
	}
	span := min(time.Minute, now.Sub(m.start))
	return float64(sum) / max(span.Seconds(), 1)
}

// latencies keeps the last 1024 run times.
type latencies struct {
	d [1024]time.Duration
	n int // ever added
}

func (l *latencies) add(d time.Duration) {
	l.d[l.n%len(l.d)] = d
	l.n++
}

func (l *latencies) percentile(p float64) time.Duration {
	k := min(l.n, len(l.d))
	if k == 0 {
		return 0
	}
	s := slices.Clone(l.d[:k])
	slices.Sort(s)
	return s[min(k-1, int(p*float64(k)))]
}
