package goakt_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor/bench/internal/benchutil"

	"github.com/tochemey/goakt/v3/actor"
	"github.com/tochemey/goakt/v3/goaktpb"
	"github.com/tochemey/goakt/v3/log"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// GoAkt messages are protobuf messages: each one is a *wrapperspb.Int64Value
// allocated by the sender, as an application would.
//
// GoAkt's bounded mailbox (NewBoundedMailbox) does not push back: Tell on a
// full one puts the message in the dead letters and returns nil, so the
// producer cannot tell it was dropped and the consumer would never reach
// b.N. FireAndForget therefore uses the default mailbox, which is unbounded.

type akSink struct {
	n    int
	want int
	done chan struct{}
}

func (s *akSink) PreStart(*actor.Context) error { return nil }
func (s *akSink) PostStop(*actor.Context) error { return nil }

func (s *akSink) Receive(c *actor.ReceiveContext) {
	switch m := c.Message().(type) {
	case *wrapperspb.Int64Value:
		if s.want < 0 {
			c.Response(m)
			return
		}
		s.n++
		if s.n == s.want {
			close(s.done)
		}
	}
}

func newGoakt(b *testing.B) actor.ActorSystem {
	b.Helper()
	sys, err := actor.NewActorSystem("bench", actor.WithLogger(log.DiscardLogger))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := sys.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sys.Stop(ctx); err != nil {
			b.Errorf("stop actor system: %v", err)
		}
	})
	return sys
}

func akSpawnSink(b *testing.B, sys actor.ActorSystem, s *akSink) *actor.PID {
	pid, err := sys.Spawn(context.Background(), "sink", s, actor.WithLongLived())
	if err != nil {
		b.Fatal(err)
	}
	return pid
}

func goaktTell(b *testing.B) {
	sys := newGoakt(b)
	s := &akSink{want: b.N, done: make(chan struct{})}
	pid := akSpawnSink(b, sys, s)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := actor.Tell(ctx, pid, wrapperspb.Int64(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	benchutil.WaitDone(b, s.done)
	b.StopTimer()
	benchutil.ReportRate(b, "msgs/s")
}

func goaktAsk(b *testing.B) {
	sys := newGoakt(b)
	pid := akSpawnSink(b, sys, &akSink{want: -1})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := actor.Ask(ctx, pid, wrapperspb.Int64(int64(i)), benchutil.RequestTimeout)
		if err != nil {
			b.Fatal(err)
		}
		if r, ok := v.(*wrapperspb.Int64Value); !ok || r.GetValue() != int64(i) {
			b.Fatalf("reply %v to request %d", v, i)
		}
	}
	b.StopTimer()
	benchutil.ReportRate(b, "calls/s")
}

// akCell is an idle GoAkt actor with a 16-byte state.
type akCell struct {
	benchutil.State16
	started *atomic.Int64
}

func (c *akCell) PreStart(*actor.Context) error { return nil }
func (c *akCell) PostStop(*actor.Context) error { return nil }

func (c *akCell) Receive(ctx *actor.ReceiveContext) {
	if _, ok := ctx.Message().(*goaktpb.PostStart); ok {
		c.started.Add(1)
	}
}

// goaktIdle spawns n long-lived actors (no passivation) with the default
// mailbox; Spawn returns once the actor is started, and the PostStart
// message each one handles is waited for.
func goaktIdle(b *testing.B, n int) (any, func()) {
	sys := newGoakt(b)
	var started atomic.Int64
	ctx := context.Background()
	pids := make([]*actor.PID, n)
	for i := range n {
		pid, err := sys.Spawn(ctx, "cell-"+strconv.Itoa(i), &akCell{started: &started}, actor.WithLongLived())
		if err != nil {
			b.Fatal(err)
		}
		pids[i] = pid
	}
	benchutil.WaitCount(b, &started, n)
	return pids, func() {}
}

// BenchmarkFireAndForget: one producer, one actor, b.N messages, timed until
// the actor has handled all of them (ns/op = ns per message).
func BenchmarkFireAndForget(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelFireAndForget)
	b.Run("impl=goakt-unbounded", goaktTell)
}

// BenchmarkRoundTrip: sequential Ask from outside the actor system.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelRoundTrip)
	b.Run("impl=goakt", goaktAsk)
}

// BenchmarkIdleActors: heap and stack bytes per idle actor with a 16-byte
// state.
func BenchmarkIdleActors(b *testing.B) {
	b.Run("impl=goakt-100k", func(b *testing.B) {
		benchutil.MeasureIdle(b, benchutil.IdlePopulation(100_000), goaktIdle)
	})
}
