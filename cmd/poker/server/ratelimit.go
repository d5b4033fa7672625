package server

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/reactorgo/reactor/gateway"
)

// maxLimiterClients bounds the addresses a limiter tracks; beyond it, new
// addresses are refused until stale ones are swept (an address flood costs
// at most this many small buckets).
const maxLimiterClients = 100_000

// limiter is a token bucket per client address: perMinute tokens a minute,
// up to perMinute saved up.
type limiter struct {
	mu        sync.Mutex
	rate      float64 // tokens per second
	burst     float64
	m         map[netip.Prefix]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(perMinute int) *limiter {
	return &limiter{rate: float64(perMinute) / 60, burst: float64(perMinute), m: map[netip.Prefix]*bucket{}}
}

// clientKey is the address a request is counted against: its peer's IP,
// IPv6 by /64 (one host usually owns a whole /64). X-Forwarded-For is not
// trusted: behind a proxy, limit at the proxy.
func clientKey(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// allow takes a token for key, or says how long until one is there.
func (l *limiter) allow(key netip.Prefix, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for k, b := range l.m {
			if now.Sub(b.at).Seconds()*l.rate+b.tokens >= l.burst {
				delete(l.m, k) // full again: forgetting it changes nothing
			}
		}
		l.lastSweep = now
	}
	b := l.m[key]
	if b == nil {
		if len(l.m) >= maxLimiterClients {
			return false, time.Minute
		}
		b = &bucket{tokens: l.burst, at: now}
		l.m[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// limited answers 429 rate_limited with Retry-After when r's address has
// no token left, and reports whether it did.
func (l *limiter) limited(w http.ResponseWriter, r *http.Request) bool {
	if l == nil {
		return false
	}
	ok, wait := l.allow(clientKey(r), time.Now())
	if ok {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
	gateway.Error(w, http.StatusTooManyRequests, "rate_limited", "too many rooms created from this address; retry later")
	return true
}
