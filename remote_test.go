package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/journal"
)

// fabric links runtimes in one process through reactor.Remote: each owns
// the addresses under its own first path segment ("/a/...", "/b/..."), and
// a remote call goes through Deliver and the error encoding, as over a
// network.
type fabric struct {
	mu  sync.Mutex
	rts map[string]*reactor.Runtime
}

type fabricNode struct {
	f    *fabric
	name string
}

func segment(addr string) string {
	s, _, _ := strings.Cut(strings.TrimPrefix(addr, "/"), "/")
	return s
}

func (n *fabricNode) Owns(addr string) bool { return segment(addr) == n.name }

func (n *fabricNode) Call(ctx context.Context, addr, method string, payload []byte, key string) ([]byte, error) {
	n.f.mu.Lock()
	rt := n.f.rts[segment(addr)]
	n.f.mu.Unlock()
	if rt == nil {
		return nil, reactor.DecodeError(reactor.EncodeError(fmt.Errorf("no node for %s: %w", addr, reactor.ErrNoService)))
	}
	b, err := rt.Deliver(ctx, addr, method, append([]byte(nil), payload...), key)
	if err != nil {
		return nil, reactor.DecodeError(reactor.EncodeError(err))
	}
	return b, nil
}

// RCounter is a journaled child on node b.
type RCounter struct{ N int }

func (c *RCounter) Add(_ *reactor.Ctx, n int) (int, error)      { c.N += n; return c.N, nil }
func (c *RCounter) Get(_ *reactor.Ctx, _ struct{}) (int, error) { return c.N, nil }

var errRemoteNope = reactor.NewError("test.remote.nope", reactor.CodeFailedPrecondition, "remote: nope")

// RSlow blocks in Hold until its gate opens; Fail returns a registered
// sentinel, wrapped.
type RSlow struct {
	entered chan struct{}
	gate    chan struct{}
}

func (s *RSlow) Hold(_ *reactor.Ctx, _ int) (int, error) {
	s.entered <- struct{}{}
	<-s.gate
	return 1, nil
}
func (s *RSlow) Fail(_ *reactor.Ctx, _ int) (int, error) {
	return 0, fmt.Errorf("rslow: %w", errRemoteNope)
}

// RCaller on node a calls b with Async and records the reply on its turn.
type RCaller struct {
	Got        []int
	Errs       []string
	async, snt reactor.Ref
}

func (c *RCaller) Kick(ctx *reactor.Ctx, n int) (struct{}, error) {
	rAdd.Async(ctx, c.async, n, func(ctx *reactor.Ctx, sum int, err error) {
		if err != nil {
			c.Errs = append(c.Errs, err.Error())
			return
		}
		c.Got = append(c.Got, sum)
	})
	rSend.Send(ctx, c.snt, n)
	return struct{}{}, nil
}

// Relay defers its reply and forwards the request to b: b's reply answers
// Relay's caller directly.
func (c *RCaller) Relay(ctx *reactor.Ctx, n int) (int, error) {
	rAdd.Forward(ctx, c.async, n, reactor.Defer[int](ctx))
	return 0, nil
}

func (c *RCaller) Seen(_ *reactor.Ctx, _ struct{}) ([]int, error) {
	if len(c.Errs) > 0 {
		return nil, errors.New(strings.Join(c.Errs, "; "))
	}
	return append([]int(nil), c.Got...), nil
}

// RJCaller is a journaled child on a whose handler calls b with Async:
// the request carries its origin key and the reply is journaled as its
// input.
type RJCaller struct {
	Sums []int
	to   reactor.Ref
}

func (c *RJCaller) Kick(ctx *reactor.Ctx, n int) (struct{}, error) {
	rAdd.Async(ctx, c.to, n, func(_ *reactor.Ctx, sum int, err error) {
		if err == nil {
			c.Sums = append(c.Sums, sum)
		}
	})
	return struct{}{}, nil
}

func (c *RJCaller) Seen(_ *reactor.Ctx, _ struct{}) ([]int, error) {
	return append([]int(nil), c.Sums...), nil
}

var (
	rjKick = reactor.Method("test.remote.jkick", (*RJCaller).Kick)
	rjSeen = reactor.Method("test.remote.jseen", (*RJCaller).Seen, reactor.ReadOnly())
)

var (
	rAdd   = reactor.Method("test.remote.add", (*RCounter).Add)
	rSend  = reactor.Method("test.remote.send", (*RCounter).Add)
	rGet   = reactor.Method("test.remote.get", (*RCounter).Get, reactor.ReadOnly())
	rHold  = reactor.Method("test.remote.hold", (*RSlow).Hold)
	rFail  = reactor.Method("test.remote.fail", (*RSlow).Fail)
	rKick  = reactor.Method("test.remote.kick", (*RCaller).Kick)
	rSeen  = reactor.Method("test.remote.seen", (*RCaller).Seen, reactor.ReadOnly())
	rRelay = reactor.Method("test.remote.relay", (*RCaller).Relay)
)

func twoRuntimes(t *testing.T) (a, b *reactor.Runtime, slow *RSlow) {
	t.Helper()
	ctx := context.Background()
	f := &fabric{rts: map[string]*reactor.Runtime{}}
	log := slog.New(slog.DiscardHandler)
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(t.TempDir(), "journal"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	b, err = reactor.New(reactor.Config{Journal: j, Logger: log, Remote: &fabricNode{f, "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(b, "/b/counters", func(string) *RCounter { return &RCounter{} }, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	slow = &RSlow{entered: make(chan struct{}, 4), gate: make(chan struct{})}
	if _, err := reactor.Register(b, "/b/slow", slow, reactor.InboxSize(1)); err != nil {
		t.Fatal(err)
	}
	ja, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(t.TempDir(), "journal"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ja.Close() })
	a, err = reactor.New(reactor.Config{Journal: ja, Logger: log, Remote: &fabricNode{f, "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(a, "/a/jcallers", func(string) *RJCaller { return &RJCaller{to: a.Ref("/b/counters/j")} }, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.Register(a, "/a/caller", &RCaller{async: a.Ref("/b/counters/async"), snt: a.Ref("/b/counters/sent")}); err != nil {
		t.Fatal(err)
	}
	f.rts["a"], f.rts["b"] = a, b
	for _, rt := range []*reactor.Runtime{a, b} {
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			rt.Close(cctx)
		})
	}
	return a, b, slow
}

// TestRemoteCallSendAsync: a Call through runtime a reaches the journaled
// child that b serves; a handler's Send and Async to b go out without
// blocking its turn, and the Async continuation runs on a's turn with b's
// reply; a Forward from a's handler lets b answer a's caller directly.
func TestRemoteCallSendAsync(t *testing.T) {
	a, _, _ := twoRuntimes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		sum, err := rAdd.Call(ctx, a.Ref("/b/counters/x"), i)
		if err != nil || sum != i*(i+1)/2 {
			t.Fatalf("call %d: %d, %v", i, sum, err)
		}
	}
	if err := rSend.Send(ctx, a.Ref("/b/counters/x"), 10); err != nil {
		t.Fatal(err)
	}
	if got, err := rGet.Call(ctx, a.Ref("/b/counters/x"), struct{}{}); err != nil || got != 16 {
		t.Fatalf("get: %d, %v", got, err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := rKick.Call(ctx, a.Ref("/a/caller"), i); err != nil {
			t.Fatal(err)
		}
	}
	var seen []int
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		seen, err = rSeen.Call(ctx, a.Ref("/a/caller"), struct{}{})
		if err == nil && len(seen) == 2 && max(seen[0], seen[1]) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("continuations saw %v, %v", seen, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, func() bool {
		n, err := rGet.Call(ctx, a.Ref("/b/counters/sent"), struct{}{})
		return err == nil && n == 3
	})
	// A journaled caller's Async: keyed by its origin, reply journaled.
	for i := 1; i <= 2; i++ {
		if _, err := rjKick.Call(ctx, a.Ref("/a/jcallers/x"), i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		seen, err := rjSeen.Call(ctx, a.Ref("/a/jcallers/x"), struct{}{})
		return err == nil && len(seen) == 2 && max(seen[0], seen[1]) == 3
	})
	// Forward with a deferred reply: b's answer goes to Relay's caller.
	if sum, err := rRelay.Call(ctx, a.Ref("/a/caller"), 100); err != nil || sum != 103 {
		t.Fatalf("relay: %d, %v; want 103", sum, err)
	}
}

// TestRemoteErrorsCrossTheWire: ErrBusy from a full remote inbox and a
// registered sentinel returned by a remote handler are still themselves
// (errors.Is, CodeOf) on the calling side.
func TestRemoteErrorsCrossTheWire(t *testing.T) {
	a, b, slow := twoRuntimes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := rFail.Call(ctx, a.Ref("/b/slow"), 1)
	if !errors.Is(err, errRemoteNope) || reactor.CodeOf(err) != reactor.CodeFailedPrecondition {
		t.Fatalf("sentinel: %v (code %v)", err, reactor.CodeOf(err))
	}
	if !strings.Contains(err.Error(), "rslow: remote: nope") {
		t.Fatalf("message lost: %q", err)
	}
	// One Hold runs (blocked), one waits in the inbox of 1: the next is busy.
	done := make(chan error, 2)
	go func() { _, err := rHold.Call(ctx, a.Ref("/b/slow"), 1); done <- err }()
	<-slow.entered
	go func() { _, err := rHold.Call(ctx, a.Ref("/b/slow"), 2); done <- err }()
	waitForStat(t, b, "/b/slow", func(s reactor.ServiceStats) bool { return s.InboxDepth == 1 })
	_, busy := rHold.TryCall(ctx, a.Ref("/b/slow"), 3)
	if !errors.Is(busy, reactor.ErrBusy) {
		t.Fatalf("full remote inbox: %v, want ErrBusy", busy)
	}
	close(slow.gate)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRemoteIdempotencyKey: a retry with the same key reaches the journaled
// receiver again and gets the first answer, applied once.
func TestRemoteIdempotencyKey(t *testing.T) {
	a, _, _ := twoRuntimes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kctx := reactor.WithIdempotencyKey(ctx, "retry-1")
	for range 3 {
		sum, err := rAdd.Call(kctx, a.Ref("/b/counters/k"), 5)
		if err != nil || sum != 5 {
			t.Fatalf("keyed call: %d, %v", sum, err)
		}
	}
	if _, err := rAdd.Call(kctx, a.Ref("/b/counters/k"), 6); !errors.Is(err, reactor.ErrKeyReused) {
		t.Fatalf("key reused for another request: %v", err)
	}
	if n, err := rGet.Call(ctx, a.Ref("/b/counters/k"), struct{}{}); err != nil || n != 5 {
		t.Fatalf("applied %d times (sum %d), %v", n/5, n, err)
	}
}

func FuzzDecodeError(f *testing.F) {
	f.Add(reactor.EncodeError(reactor.ErrBusy))
	f.Add(reactor.EncodeError(fmt.Errorf("x: %w", errRemoteNope)))
	f.Add([]byte(`{"code":"nope","id":"reactor.busy"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := reactor.DecodeError(b)
		if len(b) > 0 && err == nil {
			t.Fatal("non-empty input decoded to nil")
		}
		if err != nil {
			_ = err.Error()
			_ = reactor.CodeOf(err)
			again := reactor.DecodeError(reactor.EncodeError(err))
			if reactor.CodeOf(again) != reactor.CodeOf(err) {
				t.Fatalf("code changed: %v → %v", reactor.CodeOf(err), reactor.CodeOf(again))
			}
		}
	})
}

func TestReadOnlyMethod(t *testing.T) {
	if !reactor.ReadOnlyMethod(slotDump.Name()) {
		t.Fatalf("%s is ReadOnly", slotDump.Name())
	}
	if reactor.ReadOnlyMethod(rAdd.Name()) || reactor.ReadOnlyMethod("no.such.method") {
		t.Fatal("a modifying or unknown method reported ReadOnly")
	}
}
