package jobshttp_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobshttp"
)

var quiet = slog.New(slog.DiscardHandler)

// serve opens a durable runtime with the queues, and an httptest server
// with the handler at /jobs.
func serve(t *testing.T, clock func() time.Time, queues map[string]jobs.QueueConfig) (*jobs.Queues, *jobshttp.Client) {
	t.Helper()
	var qs *jobs.Queues
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{Logger: quiet, Clock: clock}, func(rt *reactor.Runtime) error {
		var err error
		qs, err = jobs.New(rt, jobs.Config{Queues: queues, Clock: clock, Logger: quiet})
		return err
	})
	ctx := context.Background()
	if err := qs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/jobs/", http.StripPrefix("/jobs", jobshttp.Handler(qs, jobshttp.Options{Logger: quiet})))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		qs.Close(ctx)
		rt.Close(ctx)
		j.Close()
	})
	return qs, &jobshttp.Client{URL: srv.URL + "/jobs", HTTP: srv.Client()}
}

var remote = map[string]jobs.QueueConfig{"remote": {LeaseTime: 10 * time.Second, TickInterval: -1, PollInterval: time.Second}}

// TestZombieCompletionRejected: worker A's lease expires while it is
// paused; worker B leases the job with a higher token; A's late heartbeat,
// completion and failure get 409 and change nothing; B's completion counts.
func TestZombieCompletionRejected(t *testing.T) {
	clock := testutil.NewClock()
	qs, c := serve(t, clock.Now, remote)
	ctx := context.Background()
	id, err := c.Enqueue(ctx, jobshttp.EnqueueRequest{Queue: "remote", Kind: "resize", Args: []byte(`{"img":7}`)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Lease(ctx, "remote", "worker-a", 1, time.Second, 0)
	if err != nil || len(a) != 1 || a[0].ID != id || a[0].Attempt != 1 || string(a[0].Args) != `{"img":7}` {
		t.Fatalf("lease a: %+v %v", a, err)
	}
	until, err := c.Heartbeat(ctx, a[0], 2*time.Second)
	if err != nil || !until.Equal(clock.Now().Add(2*time.Second)) {
		t.Fatalf("heartbeat: %v %v", until, err)
	}
	clock.Advance(3 * time.Second) // A is paused past its deadline
	b, err := c.Lease(ctx, "remote", "worker-b", 1, 0, 0)
	if err != nil || len(b) != 1 || b[0].ID != id || b[0].Token <= a[0].Token || b[0].Attempt != 2 {
		t.Fatalf("lease b: %+v %v", b, err)
	}
	var se *jobshttp.StatusError
	if _, err := c.Heartbeat(ctx, a[0], 0); !errors.As(err, &se) || se.Status != http.StatusConflict || !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("zombie heartbeat: %v", err)
	}
	if err := c.Complete(ctx, a[0]); !errors.As(err, &se) || se.Status != http.StatusConflict || se.Code != "stale_lease" {
		t.Fatalf("zombie completion: %v", err)
	}
	if _, err := c.Fail(ctx, a[0], "late", false); !errors.Is(err, jobs.ErrStaleLease) {
		t.Fatalf("zombie failure: %v", err)
	}
	info, _ := qs.Get(ctx, "remote", id)
	if info.State != jobs.Running || info.Token != b[0].Token {
		t.Fatalf("the zombie changed the job: %+v", info)
	}
	if err := c.Complete(ctx, b[0]); err != nil {
		t.Fatalf("current completion: %v", err)
	}
	info, _ = qs.Get(ctx, "remote", id)
	if info.State != jobs.Completed || info.Attempt != 2 {
		t.Fatalf("after completion: %+v", info)
	}
}

// TestLongPoll: a lease request waits until a job is enqueued (woken at
// once, not at the next poll), and one with nothing to do returns empty
// when its wait ends.
func TestLongPoll(t *testing.T) {
	qs, c := serve(t, nil, remote)
	ctx := context.Background()
	start := time.Now()
	if js, err := c.Lease(ctx, "remote", "w", 1, 0, 50*time.Millisecond); err != nil || len(js) != 0 {
		t.Fatalf("empty poll: %+v %v", js, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 900*time.Millisecond {
		t.Fatalf("empty poll took %v", d)
	}
	got := make(chan []jobshttp.Job, 1)
	go func() {
		js, err := c.Lease(ctx, "remote", "w", 5, 0, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- js
	}()
	time.Sleep(20 * time.Millisecond) // let the poll start waiting
	start = time.Now()
	id, err := qs.EnqueueJSON(ctx, "remote", "resize", []byte(`null`))
	if err != nil {
		t.Fatal(err)
	}
	js := <-got
	if len(js) != 1 || js[0].ID != id {
		t.Fatalf("woken poll: %+v", js)
	}
	if d := time.Since(start); d > 500*time.Millisecond { // PollInterval is 1s: the poke woke it
		t.Fatalf("the poll waited %v after the enqueue", d)
	}
}

// TestFailRetryDeadAndErrors: failure reports, and the error answers.
func TestFailRetryDeadAndErrors(t *testing.T) {
	clock := testutil.NewClock()
	qs, c := serve(t, clock.Now, map[string]jobs.QueueConfig{"remote": {MaxDepth: 2, TickInterval: -1, RetryAfterMax: 2 * time.Minute}})
	ctx := context.Background()
	id, _ := c.Enqueue(ctx, jobshttp.EnqueueRequest{Queue: "remote", Kind: "k", Args: []byte(`1`), MaxAttempts: 3})
	js, _ := c.Lease(ctx, "remote", "w", 1, 0, 0)
	fr, err := c.Fail(ctx, js[0], "timeout talking to S3", false)
	if err != nil || fr.Dead || fr.RetryAt.Before(clock.Now()) {
		t.Fatalf("fail: %+v %v", fr, err)
	}
	clock.Advance(time.Hour)
	js, _ = c.Lease(ctx, "remote", "w", 1, 0, 0)
	if len(js) != 1 || js[0].Attempt != 2 || len(js[0].Errors) != 1 || js[0].Errors[0].Error != "timeout talking to S3" {
		t.Fatalf("retry: %+v", js)
	}
	if fr, err := c.Fail(ctx, js[0], "corrupt image", true); err != nil || !fr.Dead {
		t.Fatalf("permanent: %+v %v", fr, err)
	}
	if dead, _ := qs.Dead(ctx, "remote", 0); len(dead) != 1 || dead[0].ID != id {
		t.Fatalf("dead: %+v", dead)
	}

	// A full queue: 503 with Retry-After from the drain rate (nothing
	// drained but the dead job over an hour: 1/3600 per second, so capped).
	for range 2 {
		if _, err := c.Enqueue(ctx, jobshttp.EnqueueRequest{Queue: "remote", Kind: "k", Args: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.Enqueue(ctx, jobshttp.EnqueueRequest{Queue: "remote", Kind: "k", Args: []byte(`{}`)})
	var se *jobshttp.StatusError
	if !errors.As(err, &se) || se.Status != 503 || se.Code != "busy" || se.Wait != 2*time.Minute || !errors.Is(err, reactor.ErrBusy) {
		t.Fatalf("full: %v", err)
	}

	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/lease", `{"queue":"nope"}`, 404, "no_queue"},
		{"/lease", `{"queue":"remote","max":-1}`, 400, "bad_request"},
		{"/lease", `{"queue":`, 400, "bad_request"},
		{"/lease", `{"queue":"remote"} {}`, 400, "bad_request"},
		{"/complete", `{"queue":"remote","id":"x"}`, 400, "bad_request"},
		{"/complete", `{"queue":"remote","id":"x","token":9}`, 404, "not_found"},
		{"/heartbeat", `{"queue":"remote","id":"` + id + `","token":1}`, 409, "stale_lease"},
		{"/enqueue", `{"queue":"remote","kind":"k"}`, 400, "bad_request"},
		{"/fail", `[]`, 400, "bad_request"},
	} {
		resp, err := http.Post(c.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(buf.String(), `"error":"`+tc.code+`"`) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.path, tc.body, resp.StatusCode, buf.String(), tc.status, tc.code)
		}
	}
	if resp, _ := http.Get(c.URL + "/lease"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /lease: %d", resp.StatusCode)
	}
}
