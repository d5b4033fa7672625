package reactor_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/internal/failpoint"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
)

type relayIn struct {
	N  int
	to reactor.Ref
}

type relayOut struct{ N int }

var (
	relayOutAdd  = reactor.Method("test.closesend.add", func(o *relayOut, _ *reactor.Ctx, v int) (struct{}, error) { o.N += v; return struct{}{}, nil })
	relayOutRead = reactor.Method("test.closesend.read", func(o *relayOut, _ *reactor.Ctx, _ struct{}) (int, error) { return o.N, nil }, reactor.ReadOnly())
	relayInGo    = reactor.Method("test.closesend.go", func(in *relayIn, c *reactor.Ctx, v int) (struct{}, error) {
		in.N++
		return struct{}{}, relayOutAdd.Send(c, in.to, v)
	})
)

// TestSendInFlightAtCloseIsApplied: a journaled handler's send whose record
// is still being written when Close begins is applied — before Close
// returns, or by replay at the next start. It used to be lost: Close did
// not wait for it, dropped it from the inbox once it arrived, and then
// checkpointed the receiver as if it covered it, so the journal floor
// passed the record and the next start skipped it.
func TestSendInFlightAtCloseIsApplied(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*reactor.Runtime, func()) {
		rt, j := testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
			if _, err := reactor.Register(rt, "/in", &relayIn{to: rt.Ref("/out")}, reactor.Journaled()); err != nil {
				return err
			}
			_, err := reactor.Register(rt, "/out", &relayOut{}, reactor.Journaled())
			return err
		})
		return rt, func() {
			if err := rt.Close(ctx); err != nil {
				t.Error(err)
			}
			j.Close()
		}
	}
	const rounds = 8
	rt, closeAll := open()
	for range rounds {
		if _, err := relayInGo.Call(ctx, rt.Ref("/in"), 1); err != nil {
			t.Fatal(err)
		}
		closeAll() // at once: the send is still on its way
		rt, closeAll = open()
	}
	defer closeAll()
	if n, err := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{}); n != rounds || err != nil {
		t.Fatalf("after %d sends each followed by a restart: %d applied (%v)", rounds, n, err)
	}
}

type fanOut struct{ to reactor.Ref }

var fanOutGo = reactor.Method("test.closesend.fanout", func(f *fanOut, c *reactor.Ctx, n int) (int, error) {
	for range n {
		if err := relayOutAdd.Send(c, f.to, 1); err != nil {
			return 0, err
		}
	}
	return n, nil
})

// TestJournaledHandlerSendsAreAdmitted: a journaled handler's sends to a
// journaled service are never refused with ErrBusy, even far beyond the
// receiver's inbox: a replay would send them again, so a refusal would
// make the live run and the replay disagree.
func TestJournaledHandlerSendsAreAdmitted(t *testing.T) {
	ctx := context.Background()
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{}, func(rt *reactor.Runtime) error {
		if _, err := reactor.Register(rt, "/fan", &fanOut{to: rt.Ref("/out")}, reactor.Journaled()); err != nil {
			return err
		}
		_, err := reactor.Register(rt, "/out", &relayOut{}, reactor.Journaled(), reactor.InboxSize(4))
		return err
	})
	defer j.Close()
	defer rt.Close(ctx)
	if n, err := fanOutGo.Call(ctx, rt.Ref("/fan"), 100); n != 100 || err != nil {
		t.Fatalf("100 sends into an inbox of 4: %d, %v", n, err)
	}
	testutil.WaitFor(t, func() bool { n, _ := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{}); return n == 100 })
}

// TestCloseAfterFailedStartLeavesDiskAlone: when replay fails (here a
// record names a method this program lacks), Close neither waits for
// workers that never started nor saves the partly recovered services: the
// next Start must find the journal and checkpoints exactly as they were.
func TestCloseAfterFailedStartLeavesDiskAlone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	testutil.WriteJournal(t, journal.Options{Dir: filepath.Join(dir, "journal")},
		&journal.Record{Service: "/out", Method: "test.closesend.add", Payload: []byte("1")},
		&journal.Record{Service: "/out", Method: "test.closesend.no-such-method", Payload: []byte("1")})
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	store := checkpoint.NewMemStore()
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.Register(rt, "/out", &relayOut{}, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err == nil || !strings.Contains(err.Error(), "unknown method") {
		t.Fatalf("Start: %v, want an unknown-method error", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	began := time.Now()
	rt.Close(cctx)
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("Close after a failed Start waited %v", waited)
	}
	if keys, _ := store.Keys(ctx); len(keys) != 0 {
		t.Fatalf("Close after a failed Start saved %v", keys)
	}
}

// TestSendRetriedAfterEvictionKeepsItsOriginKey: a journaled handler's
// send that finds its target evicted and resolves it again keeps the
// origin key it was numbered with. It used to take the next number on the
// retry, so after a crash the replay of the handler (no retry) sent it
// again under another key and the receiver applied it twice (found by the
// simulator's differential bank: a credit counted twice after a crash).
func TestSendRetriedAfterEvictionKeepsItsOriginKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*reactor.Runtime, *journal.Journal) {
		return testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
			if _, err := reactor.Register(rt, "/in", &relayIn{to: rt.Ref("/out")}, reactor.Journaled()); err != nil {
				return err
			}
			_, err := reactor.Register(rt, "/out", &relayOut{}, reactor.Journaled())
			return err
		})
	}
	rt, j := open()
	var calls atomic.Int32
	disable := failpoint.Enable(func(name string) error {
		// The first evaluation is the outside call to /in, the second the
		// handler's send to /out: that one finds its target gone.
		if name == failpoint.SendTargetGone && calls.Add(1) == 2 {
			return errors.New("evicted under the sender")
		}
		return nil
	}, reactor.Journal(j))
	if _, err := relayInGo.Call(ctx, rt.Ref("/in"), 1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool {
		n, err := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{})
		return err == nil && n == 1
	})
	disable()
	j.Close() // a crash: nothing checkpointed, the runtime abandoned
	rt, j = open()
	defer func() { rt.Close(ctx); j.Close() }()
	// The replayed handler sends again; the receiver must know the key.
	time.Sleep(50 * time.Millisecond)
	if n, err := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{}); n != 1 || err != nil {
		t.Fatalf("after a retried send and a crash: applied %d times (%v), want once", n, err)
	}
}

type keyedRelay struct {
	N  int
	to reactor.Ref
}

var keyedRelayGo = reactor.Method("test.closesend.keyed", func(in *keyedRelay, c *reactor.Ctx, v int) (struct{}, error) {
	in.N++
	// One send keyed by the handler, one numbered by the runtime.
	if err := relayOutAdd.Send(reactor.WithIdempotencyKey(c, "k"+strconv.Itoa(in.N)), in.to, v); err != nil {
		return struct{}{}, err
	}
	return struct{}{}, relayOutAdd.Send(c, in.to, v)
})

// TestReplayedKeyedSendKeepsItsKey: after a crash, a replayed handler's
// sends go out again under the keys they had live — the key the handler
// chose for one, the runtime's origin key for the other — so the receiver
// drops both as duplicates. The replay used to give the keyed send an
// origin key (and shift the next send's number): both were applied twice.
func TestReplayedKeyedSendKeepsItsKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*reactor.Runtime, *journal.Journal) {
		return testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
			if _, err := reactor.Register(rt, "/in", &keyedRelay{to: rt.Ref("/out")}, reactor.Journaled()); err != nil {
				return err
			}
			_, err := reactor.Register(rt, "/out", &relayOut{}, reactor.Journaled())
			return err
		})
	}
	rt, j := open()
	if _, err := keyedRelayGo.Call(ctx, rt.Ref("/in"), 1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool {
		n, err := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{})
		return err == nil && n == 2
	})
	j.Close() // a crash: nothing checkpointed
	rt, j = open()
	defer func() { rt.Close(ctx); j.Close() }()
	time.Sleep(50 * time.Millisecond) // the resends after replay
	if n, err := relayOutRead.Call(ctx, rt.Ref("/out"), struct{}{}); n != 2 || err != nil {
		t.Fatalf("after a crash: %d applied (%v), want 2", n, err)
	}
}

type forwarder struct{ a, b reactor.Ref }

var forwardThenSend = reactor.Method("test.closesend.fwd", func(f *forwarder, c *reactor.Ctx, v int) (struct{}, error) {
	relayOutAdd.Forward(c, f.a, v, reactor.Defer[struct{}](c))
	return struct{}{}, relayOutAdd.Send(c, f.b, v)
})

// TestReplayedForwardKeepsLaterSendNumbers: a Forward to a journaled
// service takes an origin number live; the replay must count it too, or
// the handler's next send is resent under the Forward's key, which its own
// receiver has never seen, and is applied twice.
func TestReplayedForwardKeepsLaterSendNumbers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*reactor.Runtime, *journal.Journal) {
		return testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
			if _, err := reactor.Register(rt, "/in", &forwarder{a: rt.Ref("/a"), b: rt.Ref("/b")}, reactor.Journaled()); err != nil {
				return err
			}
			for _, addr := range []string{"/a", "/b"} {
				if _, err := reactor.Register(rt, addr, &relayOut{}, reactor.Journaled()); err != nil {
					return err
				}
			}
			return nil
		})
	}
	rt, j := open()
	if _, err := forwardThenSend.Call(ctx, rt.Ref("/in"), 1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool {
		n, err := relayOutRead.Call(ctx, rt.Ref("/b"), struct{}{})
		return err == nil && n == 1
	})
	j.Close() // a crash: nothing checkpointed
	rt, j = open()
	defer func() { rt.Close(ctx); j.Close() }()
	time.Sleep(50 * time.Millisecond) // the resends after replay
	for _, addr := range []string{"/a", "/b"} {
		if n, err := relayOutRead.Call(ctx, rt.Ref(addr), struct{}{}); n != 1 || err != nil {
			t.Fatalf("%s after a crash: applied %d times (%v), want once", addr, n, err)
		}
	}
}
