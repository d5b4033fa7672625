// Package benchutil holds what the comparison benchmarks share: the plain Go
// channel baselines, the workload constants and the idle-memory probe.
package benchutil

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// InboxSize is the inbox capacity every fire-and-forget implementation gets.
const InboxSize = 1024

// RequestTimeout bounds each library request/reply; it never fires in a
// healthy run.
const RequestTimeout = 10 * time.Second

// State16 is the 16-byte state of the idle-actor benchmarks.
type State16 struct{ A, B int64 }

// ReportRate adds msgs/s (or another per-second unit) to a benchmark.
func ReportRate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// WaitDone waits for done, failing the benchmark instead of hanging if the
// consumer never finishes.
func WaitDone(b *testing.B, done <-chan struct{}) {
	b.Helper()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("consumer did not handle every message within 2 minutes")
	}
}

// MemInUse is the heap plus goroutine stacks after a full collection: what
// a population of idle actors costs, whether it keeps goroutines or not.
func MemInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// settledMemInUse is MemInUse once memory stops shrinking: a previous
// population whose library shuts down asynchronously must be gone before
// the "before" reading, or its release would be credited to the new one.
func settledMemInUse() uint64 {
	prev := MemInUse()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		cur := MemInUse()
		if cur >= prev-prev/1000 {
			return cur
		}
		prev = cur
	}
	return prev
}

// waitGoroutines waits until at most n goroutines are left: libraries that
// start a goroutine per actor to handle its first messages must have let
// them exit before the population counts as idle.
func waitGoroutines(b *testing.B, n int) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			b.Logf("%d goroutines still running, want at most %d: counting their stacks", runtime.NumGoroutine(), n)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// IdlePopulation sizes for the idle-actor benchmarks: the reactor target is
// stated for 1M children; the libraries are measured at 100K (bytes per
// actor do not depend on the count) to keep the run short. -short divides
// both by 10.
func IdlePopulation(full int) int {
	if testing.Short() {
		return full / 10
	}
	return full
}

// MeasureIdle runs spawn (which must leave n idle actors resident and
// return something that keeps them reachable) b.N times and reports the
// bytes per actor and above the 16-byte state.
func MeasureIdle(b *testing.B, n int, spawn func(b *testing.B, n int) (keep any, release func())) {
	b.ReportAllocs()
	var total float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		goroutines := runtime.NumGoroutine()
		before := settledMemInUse()
		b.StartTimer()
		keep, release := spawn(b, n)
		b.StopTimer()
		waitGoroutines(b, goroutines+64)
		after := settledMemInUse()
		runtime.KeepAlive(keep)
		total += (float64(after) - float64(before)) / float64(n)
		release()
		b.StartTimer()
	}
	per := total / float64(b.N)
	b.ReportMetric(per, "bytes/actor")
	b.ReportMetric(per-16, "bytes/actor-over-state")
	b.ReportMetric(float64(n), "actors")
}

// ChannelFireAndForget is the baseline of FireAndForget: a buffered channel
// of capacity 1024 drained by one consumer goroutine.
func ChannelFireAndForget(b *testing.B) {
	ch := make(chan int, InboxSize)
	done := make(chan struct{})
	want := b.N
	go func() {
		n := 0
		for range ch {
			n++
			if n == want {
				close(done)
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch <- i
	}
	WaitDone(b, done)
	b.StopTimer()
	close(ch)
	ReportRate(b, "msgs/s")
}

// ChannelRoundTrip is the baseline of RoundTrip: a request channel to a
// server goroutine and a reply channel back.
func ChannelRoundTrip(b *testing.B) {
	type req struct {
		v     int
		reply chan int
	}
	reqs := make(chan req, InboxSize)
	go func() {
		for r := range reqs {
			r.reply <- r.v
		}
	}()
	defer close(reqs)
	reply := make(chan int, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reqs <- req{i, reply}
		if v := <-reply; v != i {
			b.Fatalf("reply %d to request %d", v, i)
		}
	}
	b.StopTimer()
	ReportRate(b, "calls/s")
}

// WaitCount waits until c reaches n, or fails after 2 minutes.
func WaitCount(b *testing.B, c *atomic.Int64, n int) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for c.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d actors started after 2 minutes", c.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
