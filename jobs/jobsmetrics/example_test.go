package jobsmetrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobsmetrics"
)

func Example() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{Logger: slog.New(slog.DiscardHandler)})
	qs, _ := jobs.New(rt, jobs.Config{NoJournal: true, Queues: map[string]jobs.QueueConfig{"mail": {MaxDepth: 10}}})
	rt.Start(ctx)
	defer rt.Close(ctx)
	qs.EnqueueJSON(ctx, "mail", "email.send", []byte(`{}`))
	qs.EnqueueJSON(ctx, "mail", "email.send", []byte(`{}`))

	reg := prometheus.NewRegistry()
	reg.MustRegister(jobsmetrics.NewCollector(qs))
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP jobs_queue_depth Pending and running jobs (what MaxDepth bounds).
# TYPE jobs_queue_depth gauge
jobs_queue_depth{queue="mail"} 2
# HELP jobs_queue_max_depth MaxDepth of the queue.
# TYPE jobs_queue_max_depth gauge
jobs_queue_max_depth{queue="mail"} 10
`), "jobs_queue_depth", "jobs_queue_max_depth")
	fmt.Println(err)
	// Output: <nil>
}
