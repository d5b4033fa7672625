package bench_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"testing"

	"github.com/reactorgo/reactor/bench/internal/benchutil"
	"time"

	"github.com/reactorgo/reactor"
)

// sink is the reactor service of FireAndForget and RoundTrip.
type sink struct {
	n    int
	want int
	done chan struct{}
}

func (s *sink) Put(_ *reactor.Ctx, _ int) (struct{}, error) {
	s.n++
	if s.n == s.want {
		close(s.done)
	}
	return struct{}{}, nil
}

func (s *sink) Echo(_ *reactor.Ctx, v int) (int, error) { return v, nil }

var (
	sinkPut  = reactor.Method("bench.compare.sink.put", (*sink).Put)
	sinkEcho = reactor.Method("bench.compare.sink.echo", (*sink).Echo, reactor.ReadOnly())
)

// newReactor starts a runtime with the given registrations and closes it
// when the benchmark ends.
func newReactor(b *testing.B, register func(rt *reactor.Runtime) error) *reactor.Runtime {
	b.Helper()
	rt, err := reactor.New(reactor.Config{InboxSize: benchutil.InboxSize})
	if err != nil {
		b.Fatal(err)
	}
	if err := register(rt); err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			b.Errorf("close runtime: %v", err)
		}
	})
	return rt
}

func newSink(b *testing.B, want int) (*sink, reactor.Ref) {
	s := &sink{want: want, done: make(chan struct{})}
	var ref reactor.Ref
	newReactor(b, func(rt *reactor.Runtime) (err error) {
		ref, err = reactor.Register(rt, "/sink", s, reactor.InboxSize(benchutil.InboxSize))
		return err
	})
	return s, ref
}

// reactorSendWait: fire-and-forget with back pressure, like a channel send.
func reactorSendWait(b *testing.B) {
	s, ref := newSink(b, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := sinkPut.SendWait(ctx, ref, i); err != nil {
			b.Fatal(err)
		}
	}
	benchutil.WaitDone(b, s.done)
	b.StopTimer()
	benchutil.ReportRate(b, "msgs/s")
}

// reactorSendRetry: Send never blocks; on ErrBusy the producer yields and
// retries, as a well-behaved client of a full service would.
func reactorSendRetry(b *testing.B) {
	s, ref := newSink(b, b.N)
	ctx := context.Background()
	busy := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for {
			err := sinkPut.Send(ctx, ref, i)
			if err == nil {
				break
			}
			if !errors.Is(err, reactor.ErrBusy) {
				b.Fatal(err)
			}
			busy++
			runtime.Gosched()
		}
	}
	benchutil.WaitDone(b, s.done)
	b.StopTimer()
	benchutil.ReportRate(b, "msgs/s")
	b.ReportMetric(float64(busy)/float64(b.N), "busy/msg")
}

// reactorCall: blocking call round trip with ctx. context.Background lets
// the runtime run an idle service's turn on the caller's goroutine; a
// cancellable context always goes through the inbox and a worker.
func reactorCall(ctx context.Context) func(b *testing.B) {
	return func(b *testing.B) {
		_, ref := newSink(b, -1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			v, err := sinkEcho.Call(ctx, ref, i)
			if err != nil {
				b.Fatal(err)
			}
			if v != i {
				b.Fatalf("reply %d to request %d", v, i)
			}
		}
		b.StopTimer()
		benchutil.ReportRate(b, "calls/s")
	}
}

func reactorCallCancellable(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reactorCall(ctx)(b)
}

// caller keeps window async calls to the sink in flight; each continuation,
// on the caller's turn, issues the next call.
type caller struct {
	sink      reactor.Ref
	left      int
	completed int
	total     int
	failed    error
	done      chan struct{}
}

func (c *caller) Go(ctx *reactor.Ctx, window int) (struct{}, error) {
	for range window {
		c.next(ctx)
	}
	return struct{}{}, nil
}

func (c *caller) next(ctx *reactor.Ctx) {
	if c.left == 0 {
		return
	}
	c.left--
	want := c.left
	sinkEcho.Async(ctx, c.sink, want, func(ctx *reactor.Ctx, got int, err error) {
		if err == nil && got != want {
			err = errors.New("bench: async reply does not match its request")
		}
		if err != nil && c.failed == nil {
			c.failed = err
		}
		c.completed++
		if c.completed == c.total {
			close(c.done)
			return
		}
		c.next(ctx)
	})
}

var callerGo = reactor.Method("bench.compare.caller.go", (*caller).Go)

// BenchmarkAsyncCall: service-to-service calls with continuations on the
// caller's turn, 256 in flight (reactor only; the libraries' equivalents
// differ too much in semantics to compare fairly).
func BenchmarkAsyncCall(b *testing.B) {
	b.Run("impl=reactor", func(b *testing.B) {
		c := &caller{left: b.N, total: b.N, done: make(chan struct{})}
		var ref reactor.Ref
		newReactor(b, func(rt *reactor.Runtime) error {
			var err error
			if c.sink, err = reactor.Register(rt, "/sink", &sink{}); err != nil {
				return err
			}
			ref, err = reactor.Register(rt, "/caller", c)
			return err
		})
		b.ReportAllocs()
		b.ResetTimer()
		if err := callerGo.Send(context.Background(), ref, 256); err != nil {
			b.Fatal(err)
		}
		benchutil.WaitDone(b, c.done)
		b.StopTimer()
		if c.failed != nil {
			b.Fatal(c.failed)
		}
		benchutil.ReportRate(b, "calls/s")
	})
}

// cell is a keyed child with a 16-byte state.
type cell benchutil.State16

func (c *cell) Touch(_ *reactor.Ctx, _ struct{}) (struct{}, error) { return struct{}{}, nil }

var cellTouch = reactor.Method("bench.compare.cell.touch", (*cell).Touch, reactor.ReadOnly())

// reactorIdleChildren creates n keyed children (one message each) and waits
// until every one has handled its message and gone idle.
func reactorIdleChildren(b *testing.B, n int) (any, func()) {
	rt, err := reactor.New(reactor.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(rt, "/cells", func(string) *cell { return &cell{} }, reactor.MaxChildren(n+1)); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		b.Fatal(err)
	}
	parent := rt.Ref("/cells")
	for i := 0; i < n; i++ {
		if err := cellTouch.SendWait(ctx, parent.Child(strconv.Itoa(i)), struct{}{}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := cellStats(rt)
		if st.Handled == uint64(n) && st.InboxDepth == 0 {
			if st.Resident != n {
				b.Fatalf("%d children resident, want %d", st.Resident, n)
			}
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("children not idle after 2 minutes: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rt, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			b.Errorf("close runtime: %v", err)
		}
	}
}

func cellStats(rt *reactor.Runtime) reactor.ServiceStats {
	for _, s := range rt.Stats() {
		if s.Addr == "/cells" {
			return s
		}
	}
	return reactor.ServiceStats{}
}
