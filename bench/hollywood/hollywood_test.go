package hollywood_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/reactorgo/reactor/bench/internal/benchutil"
	"time"

	"github.com/anthdm/hollywood/actor"
)

// hollywood's inbox is a ring buffer that grows without bound when full
// (WithInboxSize only sets its initial size): Send never blocks and never
// fails, so there is no back pressure to match the channel's.

type hwSink struct {
	n    int
	want int
	done chan struct{}
}

func (s *hwSink) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case int:
		if s.want < 0 {
			c.Respond(m)
			return
		}
		s.n++
		if s.n == s.want {
			close(s.done)
		}
	}
}

func newHollywood(b *testing.B) *actor.Engine {
	b.Helper()
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func hwSpawnSink(b *testing.B, e *actor.Engine, s *hwSink) *actor.PID {
	pid := e.Spawn(func() actor.Receiver { return s }, "sink", actor.WithInboxSize(benchutil.InboxSize))
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		<-e.PoisonCtx(ctx, pid).Done()
	})
	return pid
}

func hollywoodSend(b *testing.B) {
	e := newHollywood(b)
	s := &hwSink{want: b.N, done: make(chan struct{})}
	pid := hwSpawnSink(b, e, s)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Send(pid, i)
	}
	benchutil.WaitDone(b, s.done)
	b.StopTimer()
	benchutil.ReportRate(b, "msgs/s")
}

func hollywoodRequest(b *testing.B) {
	e := newHollywood(b)
	pid := hwSpawnSink(b, e, &hwSink{want: -1})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := e.Request(pid, i, benchutil.RequestTimeout).Result()
		if err != nil {
			b.Fatal(err)
		}
		if v != i {
			b.Fatalf("reply %v to request %d", v, i)
		}
	}
	b.StopTimer()
	benchutil.ReportRate(b, "calls/s")
}

// hwCell is an idle hollywood actor with a 16-byte state.
type hwCell struct {
	benchutil.State16
	started *atomic.Int64
}

func (c *hwCell) Receive(ctx *actor.Context) {
	if _, ok := ctx.Message().(actor.Started); ok {
		c.started.Add(1)
	}
}

// hollywoodIdle spawns n actors with the smallest inbox (4 slots; the
// default of 1024 slots would cost 24 KiB per actor) and waits until all
// have started.
func hollywoodIdle(b *testing.B, n int) (any, func()) {
	e := newHollywood(b)
	var started atomic.Int64
	pids := make([]*actor.PID, n)
	for i := range n {
		pids[i] = e.Spawn(func() actor.Receiver { return &hwCell{started: &started} }, "cell",
			actor.WithID(strconv.Itoa(i)), actor.WithInboxSize(4))
	}
	benchutil.WaitCount(b, &started, n)
	return e, func() {}
}

// BenchmarkFireAndForget: one producer, one actor, b.N messages, timed until
// the actor has handled all of them (ns/op = ns per message).
func BenchmarkFireAndForget(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelFireAndForget)
	b.Run("impl=hollywood", hollywoodSend)
}

// BenchmarkRoundTrip: sequential Request/Result from outside the engine.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelRoundTrip)
	b.Run("impl=hollywood", hollywoodRequest)
}

// BenchmarkIdleActors: heap and stack bytes per idle actor with a 16-byte
// state.
func BenchmarkIdleActors(b *testing.B) {
	b.Run("impl=hollywood-100k", func(b *testing.B) {
		benchutil.MeasureIdle(b, benchutil.IdlePopulation(100_000), hollywoodIdle)
	})
}
