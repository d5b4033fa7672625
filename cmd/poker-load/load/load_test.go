package load_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker-load/load"
)

// TestPoolReusesConnections: 400 POSTs, 8 at a time, over a pool of 8
// keep-alive connections open at most 8 TCP connections (not one per POST).
func TestPoolReusesConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, conns, peak := countingServer(t)
	res, err := load.Post(ctx, load.Config{URL: srv.URL, Conns: 8}, 400, 8, "/x")
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered2xx != 400 {
		t.Fatalf("answered 2xx = %d, want 400", res.Answered2xx)
	}
	// (A connection dialled for a request that got a freed one meanwhile
	// goes to the pool unused: the server may see one the generator's
	// count, which counts connections that carried a request, does not.)
	if c := conns.Load(); c > 8 || res.Conns > c || res.Conns < 1 {
		t.Fatalf("server saw %d connections, generator used %d; want at most 8", c, res.Conns)
	}
	// More POSTs at once than the pool holds: they wait for a connection,
	// the bound holds.
	srv, conns, peak = countingServer(t)
	res, err = load.Post(ctx, load.Config{URL: srv.URL, Conns: 4}, 200, 50, "/x")
	if err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > 4 || res.Answered2xx != 200 || conns.Load() > 4 {
		t.Fatalf("peak %d connections open, %d opened (bound 4), %d answered 2xx", p, conns.Load(), res.Answered2xx)
	}
}

// countingServer answers 202 after 1 ms and counts the connections opened
// and the most open at once.
func countingServer(t *testing.T) (srv *httptest.Server, conns, peak *atomic.Int64) {
	conns, peak = new(atomic.Int64), new(atomic.Int64)
	var open atomic.Int64
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns, peak
}

// TestRetryAfterAccounting: a 503 with Retry-After is retried (after that
// wait, capped) with the same Idempotency-Key and counted; a 503 without
// Retry-After and other statuses are errors, not retried; a command still
// 503 after Retries retries is given up and counted.
func TestRetryAfterAccounting(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{} // Idempotency-Key → attempts
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		seen[key]++
		n := seen[key]
		mu.Unlock()
		switch r.URL.Path {
		case "/busy-twice": // 503 twice, then accepted
			if n <= 2 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		case "/always-busy":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/busy-no-header":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/conflict":
			w.WriteHeader(http.StatusConflict)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := load.Config{URL: srv.URL, Retries: 3, MaxRetryWait: 5 * time.Millisecond}

	res, err := load.Post(ctx, cfg, 10, 5, "/busy-twice")
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered2xx != 10 || res.Busy != 20 || res.Retries != 20 || res.Errors != 0 || res.GaveUp != 0 {
		t.Fatalf("busy-twice: %+v", *res)
	}
	mu.Lock()
	for k, n := range seen {
		if k == "" || n != 3 {
			t.Fatalf("key %q sent %d times, want one key per command, 3 attempts", k, n)
		}
	}
	mu.Unlock()

	res, err = load.Post(ctx, cfg, 2, 2, "/always-busy")
	if err == nil || res.GaveUp != 2 || res.Busy != 8 || res.Retries != 6 || res.Errors != 2 || res.Answered2xx != 0 {
		t.Fatalf("always-busy: err %v, %+v", err, *res)
	}
	res, err = load.Post(ctx, cfg, 2, 2, "/busy-no-header")
	if err == nil || res.NoRetryHdr != 2 || res.Other != 2 || res.Retries != 0 || res.Errors != 2 {
		t.Fatalf("busy-no-header: err %v, %+v", err, *res)
	}
	res, err = load.Post(ctx, cfg, 1, 1, "/conflict")
	if err == nil || res.Other != 1 || res.Retries != 0 || res.Errors != 1 {
		t.Fatalf("conflict: err %v, %+v", err, *res)
	}
}
