package reactor_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/journal"
)

// Flaky depends on a global counter: replaying it twice gives two states.
type Flaky struct{ Last int64 }

var flakyGlobal atomic.Int64

func (f *Flaky) Bump(*reactor.Ctx, struct{}) (int64, error) {
	f.Last = flakyGlobal.Add(1)
	return f.Last, nil
}

var flakyBump = reactor.Method("test.flaky.bump", (*Flaky).Bump)

func TestReplayCheck(t *testing.T) {
	dir := t.TempDir()
	proc := newProcFS(journal.OS)
	app, err := openDurable(t, proc, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 30 {
		if _, err := streamPut.Call(ctx, app.rt.Ref("/streams/s"+string(rune('a'+i%4))), i); err != nil {
			t.Fatal(err)
		}
	}
	proc.kill() // a crash: the process writes nothing more
	register := func(rt *reactor.Runtime) error {
		total, err := reactor.Register(rt, "/total", &Total{}, reactor.Journaled())
		if err != nil {
			return err
		}
		return reactor.RegisterChildren(rt, "/streams", func(string) *Stream { return &Stream{total: total} }, reactor.Journaled(), reactor.MaxChildren(3))
	}
	a, b, err := reactor.ReplayCheck(ctx, filepath.Join(dir, "journal"), filepath.Join(dir, "checkpoints"), register)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("deterministic services replayed to different states: %x vs %x", a, b)
	}
}

func TestReplayCheckCatchesNondeterminism(t *testing.T) {
	dir := t.TempDir()
	app, err := openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A second runtime on the same journal would be refused; register Flaky
	// in a fresh journal instead.
	app.rt.Close(ctx)
	app.j.Close()
	dir = t.TempDir()
	register := func(rt *reactor.Runtime) error {
		_, err := reactor.Register(rt, "/flaky", &Flaky{}, reactor.Journaled())
		return err
	}
	j, rt := openWith(t, dir, register)
	for range 5 {
		if _, err := flakyBump.Call(ctx, rt.Ref("/flaky"), struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	a, b, err := reactor.ReplayCheck(ctx, filepath.Join(dir, "journal"), filepath.Join(dir, "checkpoints"), register)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("a handler reading a global counter replayed to the same state twice: the check found nothing")
	}
}
