package reactor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/reactortest"
)

// Counter is the test service: it checks that no two of its handlers overlap.
type Counter struct {
	N       int
	Log     []int
	inside  atomic.Int32
	overlap atomic.Int32
	Batches int
	block   chan struct{}
	started chan struct{}
}

func (c *Counter) enter() func() {
	if c.inside.Add(1) != 1 {
		c.overlap.Add(1)
	}
	return func() { c.inside.Add(-1) }
}

func (c *Counter) Add(_ *reactor.Ctx, n int) (int, error) {
	defer c.enter()()
	c.N += n
	return c.N, nil
}

func (c *Counter) Append(_ *reactor.Ctx, v int) (struct{}, error) {
	defer c.enter()()
	c.Log = append(c.Log, v)
	return struct{}{}, nil
}

func (c *Counter) Get(_ *reactor.Ctx, _ struct{}) (int, error) { return c.N, nil }

func (c *Counter) Block(_ *reactor.Ctx, _ struct{}) (struct{}, error) {
	c.started <- struct{}{}
	<-c.block
	return struct{}{}, nil
}

func (c *Counter) Boom(_ *reactor.Ctx, msg string) (int, error) { panic(msg) }

func (c *Counter) Fail(_ *reactor.Ctx, msg string) (int, error) { return 0, errors.New(msg) }

func (c *Counter) Ptr(_ *reactor.Ctx, p *int) (int, error) { return *p, nil }

func (c *Counter) BeforeBatch(*reactor.Ctx) { c.Batches++ }

var (
	add     = reactor.Method("test.counter.add", (*Counter).Add)
	appendV = reactor.Method("test.counter.append", (*Counter).Append)
	get     = reactor.Method("test.counter.get", (*Counter).Get, reactor.ReadOnly())
	block   = reactor.Method("test.counter.block", (*Counter).Block)
	boom    = reactor.Method("test.counter.boom", (*Counter).Boom)
	fail    = reactor.Method("test.counter.fail", (*Counter).Fail)
	ptr     = reactor.Method("test.counter.ptr", (*Counter).Ptr)
)

type Other struct{}

var other = reactor.Method("test.other.noop", func(*Other, *reactor.Ctx, int) (int, error) { return 0, nil })

func newRuntime(t testing.TB, cfg reactor.Config) *reactor.Runtime {
	t.Helper()
	if _, bench := t.(*testing.B); cfg.CheckShared == nil && !bench {
		// Tests check that no handler hands out its state; benchmarks
		// measure the runtime without the checker's reflection walk.
		cfg.CheckShared = reactortest.NoAliasing(t)
	}
	rt, err := reactor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return rt
}

func start(t testing.TB, rt *reactor.Runtime) {
	t.Helper()
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func newCounter() *Counter {
	return &Counter{block: make(chan struct{}), started: make(chan struct{}, 16)}
}

func TestCallAndSend(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	ref, err := reactor.Register(rt, "/counter", newCounter())
	if err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		if err := add.Send(ctx, ref, 1); err != nil {
			t.Fatal(err)
		}
	}
	n, err := add.Call(ctx, ref, 5)
	if err != nil || n != 15 {
		t.Fatalf("Call = %d, %v; want 15", n, err)
	}
	if n, _ := get.Call(ctx, rt.Ref("/counter"), struct{}{}); n != 15 {
		t.Fatalf("get = %d", n)
	}
}

func TestOneTurnAtATimeAndPerSenderFIFO(t *testing.T) {
	rt := newRuntime(t, reactor.Config{InboxSize: 64, BatchSize: 7})
	c := newCounter()
	ref, _ := reactor.Register(rt, "/c", c)
	start(t, rt)
	const senders, each = 8, 2000
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := appendV.SendWait(context.Background(), ref, s*each+i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := get.Call(context.Background(), ref, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if c.overlap.Load() != 0 {
		t.Fatalf("%d overlapping handler runs", c.overlap.Load())
	}
	if len(c.Log) != senders*each {
		t.Fatalf("handled %d, want %d", len(c.Log), senders*each)
	}
	last := make([]int, senders)
	for i := range last {
		last[i] = -1
	}
	for _, v := range c.Log {
		s, i := v/each, v%each
		if i != last[s]+1 {
			t.Fatalf("sender %d: got %d after %d", s, i, last[s])
		}
		last[s] = i
	}
	if c.Batches < senders*each/7 {
		t.Fatalf("BeforeBatch ran %d times for %d messages with batch 7", c.Batches, len(c.Log))
	}
}

func TestBusyAndDeadlines(t *testing.T) {
	rt := newRuntime(t, reactor.Config{InboxSize: 4})
	c := newCounter()
	ref, _ := reactor.Register(rt, "/c", c)
	start(t, rt)
	ctx := context.Background()
	if err := block.Send(ctx, ref, struct{}{}); err != nil {
		t.Fatal(err)
	}
	<-c.started // the handler now holds the turn; the inbox is empty
	for i := range 4 {
		if err := add.Send(ctx, ref, 1); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	err := add.Send(ctx, ref, 1)
	if !errors.Is(err, reactor.ErrBusy) {
		t.Fatalf("send to full inbox: %v, want ErrBusy", err)
	}
	// A call waiting for inbox space honours its deadline.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := add.Call(tctx, ref, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call to full inbox: %v, want deadline", err)
	}
	// A call waiting for space gets in once the handler returns.
	done := make(chan error, 1)
	go func() { _, err := add.Call(ctx, ref, 100); done <- err }()
	time.Sleep(5 * time.Millisecond)
	close(c.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, _ := get.Call(ctx, ref, struct{}{}); n != 104 {
		t.Fatalf("N = %d, want 104", n)
	}
	stats := rt.Stats()
	if stats[0].Busy < 2 {
		t.Fatalf("busy counter = %d", stats[0].Busy)
	}
}

func TestCallDeadlineWhileHandling(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	c := newCounter()
	ref, _ := reactor.Register(rt, "/c", c)
	start(t, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := block.Call(ctx, ref, struct{}{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	close(c.block)
	if n, err := add.Call(context.Background(), ref, 1); err != nil || n != 1 {
		t.Fatalf("after abandoned call: %d %v", n, err)
	}
}

func TestErrors(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	ref, _ := reactor.Register(rt, "/c", newCounter())
	if _, err := reactor.Register(rt, "/c", newCounter()); !errors.Is(err, reactor.ErrExists) {
		t.Fatalf("duplicate register: %v", err)
	}
	if _, err := reactor.Register(rt, "bad", newCounter()); err == nil {
		t.Fatal("invalid address accepted")
	}
	start(t, rt)
	ctx := context.Background()
	if _, err := add.Call(ctx, rt.Ref("/nope"), 1); !errors.Is(err, reactor.ErrNoService) {
		t.Fatalf("unknown address: %v", err)
	}
	if _, err := other.Call(ctx, ref, 1); !errors.Is(err, reactor.ErrNoMethod) {
		t.Fatalf("wrong method: %v", err)
	}
	if _, err := ptr.Call(ctx, ref, nil); !errors.Is(err, reactor.ErrNilRequest) {
		t.Fatalf("nil request: %v", err)
	}
	if _, err := add.Call(ctx, reactor.Ref{}, 1); !errors.Is(err, reactor.ErrNoService) {
		t.Fatalf("zero ref: %v", err)
	}
	if _, err := fail.Call(ctx, ref, "nope"); err == nil || err.Error() != "nope" {
		t.Fatalf("handler error: %v", err)
	}
	_, err := boom.Call(ctx, ref, "kaboom")
	var pe *reactor.PanicError
	if !errors.Is(err, reactor.ErrPanic) || !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
		t.Fatalf("panic: %v", err)
	}
	if n, err := add.Call(ctx, ref, 2); err != nil || n != 2 {
		t.Fatalf("service after panic: %d %v", n, err)
	}
}

func TestCloseFailsPendingAndIsIdempotent(t *testing.T) {
	rt, _ := reactor.New(reactor.Config{})
	c := newCounter()
	ref, _ := reactor.Register(rt, "/c", c)
	start(t, rt)
	ctx := context.Background()
	_ = block.Send(ctx, ref, struct{}{})
	<-c.started
	res := make(chan error, 1)
	go func() { _, err := add.Call(ctx, ref, 1); res <- err }()
	time.Sleep(5 * time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	go func() { time.Sleep(60 * time.Millisecond); close(c.block) }()
	if err := rt.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a stuck handler: %v", err)
	}
	if err := <-res; !errors.Is(err, reactor.ErrClosed) {
		t.Fatalf("pending call after close: %v", err)
	}
	if err := rt.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := add.Send(ctx, ref, 1); !errors.Is(err, reactor.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// Pinger calls Counter asynchronously and records where its continuation ran.
type Pinger struct {
	Got     []int
	inTurn  atomic.Bool
	Wrong   int
	Pending int
	counter reactor.Ref
}

func (p *Pinger) Ping(c *reactor.Ctx, n int) (struct{}, error) {
	p.inTurn.Store(true)
	defer p.inTurn.Store(false)
	p.Pending++
	add.Async(c, p.counter, n, func(c *reactor.Ctx, v int, err error) {
		if !p.inTurn.CompareAndSwap(false, true) {
			p.Wrong++
		}
		defer p.inTurn.Store(false)
		if c.Self().Addr() != "/pinger" {
			p.Wrong++
		}
		p.Pending--
		p.Got = append(p.Got, v)
	})
	return struct{}{}, nil
}

func (p *Pinger) Count(_ *reactor.Ctx, _ struct{}) (int, error) { return len(p.Got), nil }

var (
	ping      = reactor.Method("test.pinger.ping", (*Pinger).Ping)
	pingCount = reactor.Method("test.pinger.count", (*Pinger).Count, reactor.ReadOnly())
)

func TestAsyncContinuationRunsInCallersTurn(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	cref, _ := reactor.Register(rt, "/counter", newCounter())
	p := &Pinger{counter: cref}
	ref, _ := reactor.Register(rt, "/pinger", p)
	start(t, rt)
	ctx := context.Background()
	for i := range 500 {
		if err := ping.SendWait(ctx, ref, i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, func() bool { n, _ := pingCount.Call(ctx, ref, struct{}{}); return n == 500 })
	if p.Wrong != 0 || p.Pending != 0 {
		t.Fatalf("continuations outside the caller's turn: %d, pending %d", p.Wrong, p.Pending)
	}
	if p.Got[len(p.Got)-1] != 499*500/2 {
		t.Fatalf("last sum %d", p.Got[len(p.Got)-1])
	}
}

type slogLogger = slog.Logger

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
