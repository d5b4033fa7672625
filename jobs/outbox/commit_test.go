package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/outbox"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
	"github.com/reactorgo/reactor/reactortest"
)

// recorder is a Publisher that keeps what it was asked to publish.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Publish(_ context.Context, id string, m outbox.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(m.Data))
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// TestNothingLeavesBeforeItsCause: while the order's input waits for its
// fsync, nothing is published and the caller has no answer; once the
// input is durable, the message is published once. (No broker needed: the
// property is ours, the publisher only records.)
func TestNothingLeavesBeforeItsCause(t *testing.T) {
	fsys := faultfs.New()
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: "/app/journal", FS: fsys, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.Open(file.Options{Dir: "/app/checkpoints", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: quiet, CheckpointInterval: time.Hour, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := jobs.New(rt, jobs.Config{Logger: quiet, Queues: map[string]jobs.QueueConfig{outbox.Queue: {Workers: 2, PollInterval: 5 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	outbox.Register("recorder-"+t.Name(), rec)
	shop, err := reactor.Register(rt, "/shop", &Shop{qs: qs, via: "recorder-" + t.Name(), to: "orders"}, reactor.Journaled())
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := qs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		qs.Close(ctx)
		rt.Close(ctx)
		j.Close()
	}()

	hold, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fsys.SetHook(func(op faultfs.Op, name string) error {
		if op == faultfs.OpSync {
			once.Do(func() { close(hold) })
			<-release
		}
		return nil
	})
	answered := make(chan error, 1)
	go func() {
		_, err := shopOrder.Call(ctx, shop, "o1")
		answered <- err
	}()
	<-hold // the order's input is being fsynced
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-answered:
		t.Fatalf("the order was answered before its input was durable: %v", err)
	default:
	}
	if n := rec.count(); n != 0 {
		t.Fatalf("%d messages left before their cause was durable", n)
	}
	fsys.SetHook(nil)
	close(release)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return rec.count() == 1 })
	if rec.got[0] != `{"Order":"o1"}` {
		t.Fatalf("published %q", rec.got)
	}
}
