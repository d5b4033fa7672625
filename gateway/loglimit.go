package gateway

import (
	"sync"
	"time"
)

// LogLimiter keeps logs readable under attack: it lets one line per key
// through per interval and counts the rest, so the next line that passes
// can say how many were suppressed. Keys are few and fixed (a route and a
// status, a panic site); it holds at most MaxKeys of them. The zero value
// allows one line per key per second.
type LogLimiter struct {
	Every   time.Duration // default 1s
	MaxKeys int           // default 1024; beyond it new keys share one slot

	mu   sync.Mutex
	keys map[string]*limitState
}

type limitState struct {
	next       time.Time
	suppressed int
}

// Allow reports whether a line for key may be logged now, and how many
// lines for key were suppressed since the last one that was.
func (l *LogLimiter) Allow(key string) (ok bool, suppressed int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = make(map[string]*limitState)
	}
	max := l.MaxKeys
	if max <= 0 {
		max = 1024
	}
	st := l.keys[key]
	if st == nil {
		if len(l.keys) >= max {
			key = "\x00overflow"
			st = l.keys[key]
		}
		if st == nil {
			st = &limitState{}
			l.keys[key] = st
		}
	}
	if now.Before(st.next) {
		st.suppressed++
		return false, 0
	}
	every := l.Every
	if every <= 0 {
		every = time.Second
	}
	st.next = now.Add(every)
	suppressed, st.suppressed = st.suppressed, 0
	return true, suppressed
}
