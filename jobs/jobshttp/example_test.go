package jobshttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobshttp"
)

// A remote worker takes a job over HTTP and completes it with its lease's
// fencing token. (Memory-only queues keep the example short; a real
// deployment journals them.)
func Example() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{Logger: quiet})
	qs, _ := jobs.New(rt, jobs.Config{NoJournal: true, Logger: quiet, Queues: map[string]jobs.QueueConfig{"thumbs": {}}})
	rt.Start(ctx)
	defer rt.Close(ctx)

	mux := http.NewServeMux()
	mux.Handle("/jobs/", http.StripPrefix("/jobs", jobshttp.Handler(qs, jobshttp.Options{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	worker := &jobshttp.Client{URL: srv.URL + "/jobs"}
	worker.Enqueue(ctx, jobshttp.EnqueueRequest{Queue: "thumbs", Kind: "thumb.make", Args: []byte(`{"img":"cat.png"}`)})
	js, _ := worker.Lease(ctx, "thumbs", "worker-1", 1, 0, 0)
	fmt.Println(js[0].Kind, string(js[0].Args), "attempt", js[0].Attempt)
	fmt.Println("complete:", worker.Complete(ctx, js[0]))
	fmt.Println("again:", worker.Complete(ctx, js[0]))
	// Output:
	// thumb.make {"img":"cat.png"} attempt 1
	// complete: <nil>
	// again: jobshttp: 409 stale_lease: jobs: thumbs-n1 token 1 (current 1, completed): jobs: lease is not current (expired, re-leased, cancelled or finished)
}
