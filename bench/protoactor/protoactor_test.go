package protoactor_test

import (
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/reactorgo/reactor/bench/internal/benchutil"

	"github.com/asynkron/protoactor-go/actor"
)

type paSink struct {
	n    int
	want int
	done chan struct{}
}

func (s *paSink) Receive(c actor.Context) {
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

func newProtoactor(b *testing.B) *actor.ActorSystem {
	b.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	b.Cleanup(sys.Shutdown)
	return sys
}

// protoactorSend: fire-and-forget to an actor with a mailbox. Bounded(1024)
// is the same capacity as the channel: a full mailbox makes Send spin until
// there is room (back pressure); the library's default mailbox is unbounded.
func protoactorSend(mailbox actor.MailboxProducer) func(b *testing.B) {
	return func(b *testing.B) {
		sys := newProtoactor(b)
		s := &paSink{want: b.N, done: make(chan struct{})}
		opts := []actor.PropsOption{}
		if mailbox != nil {
			opts = append(opts, actor.WithMailbox(mailbox))
		}
		pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return s }, opts...))
		root := sys.Root
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			root.Send(pid, i)
		}
		benchutil.WaitDone(b, s.done)
		b.StopTimer()
		benchutil.ReportRate(b, "msgs/s")
	}
}

func protoactorRequest(b *testing.B) {
	sys := newProtoactor(b)
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &paSink{want: -1} }))
	root := sys.Root
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := root.RequestFuture(pid, i, benchutil.RequestTimeout).Result()
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

// paCell is an idle protoactor actor with a 16-byte state.
type paCell struct {
	benchutil.State16
	started *atomic.Int64
}

func (c *paCell) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		c.started.Add(1)
	}
}

// protoactorIdle spawns n actors with the default (unbounded) mailbox and
// waits until all have started.
func protoactorIdle(b *testing.B, n int) (any, func()) {
	sys := newProtoactor(b)
	var started atomic.Int64
	props := actor.PropsFromProducer(func() actor.Actor { return &paCell{started: &started} })
	pids := make([]*actor.PID, n)
	for i := range n {
		pids[i] = sys.Root.Spawn(props)
	}
	benchutil.WaitCount(b, &started, n)
	return sys, func() {}
}

// BenchmarkFireAndForget: one producer, one actor, b.N messages, timed until
// the actor has handled all of them (ns/op = ns per message).
func BenchmarkFireAndForget(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelFireAndForget)
	b.Run("impl=protoactor-bounded", protoactorSend(actor.Bounded(benchutil.InboxSize)))
	b.Run("impl=protoactor-unbounded", protoactorSend(nil))
}

// BenchmarkRoundTrip: sequential RequestFuture/Result from outside the
// actor system.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelRoundTrip)
	b.Run("impl=protoactor", protoactorRequest)
}

// BenchmarkIdleActors: heap and stack bytes per idle actor with a 16-byte
// state.
func BenchmarkIdleActors(b *testing.B) {
	b.Run("impl=protoactor-100k", func(b *testing.B) {
		benchutil.MeasureIdle(b, benchutil.IdlePopulation(100_000), protoactorIdle)
	})
}
