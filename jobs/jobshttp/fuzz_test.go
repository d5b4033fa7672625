package jobshttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobshttp"
)

var seeds = []string{
	`{"queue":"q","worker":"w","max":3,"leaseMs":1000,"waitMs":10}`,
	`{"queue":"q","id":"q-1","token":7,"leaseMs":500}`,
	`{"queue":"q","id":"q-1","token":7,"error":"boom","permanent":true}`,
	`{"queue":"q","kind":"k","args":{"a":1},"priority":-3,"runAt":"2026-01-01T00:00:00Z","delayMs":5,"unique":"u","maxAttempts":2}`,
	`{"queue":"q","limit":5}`, `{"queue":"q","id":"q-1"}`, `{"queue":"q","ids":["q-1","q-2"]}`, `{"queue":"q","all":true}`,
	`{"queue":"q","ids":[],"all":false}`, `{"ids":[""]}`, `{"limit":-1}`,
	`{"token":18446744073709551615,"id":"x"}`, `{"token":-1}`, `{"leaseMs":1e300}`, `null`, `[]`, ``, `{"args":}`,
}

// FuzzDecode: every request decoder either refuses the bytes or returns a
// value that passed its checks; none panics.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := jobshttp.Decode[jobshttp.LeaseRequest](strings.NewReader(string(b)), 1<<16); err == nil && (r.Max < 0 || r.WaitMs < 0) {
			t.Fatalf("lease accepted %+v", r)
		}
		if r, err := jobshttp.Decode[jobshttp.TokenRequest](strings.NewReader(string(b)), 1<<16); err == nil && (r.ID == "" || r.Token == 0) {
			t.Fatalf("token accepted %+v", r)
		}
		if r, err := jobshttp.Decode[jobshttp.FailRequest](strings.NewReader(string(b)), 1<<16); err == nil && r.ID == "" {
			t.Fatalf("fail accepted %+v", r)
		}
		if r, err := jobshttp.Decode[jobshttp.EnqueueRequest](strings.NewReader(string(b)), 1<<16); err == nil && (r.Kind == "" || len(r.Args) == 0) {
			t.Fatalf("enqueue accepted %+v", r)
		}
		if r, err := jobshttp.Decode[jobshttp.DeadRequest](strings.NewReader(string(b)), 1<<16); err == nil && r.Limit < 0 {
			t.Fatalf("dead accepted %+v", r)
		}
		if r, err := jobshttp.Decode[jobshttp.JobRequest](strings.NewReader(string(b)), 1<<16); err == nil && r.ID == "" {
			t.Fatalf("job accepted %+v", r)
		}
		// An ids request is never ambiguous: some ids, none empty, or all.
		if r, err := jobshttp.Decode[jobshttp.IDsRequest](strings.NewReader(string(b)), 1<<16); err == nil {
			if r.All == (len(r.IDs) > 0) || slices.Contains(r.IDs, "") {
				t.Fatalf("ids accepted %+v", r)
			}
		}
	})
}

// FuzzHandler posts arbitrary bodies to every endpoint of a live handler
// (memory-only queues): the answer is never a 500, and the server lives on.
func FuzzHandler(f *testing.F) {
	for _, s := range seeds {
		f.Add(uint8(0), []byte(s))
	}
	ctx := context.Background()
	rt, err := reactor.New(reactor.Config{Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	qs, err := jobs.New(rt, jobs.Config{NoJournal: true, Logger: quiet, Queues: map[string]jobs.QueueConfig{"q": {MaxDepth: 50, TickInterval: -1}}})
	if err != nil {
		f.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		f.Fatal(err)
	}
	defer rt.Close(ctx)
	defer qs.Close(ctx)
	h := jobshttp.Handler(qs, jobshttp.Options{Logger: quiet, MaxWait: time.Millisecond})
	paths := []string{"/lease", "/heartbeat", "/complete", "/fail", "/enqueue", "/stats", "/dead", "/job", "/redrive", "/purge", "/status"}
	f.Fuzz(func(t *testing.T, p uint8, b []byte) {
		req := httptest.NewRequest(http.MethodPost, paths[int(p)%len(paths)], strings.NewReader(string(b)))
		if p >= 128 { // the status page's form
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %q: %d %s", req.URL.Path, b, rec.Code, rec.Body)
		}
	})
}
