package bench_test

import (
	"context"
	"testing"

	"github.com/reactorgo/reactor/bench/internal/benchutil"
)

// BenchmarkFireAndForget: one producer sends b.N messages to one service
// with an inbox of 1024; the clock stops when the service has handled all
// of them. ns/op is ns per message.
func BenchmarkFireAndForget(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelFireAndForget)
	b.Run("impl=reactor-sendwait", reactorSendWait)
	b.Run("impl=reactor-send-retry", reactorSendRetry)
}

// BenchmarkRoundTrip: sequential request/reply from outside the runtime;
// ns/op is ns per round trip.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=channel", benchutil.ChannelRoundTrip)
	b.Run("impl=reactor-call-background", reactorCall(context.Background()))
	b.Run("impl=reactor-call-cancellable", reactorCallCancellable)
}

// BenchmarkIdleActors: heap and stack bytes per idle keyed child holding a
// 16-byte state. ns/op is the time to create the population.
func BenchmarkIdleActors(b *testing.B) {
	b.Run("impl=reactor-children", func(b *testing.B) {
		benchutil.MeasureIdle(b, benchutil.IdlePopulation(1_000_000), reactorIdleChildren)
	})
	b.Run("impl=reactor-children-100k", func(b *testing.B) {
		benchutil.MeasureIdle(b, benchutil.IdlePopulation(100_000), reactorIdleChildren)
	})
}
