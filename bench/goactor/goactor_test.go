package goactor_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/reactorgo/reactor/bench/internal/benchutil"

	"github.com/vladopajic/go-actor/actor"
)

// go-actor is a goroutine per actor (a Worker whose DoWork is called in a
// loop) reading from a Mailbox. The default Mailbox is unbounded: a second
// goroutine moves messages from the send channel into a growing queue, so
// Send never blocks. With OptAsChan and OptCapacity(1024) the Mailbox is a
// plain buffered channel of 1024 (Send blocks when it is full): the
// bounded variant. There is no request/reply primitive: the documented way
// is a request carrying a reply channel, which is what RoundTrip does.

// sinkWorker counts messages until want, then closes done.
type sinkWorker struct {
	mbx  actor.Mailbox[int]
	n    int
	want int
	done chan struct{}
}

func (w *sinkWorker) DoWork(c actor.Context) actor.WorkerStatus {
	select {
	case <-c.Done():
		return actor.WorkerEnd
	case _, ok := <-w.mbx.ReceiveC():
		if !ok {
			return actor.WorkerEnd
		}
		w.n++
		if w.n == w.want {
			close(w.done)
		}
		return actor.WorkerContinue
	}
}

// start starts actors together and stops them when the benchmark ends.
func start(b *testing.B, actors ...actor.Actor) {
	a := actor.Combine(actors...).Build()
	a.Start()
	b.Cleanup(a.Stop)
}

func goactorSend(opts ...actor.MailboxOption) func(b *testing.B) {
	return func(b *testing.B) {
		w := &sinkWorker{mbx: actor.NewMailbox[int](opts...), want: b.N, done: make(chan struct{})}
		start(b, w.mbx, actor.New(w))
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := w.mbx.Send(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
		benchutil.WaitDone(b, w.done)
		b.StopTimer()
		benchutil.ReportRate(b, "msgs/s")
	}
}

type request struct {
	v     int
	reply chan int
}

// echoWorker answers each request on its reply channel.
type echoWorker struct{ mbx actor.Mailbox[request] }

func (w *echoWorker) DoWork(c actor.Context) actor.WorkerStatus {
	select {
	case <-c.Done():
		return actor.WorkerEnd
	case r, ok := <-w.mbx.ReceiveC():
		if !ok {
			return actor.WorkerEnd
		}
		r.reply <- r.v
		return actor.WorkerContinue
	}
}

func goactorRequest(opts ...actor.MailboxOption) func(b *testing.B) {
	return func(b *testing.B) {
		w := &echoWorker{mbx: actor.NewMailbox[request](opts...)}
		start(b, w.mbx, actor.New(w))
		ctx := context.Background()
		reply := make(chan int, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := w.mbx.Send(ctx, request{i, reply}); err != nil {
				b.Fatal(err)
			}
			if v := <-reply; v != i {
				b.Fatalf("reply %d to request %d", v, i)
			}
		}
		b.StopTimer()
		benchutil.ReportRate(b, "calls/s")
	}
}

// cellWorker is an idle go-actor actor with a 16-byte state.
type cellWorker struct {
	benchutil.State16
	mbx actor.Mailbox[int]
}

func (w *cellWorker) DoWork(c actor.Context) actor.WorkerStatus {
	select {
	case <-c.Done():
		return actor.WorkerEnd
	case <-w.mbx.ReceiveC():
		return actor.WorkerContinue
	}
}

// goactorIdle starts n actors, each with the default (unbounded) mailbox:
// two goroutines per actor (the worker and the mailbox's), both parked.
func goactorIdle(b *testing.B, n int) (any, func()) {
	var started atomic.Int64
	actors := make([]actor.Actor, n)
	for i := range n {
		w := &cellWorker{mbx: actor.NewMailbox[int]()}
		a := actor.Combine(w.mbx, actor.New(w, actor.OptOnStart(func(actor.Context) { started.Add(1) }))).Build()
		a.Start()
		actors[i] = a
	}
	benchutil.WaitCount(b, &started, n)
	return actors, func() {
		for _, a := range actors {
			a.Stop()
		}
	}
}

// BenchmarkFireAndForget: one producer, one actor, b.N messages, timed until
// the actor has handled all of them (ns/op = ns per message).
func BenchmarkFireAndForget(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelFireAndForget)
	b.Run("impl=goactor-bounded", goactorSend(actor.OptAsChan(), actor.OptCapacity(benchutil.InboxSize)))
	b.Run("impl=goactor-unbounded", goactorSend())
}

// BenchmarkRoundTrip: a request carrying a reply channel, sent to the
// actor's mailbox from outside, then the reply awaited.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelRoundTrip)
	b.Run("impl=goactor", goactorRequest(actor.OptAsChan(), actor.OptCapacity(benchutil.InboxSize)))
	b.Run("impl=goactor-unbounded", goactorRequest())
}

// BenchmarkIdleActors: heap and stack bytes per idle actor with a 16-byte
// state.
func BenchmarkIdleActors(b *testing.B) {
	b.Run("impl=goactor-100k", func(b *testing.B) {
		benchutil.MeasureIdle(b, benchutil.IdlePopulation(100_000), goactorIdle)
	})
}
