package reactor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
)

// Sink counts messages; the fire-and-forget benchmark's target.
type Sink struct {
	N    int
	done chan struct{}
	want int
}

func (s *Sink) Put(_ *reactor.Ctx, v int) (struct{}, error) {
	s.N++
	if s.N == s.want {
		close(s.done)
	}
	return struct{}{}, nil
}

func (s *Sink) Echo(_ *reactor.Ctx, v int) (int, error) { return v, nil }

var (
	sinkPut  = reactor.Method("bench.sink.put", (*Sink).Put)
	sinkEcho = reactor.Method("bench.sink.echo", (*Sink).Echo, reactor.ReadOnly())
)

// BenchmarkChannelSend is the baseline for BenchmarkSend: one producer, one
// consumer goroutine, a buffered channel of the same capacity (1024).
func BenchmarkChannelSend(b *testing.B) {
	ch := make(chan int, 1024)
	done := make(chan struct{})
	go func() {
		n := 0
		for range ch {
			n++
		}
		_ = n
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch <- i
	}
	close(ch)
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSend: one producer, one service, inbox 1024, fire-and-forget with
// back pressure (SendWait blocks on a full inbox, as a channel send does).
func BenchmarkSend(b *testing.B) {
	rt := newRuntime(b, reactor.Config{InboxSize: 1024})
	s := &Sink{done: make(chan struct{}), want: b.N}
	ref, _ := reactor.Register(rt, "/sink", s)
	start(b, rt)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := sinkPut.SendWait(ctx, ref, i); err != nil {
			b.Fatal(err)
		}
	}
	<-s.done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkChannelRoundTrip is the baseline for BenchmarkCall: a request
// channel to a server goroutine and a reply channel back.
func BenchmarkChannelRoundTrip(b *testing.B) {
	type req struct {
		v     int
		reply chan int
	}
	reqs := make(chan req, 1024)
	go func() {
		for r := range reqs {
			r.reply <- r.v
		}
	}()
	reply := make(chan int, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reqs <- req{i, reply}
		<-reply
	}
	b.StopTimer()
	close(reqs)
}

// BenchmarkCall: a blocking call from outside the runtime and its reply.
func BenchmarkCall(b *testing.B) {
	rt := newRuntime(b, reactor.Config{})
	ref, _ := reactor.Register(rt, "/sink", &Sink{})
	start(b, rt)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := sinkEcho.Call(ctx, ref, i); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallCancellable: the same with a context that can end, so the
// message always goes through the inbox and a worker goroutine.
func BenchmarkCallCancellable(b *testing.B) {
	rt := newRuntime(b, reactor.Config{})
	ref, _ := reactor.Register(rt, "/sink", &Sink{})
	start(b, rt)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := sinkEcho.Call(ctx, ref, i); err != nil {
			b.Fatal(err)
		}
	}
}

// Caller keeps `window` async calls to the Sink in flight; each continuation
// (on the Caller's turn) issues the next call.
type Caller struct {
	sink      reactor.Ref
	left      int
	done      chan struct{}
	completed int
	total     int
}

func (c *Caller) Go(ctx *reactor.Ctx, window int) (struct{}, error) {
	for range window {
		c.next(ctx)
	}
	return struct{}{}, nil
}

func (c *Caller) next(ctx *reactor.Ctx) {
	if c.left == 0 {
		return
	}
	c.left--
	sinkEcho.Async(ctx, c.sink, c.left, func(ctx *reactor.Ctx, _ int, err error) {
		if err != nil {
			panic(err)
		}
		c.completed++
		if c.completed == c.total {
			close(c.done)
			return
		}
		c.next(ctx)
	})
}

var callerGo = reactor.Method("bench.caller.go", (*Caller).Go)

// BenchmarkAsyncCall: service-to-service calls with continuations, 256 in flight.
func BenchmarkAsyncCall(b *testing.B) {
	rt := newRuntime(b, reactor.Config{})
	sink, _ := reactor.Register(rt, "/sink", &Sink{})
	c := &Caller{sink: sink, left: b.N, total: b.N, done: make(chan struct{})}
	ref, _ := reactor.Register(rt, "/caller", c)
	start(b, rt)
	b.ReportAllocs()
	b.ResetTimer()
	if err := callerGo.Send(context.Background(), ref, 256); err != nil {
		b.Fatal(err)
	}
	<-c.done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// Cell is a child with a 16-byte state.
type Cell struct{ A, B int64 }

func (c *Cell) Touch(_ *reactor.Ctx, _ struct{}) (struct{}, error) { return struct{}{}, nil }

var touch = reactor.Method("bench.cell.touch", (*Cell).Touch, reactor.ReadOnly())

// BenchmarkIdleChildren measures the memory that resident idle children
// cost beyond their 16-byte state (run with -benchtime=1000000x for the 1M
// figure).
func BenchmarkIdleChildren(b *testing.B) {
	rt := newRuntime(b, reactor.Config{})
	reactor.RegisterChildren(rt, "/cells", func(string) *Cell { return &Cell{} }, reactor.MaxChildren(b.N+1))
	start(b, rt)
	ctx := context.Background()
	parent := rt.Ref("/cells")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := touch.SendWait(ctx, parent.Child(strconv.Itoa(i)), struct{}{}); err != nil {
			b.Fatal(err)
		}
	}
	for stat(rt, "/cells").InboxDepth > 0 {
		runtime.Gosched()
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	perChild := float64(after.HeapAlloc-before.HeapAlloc) / float64(b.N)
	b.ReportMetric(perChild, "bytes/child")
	b.ReportMetric(perChild-16, "bytes/child-over-state")
	runtime.KeepAlive(rt)
}

// Ledger is a journaled service for the durable benchmarks.
type Ledger struct{ N int64 }

// Payload is a 100-byte request that encodes as itself (BinaryMarshaler).
type Payload [100]byte

func (p Payload) MarshalBinary() ([]byte, error) { return p[:], nil }

func (p *Payload) UnmarshalBinary(b []byte) error {
	if len(b) != len(p) {
		return fmt.Errorf("payload: %d bytes", len(b))
	}
	copy(p[:], b)
	return nil
}

func (l *Ledger) Add(_ *reactor.Ctx, p Payload) (int64, error) { l.N++; return l.N, nil }

var ledgerAdd = reactor.Method("bench.ledger.add", (*Ledger).Add)

func openBenchLedger(b *testing.B, services int) (*reactor.Runtime, []reactor.Ref) {
	dir := b.TempDir()
	j, err := journal.Open(context.Background(), journal.Options{Dir: filepath.Join(dir, "journal"), Logger: discardLogger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
	if err != nil {
		b.Fatal(err)
	}
	rt := newRuntime(b, reactor.Config{Journal: j, Store: store, Logger: discardLogger})
	if _, err := reactor.RegisterChildren(rt, "/ledgers", func(string) *Ledger { return &Ledger{} }, reactor.Journaled()); err != nil {
		b.Fatal(err)
	}
	start(b, rt)
	refs := make([]reactor.Ref, services)
	for i := range refs {
		refs[i] = rt.Ref("/ledgers/" + strconv.Itoa(i))
	}
	return rt, refs
}

// BenchmarkJournaledSend: 64 producers, each with up to 64 durable sends in
// flight (4096 goroutines blocked in Send until their fsync), 100-byte
// requests, Sync durability, to 64 journaled services.
func BenchmarkJournaledSend(b *testing.B) {
	_, refs := openBenchLedger(b, 64)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for p := range 64 * 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var payload Payload
			for next.Add(1) <= int64(b.N) {
				if err := ledgerAdd.Send(ctx, refs[p%64], payload); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// Producer keeps window durable Async calls to its ledger in flight; each
// continuation (on the producer's turn) issues the next while the shared
// budget lasts. No goroutine blocks per message.
type Producer struct {
	ledger  reactor.Ref
	budget  *atomic.Int64
	done    *sync.WaitGroup
	payload Payload
}

func (p *Producer) Go(c *reactor.Ctx, window int) (struct{}, error) {
	for range window {
		p.next(c)
	}
	return struct{}{}, nil
}

func (p *Producer) next(c *reactor.Ctx) {
	if p.budget.Add(-1) < 0 {
		return
	}
	ledgerAdd.Async(c, p.ledger, p.payload, func(c *reactor.Ctx, _ int64, err error) {
		if err != nil {
			panic(err)
		}
		p.done.Done()
		p.next(c)
	})
}

var producerGo = reactor.Method("bench.producer.go", (*Producer).Go)

// BenchmarkJournaledAsync: BenchmarkJournaledSend's load (64 × 64 durable
// 100-byte requests in flight to 64 journaled services, Sync) issued by 64
// in-memory producer services with Async: each reply comes back as a
// continuation on the producer's turn, so no goroutine wakes per message.
func BenchmarkJournaledAsync(b *testing.B) {
	rt, refs := openBenchLedger(b, 64)
	var budget atomic.Int64
	var done sync.WaitGroup
	budget.Store(int64(b.N))
	done.Add(b.N)
	producers := make([]reactor.Ref, len(refs))
	for i, ledger := range refs {
		ref, err := reactor.Register(rt, "/producers/"+strconv.Itoa(i), &Producer{ledger: ledger, budget: &budget, done: &done})
		if err != nil {
			b.Fatal(err)
		}
		producers[i] = ref
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for _, p := range producers {
		if err := producerGo.Send(ctx, p, 64); err != nil {
			b.Fatal(err)
		}
	}
	done.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkJournaledCallSequential: one caller, durable calls one after the
// other: the latency of one group commit plus the turn.
func BenchmarkJournaledCallSequential(b *testing.B) {
	_, refs := openBenchLedger(b, 1)
	ctx := context.Background()
	var payload Payload
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ledgerAdd.Call(ctx, refs[0], payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawFdatasync is the baseline for the sequential figure: one
// 100-byte write and one fdatasync on the same disk.
func BenchmarkRawFdatasync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var rec [100]byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(rec[:]); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartReplay: Start replays a journal of 100,000 inputs to 64
// journaled services (no checkpoints): records per second, the runtime's
// share of recovery time (compare journal's BenchmarkReplay, which only
// reads).
func BenchmarkStartReplay(b *testing.B) {
	const records = 100_000
	dir := filepath.Join(b.TempDir(), "journal")
	payload, err := (reactor.JSONCodec{}).Marshal(Payload{})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*journal.Record, records)
	for i := range recs {
		recs[i] = &journal.Record{Service: "/ledgers/" + strconv.Itoa(i%64), Method: "bench.ledger.add", Payload: payload}
	}
	testutil.WriteJournal(b, journal.Options{Dir: dir}, recs...)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		j, err := journal.Open(ctx, journal.Options{Dir: dir, Logger: discardLogger})
		if err != nil {
			b.Fatal(err)
		}
		rt, err := reactor.New(reactor.Config{Journal: j, Logger: discardLogger}) // checkpoints to memory
		if err != nil {
			b.Fatal(err)
		}
		if _, err := reactor.RegisterChildren(rt, "/ledgers", func(string) *Ledger { return &Ledger{} }, reactor.Journaled()); err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		rt.Close(ctx)
		j.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
