package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
	"github.com/reactorgo/reactor/reactortest"
)

// Relay is a journaled service that passes each number on to a journaled
// Tally, using the context style named in the request.
type Relay struct{ tally reactor.Ref }

type relayReq struct {
	How string
	N   int
}

// Tally counts what it got, per context style.
type Tally struct{ Got map[string]int }

func (t *Tally) Bump(_ *reactor.Ctx, how string) (int, error) {
	if t.Got == nil {
		t.Got = map[string]int{}
	}
	t.Got[how]++
	return t.Got[how], nil
}

func (t *Tally) Counts(*reactor.Ctx, struct{}) (map[string]int, error) { return maps.Clone(t.Got), nil } // a copy: a reply must not alias the state

type ctxKey struct{}

func (r *Relay) Pass(c *reactor.Ctx, req relayReq) (int, error) {
	switch req.How {
	case "direct":
		return 0, tallyBump.Send(c, r.tally, req.How)
	case "timeout":
		ctx, cancel := context.WithTimeout(c, time.Second)
		defer cancel()
		return 0, tallyBump.Send(ctx, r.tally, req.How)
	case "cancel":
		ctx, cancel := context.WithCancel(c)
		defer cancel()
		return 0, tallyBump.Send(ctx, r.tally, req.How)
	case "value":
		return 0, tallyBump.Send(context.WithValue(c, ctxKey{}, 1), r.tally, req.How)
	case "nested":
		ctx, cancel := context.WithTimeout(context.WithValue(c, ctxKey{}, 1), time.Second)
		defer cancel()
		return 0, tallyBump.SendWait(ctx, r.tally, req.How)
	case "async":
		tallyBump.Async(c, r.tally, req.How, func(*reactor.Ctx, int, error) {})
		return 0, nil
	case "forward":
		tallyBump.Forward(c, r.tally, req.How, reactor.Defer[int](c))
		return 0, nil
	}
	return 0, fmt.Errorf("unknown style %q", req.How)
}

// Self calls its own service through a derived context: a deadlock the
// runtime must refuse, not wait out.
func (r *Relay) Self(c *reactor.Ctx, _ struct{}) (int, error) {
	ctx, cancel := context.WithTimeout(c, 5*time.Second)
	defer cancel()
	return relayPass.Call(ctx, c.Self(), relayReq{How: "direct"})
}

var (
	relayPass   = reactor.Method("test.relay.pass", (*Relay).Pass)
	relaySelf   = reactor.Method("test.relay.self", (*Relay).Self)
	tallyBump   = reactor.Method("test.tally.bump", (*Tally).Bump)
	tallyCounts = reactor.Method("test.tally.counts", (*Tally).Counts, reactor.ReadOnly())
)

func openRelay(t *testing.T, fsys journal.FS) (*reactor.Runtime, *journal.Journal) {
	t.Helper()
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: "/r/journal", FS: fsys, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.Open(file.Options{Dir: filepath.Join("/r", "checkpoints"), FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: discardLogger, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	tally, err := reactor.Register(rt, "/b", &Tally{}, reactor.Journaled())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.Register(rt, "/a", &Relay{tally: tally}, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return rt, j
}

// TestDerivedContextKeepsExactlyOnce: a journaled handler that sends with a
// context derived from its Ctx (WithTimeout, WithCancel, WithValue, nested)
// keeps its origin keys, so after a crash and a full replay of the relay's
// inputs the receiver still counts every message once — as it does for the
// handler's own Ctx, Async and Forward.
func TestDerivedContextKeepsExactlyOnce(t *testing.T) {
	const n = 40
	styles := []string{"direct", "timeout", "cancel", "value", "nested", "async", "forward"}
	fsys := faultfs.New()
	proc := newProcFS(fsys)
	rt, j := openRelay(t, proc)
	ctx := context.Background()
	for i := range n {
		for _, how := range styles {
			if _, err := relayPass.Call(ctx, rt.Ref("/a"), relayReq{How: how, N: i}); err != nil {
				t.Fatalf("%s %d: %v", how, i, err)
			}
		}
	}
	want := map[string]int{}
	for _, how := range styles {
		want[how] = n
	}
	testutil.WaitFor(t, func() bool {
		got, _ := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{})
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	// Die without Close: no checkpoint was written, so the restart replays
	// every input of /a, and its handlers send again.
	proc.kill()
	fsys.Crash()
	dead, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	rt.Close(dead)
	cancel()
	j.Close()

	rt, j = openRelay(t, newProcFS(fsys))
	defer func() { rt.Close(ctx); j.Close() }()
	// Resent messages are durable and queued at /b when Start returns; the
	// read-only call below queues behind them.
	got, err := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after crash and replay /b counted %v, want %v", got, want)
	}
}

// TestDerivedContextDeadlock: a blocking call to the handler's own service
// through a derived context fails with ErrDeadlock at once.
func TestDerivedContextDeadlock(t *testing.T) {
	fsys := faultfs.New()
	rt, j := openRelay(t, fsys)
	defer func() { rt.Close(context.Background()); j.Close() }()
	began := time.Now()
	_, err := relaySelf.Call(context.Background(), rt.Ref("/a"), struct{}{})
	if !errors.Is(err, reactor.ErrDeadlock) {
		t.Fatalf("self call through a derived context: %v", err)
	}
	if time.Since(began) > 2*time.Second {
		t.Fatalf("self call took %v: it waited instead of failing", time.Since(began))
	}
}

// TestSendLostToFullDiskIsSentAgain: when the journal write of a message a
// handler sent fails (disk full), the runtime sends it again — it arrives
// once, without a restart — and no checkpoint of the sender covers the
// input before it is durable; a restart afterwards delivers nothing twice.
func TestSendLostToFullDiskIsSentAgain(t *testing.T) {
	fsys := faultfs.New()
	rt, j := openRelay(t, fsys)
	ctx := context.Background()
	if _, err := relayPass.Call(ctx, rt.Ref("/a"), relayReq{How: "direct", N: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool {
		got, _ := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{})
		return got["direct"] == 1
	})
	// The call's record is the next journal write; the send its handler
	// makes, the one after: that one finds the disk full.
	var journalWrites atomic.Int32
	fsys.SetHook(func(op faultfs.Op, name string) error {
		if op == faultfs.OpWrite && strings.HasPrefix(name, "/r/journal/") && journalWrites.Add(1) == 2 {
			return syscall.ENOSPC
		}
		return nil
	})
	if _, err := relayPass.Call(ctx, rt.Ref("/a"), relayReq{How: "direct", N: 2}); err != nil {
		t.Fatal(err)
	}
	rt.Checkpoint() // must not cover /a's input before the send is durable
	testutil.WaitFor(t, func() bool {
		got, _ := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{})
		return got["direct"] == 2
	})
	if journalWrites.Load() < 3 {
		t.Fatalf("%d journal writes: the fault did not strike the send", journalWrites.Load())
	}
	fsys.SetHook(nil)
	rt.Checkpoint()
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	j.Close()
	fsys.Crash()

	rt, j = openRelay(t, fsys)
	defer func() { rt.Close(ctx); j.Close() }()
	got, err := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{})
	if err != nil || got["direct"] != 2 {
		t.Fatalf("after restart /b counted %v (%v), want 2", got, err)
	}
}

// TestUnsentMessageBlocksCheckpointAtClose: a send still failing when the
// runtime closes keeps its sender from being checkpointed over it; replay
// after the restart delivers it once.
func TestUnsentMessageBlocksCheckpointAtClose(t *testing.T) {
	fsys := faultfs.New()
	rt, j := openRelay(t, fsys)
	ctx := context.Background()
	a := rt.Ref("/a")
	if _, err := relayPass.Call(ctx, a, relayReq{How: "direct", N: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { // its send is written too: nothing else is in flight
		got, _ := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{})
		return got["direct"] == 1
	})
	// From now on the call's record is written, every journal write after
	// it fails: its send's, and every attempt to send it again.
	var journalWrites atomic.Int32
	fsys.SetHook(func(op faultfs.Op, name string) error {
		if op == faultfs.OpWrite && strings.HasPrefix(name, "/r/journal/") && journalWrites.Add(1) >= 2 {
			return syscall.ENOSPC
		}
		return nil
	})
	if _, err := relayPass.Call(ctx, a, relayReq{How: "direct", N: 2}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return journalWrites.Load() >= 3 }) // a resend failed too
	if err := rt.Close(ctx); err == nil || !strings.Contains(err.Error(), "not journaled") {
		t.Fatalf("Close with a send still failing: %v", err)
	}
	j.Close()
	fsys.SetHook(nil)

	rt, j = openRelay(t, fsys)
	defer func() { rt.Close(ctx); j.Close() }()
	if got, _ := tallyCounts.Call(ctx, rt.Ref("/b"), struct{}{}); got["direct"] != 2 {
		t.Fatalf("after restart /b counted %v, want 2", got)
	}
}
