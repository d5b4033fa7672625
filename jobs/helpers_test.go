package jobs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
	"github.com/reactorgo/reactor/reactortest"
)

var quiet = slog.New(slog.DiscardHandler)

// app is a runtime with a journal and a file checkpoint store on fsys,
// the queues, and whatever register adds.
type app struct {
	rt *reactor.Runtime
	j  *journal.Journal
	qs *jobs.Queues
}

type appOpts struct {
	fsys     journal.FS
	dir      string
	clock    func() time.Time
	queues   map[string]jobs.QueueConfig
	register func(rt *reactor.Runtime, qs *jobs.Queues) error
	// noPool leaves the worker pools stopped: the test calls qs.Start.
	noPool bool
}

func openApp(t testing.TB, o appOpts) *app {
	t.Helper()
	ctx := context.Background()
	if o.fsys == nil {
		o.fsys = faultfs.New()
	}
	if o.dir == "" {
		o.dir = "/app"
	}
	j, err := journal.Open(ctx, journal.Options{Dir: o.dir + "/journal", FS: o.fsys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.Open(file.Options{Dir: o.dir + "/checkpoints", FS: o.fsys})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: quiet, Clock: o.clock, CheckpointInterval: 50 * time.Millisecond, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := jobs.New(rt, jobs.Config{Queues: o.queues, Clock: o.clock, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if o.register != nil {
		if err := o.register(rt, qs); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !o.noPool {
		if err := qs.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return &app{rt: rt, j: j, qs: qs}
}

// close shuts down gracefully, or (crash) as fast as possible: the caller
// has killed the process view of the file system already.
func (a *app) close(t testing.TB, crash bool) {
	ctx := context.Background()
	if crash {
		dead, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		a.qs.Close(dead)
		a.rt.Close(dead)
		a.j.Close()
		return
	}
	if err := a.qs.Close(ctx); err != nil {
		t.Errorf("close queues: %v", err)
	}
	if err := a.rt.Close(ctx); err != nil {
		t.Errorf("close runtime: %v", err)
	}
	if err := a.j.Close(); err != nil {
		t.Errorf("close journal: %v", err)
	}
}

// waitFor polls cond until it holds or 10s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
