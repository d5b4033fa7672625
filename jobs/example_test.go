package jobs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal"
)

type Welcome struct{ User string }

var sendWelcome = jobs.Define("example.email.welcome", func(_ context.Context, j *jobs.Job[Welcome]) error {
	fmt.Printf("welcome mail to %s (attempt %d)\n", j.Args.User, j.Attempt)
	return nil
}, jobs.Queue("mail"), jobs.MaxAttempts(5))

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "jobs-example")
	defer os.RemoveAll(dir)
	j, _ := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal")})
	defer j.Close()
	store, _ := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
	rt, _ := reactor.New(reactor.Config{Journal: j, Store: store})
	defer rt.Close(ctx)

	qs, _ := jobs.New(rt, jobs.Config{Queues: map[string]jobs.QueueConfig{"mail": {Workers: 4}}})
	rt.Start(ctx)
	qs.Start(ctx)
	defer qs.Close(ctx)

	id, err := sendWelcome.Enqueue(ctx, qs, Welcome{User: "ann"}) // durable when it returns
	if err != nil {
		panic(err)
	}
	for {
		if info, _ := qs.Get(ctx, "mail", id); info.State == jobs.Completed {
			fmt.Println(info.State)
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Output:
	// welcome mail to ann (attempt 1)
	// completed
}
