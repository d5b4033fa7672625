package reactor_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
)

// Holder defers replies and keeps or drops them.
type Holder struct{ held []*reactor.Reply[int] }

func (h *Holder) Hold(c *reactor.Ctx, keep bool) (int, error) {
	r := reactor.Defer[int](c)
	if keep {
		h.held = append(h.held, r)
	}
	return 0, nil
}

func (h *Holder) Ping(*reactor.Ctx, struct{}) (int, error) { return 1, nil }

var (
	holderHold = reactor.Method("test.holder.hold", (*Holder).Hold)
	holderPing = reactor.Method("test.holder.ping", (*Holder).Ping)
)

// callCollecting makes the call and runs the garbage collector until it
// returns, so a dropped Reply is found.
func callCollecting(t *testing.T, ref reactor.Ref, keep bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := holderHold.Call(ctx, ref, keep); done <- err }()
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Millisecond):
			runtime.GC()
		}
	}
}

// TestDroppedReplyFailsWithErrNoReply: a deferred reply that is dropped —
// by the handler, or with the state of an evicted child — or still open at
// Close fails its caller with ErrNoReply instead of hanging it.
func TestDroppedReplyFailsWithErrNoReply(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	ref, _ := reactor.Register(rt, "/holder", &Holder{})
	if _, err := reactor.RegisterChildren(rt, "/holders", func(string) *Holder { return &Holder{} }, reactor.MaxChildren(1)); err != nil {
		t.Fatal(err)
	}
	start(t, rt)

	if err := callCollecting(t, ref, false); !errors.Is(err, reactor.ErrNoReply) {
		t.Fatalf("dropped by the handler: %v", err)
	}

	// A child keeps the reply in its state, then is evicted.
	child := rt.Ref("/holders/a")
	done := make(chan error, 1)
	go func() { _, err := holderHold.Call(context.Background(), child, true); done <- err }()
	waitForStat(t, rt, "/holders", func(st reactor.ServiceStats) bool { return st.Handled == 1 })
	if _, err := holderPing.Call(context.Background(), rt.Ref("/holders/b"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	waitForStat(t, rt, "/holders", func(st reactor.ServiceStats) bool { return st.Evicted >= 1 })
	for err := error(nil); ; {
		runtime.GC()
		select {
		case err = <-done:
		case <-time.After(5 * time.Millisecond):
			continue
		}
		if !errors.Is(err, reactor.ErrNoReply) {
			t.Fatalf("held by an evicted child: %v", err)
		}
		break
	}

	// Kept in the state of a live service until Close.
	go func() { _, err := holderHold.Call(context.Background(), ref, true); done <- err }()
	waitForStat(t, rt, "/holder", func(st reactor.ServiceStats) bool { return st.Handled == 2 })
	rt.Close(context.Background())
	if err := <-done; !errors.Is(err, reactor.ErrNoReply) || !errors.Is(err, reactor.ErrClosed) {
		t.Fatalf("open at close: %v", err)
	}
}

func waitForStat(t *testing.T, rt *reactor.Runtime, addr string, cond func(reactor.ServiceStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(stat(rt, addr)) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", addr, stat(rt, addr))
		}
		time.Sleep(time.Millisecond)
	}
}
