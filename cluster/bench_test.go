package cluster_test

// Benchmarks of a cluster.Node against raw NATS on the same embedded
// server setup (clustertest.Single: one JetStream server, file storage
// under b.TempDir(), sync_interval: always). Each subject has a baseline
// that runs in the same go test run, on its own server started with the
// same options, with the same message sizes:
//
//	BenchmarkRawRequest            vs BenchmarkRemoteCall          (round trip, one caller)
//	BenchmarkRawRequestParallel    vs BenchmarkRemoteCallParallel  (round trips, 32×GOMAXPROCS callers)
//	BenchmarkRawJetStreamAsyncPublish vs BenchmarkDurableRemoteSend (acked stream appends, 4096 in flight)
//
// bench/cmd/figures -only cluster runs them, baseline and subject
// alternated per round.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
	"github.com/reactorgo/reactor/journal"
)

const (
	benchCluster     = "bench"
	benchPayloadSize = 100
	benchLedgers     = 64   // children of /ledgers the durable sends spread over
	benchInFlight    = 4096 // durable sends (and raw publishes) in flight
	benchParallelism = 32   // RunParallel goroutines per GOMAXPROCS
)

// benchPayload is a 100-byte request (and echo reply) that encodes as
// itself, so the remote call and the raw request carry the same bytes.
type benchPayload [benchPayloadSize]byte

func (p benchPayload) MarshalBinary() ([]byte, error) { return p[:], nil }

func (p *benchPayload) UnmarshalBinary(b []byte) error {
	if len(b) != len(p) {
		return fmt.Errorf("bench payload: %d bytes", len(b))
	}
	copy(p[:], b)
	return nil
}

// BEcho answers its request: an in-memory top-level service (/echo), so
// the remote call figure is the routing's cost, not a journal's.
type BEcho struct{}

func (*BEcho) Echo(_ *reactor.Ctx, p benchPayload) (benchPayload, error) { return p, nil }

// BLedger is a journaled keyed child of /ledgers: every Add is an input
// record in the partition's stream before it is handled.
type BLedger struct{ N int64 }

func (l *BLedger) Add(_ *reactor.Ctx, _ benchPayload) (struct{}, error) {
	l.N++
	return struct{}{}, nil
}

var (
	bEcho = reactor.Method("bench.cluster.echo", (*BEcho).Echo)
	bAdd  = reactor.Method("bench.cluster.add", (*BLedger).Add)
)

// benchNodes is a cluster of two nodes on one embedded server, each with
// its own connection: owner owns every partition (/echo and the single
// partition of /ledgers), front is a FrontEnd node (it owns nothing), so
// every call through front.Ref crosses NATS to owner.
type benchNodes struct {
	owner, front *cluster.Node
	js           jetstream.JetStream // on the owner's connection
}

func openBenchNodes(b *testing.B, opts ...clustertest.Option) *benchNodes {
	b.Helper()
	srv := clustertest.Single(b, opts...)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := cluster.NodeConfig{
		Cluster: benchCluster, Partitions: 1,
		Groups: []string{"/ledgers"}, Services: []string{"/echo"},
		Logger: logger,
		Setup: func(rt *reactor.Runtime) error {
			if _, err := reactor.RegisterChildren(rt, "/ledgers", func(string) *BLedger { return &BLedger{} }, reactor.Journaled()); err != nil {
				return err
			}
			_, err := reactor.Register(rt, "/echo", &BEcho{})
			return err
		},
	}
	open := func(nc *nats.Conn, id string, front bool) *cluster.Node {
		c := cfg
		c.Conn, c.Node, c.FrontEnd = nc, id, front
		if front {
			c.Setup = nil
		}
		n, err := cluster.OpenNode(ctxT(b, 10*time.Second), c)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			n.Close(ctx)
		})
		return n
	}
	ncOwner := srv.Connect(b)
	bn := &benchNodes{owner: open(ncOwner, "owner", false), js: jsOf(b, ncOwner)}
	deadline := time.Now().Add(15 * time.Second)
	for len(bn.owner.Owned()) < 2 {
		if time.Now().After(deadline) {
			b.Fatalf("owner serves %v after 15s, want /echo and /ledgers", bn.owner.Owned())
		}
		time.Sleep(10 * time.Millisecond)
	}
	bn.front = open(srv.Connect(b), "front", true)
	if n := len(bn.front.Owned()); n != 0 {
		b.Fatalf("front end owns %d partitions", n)
	}
	return bn
}

// journalFrameSize is the size of the stream message of one Add to
// /ledgers/0: the raw baseline publishes messages of this size.
func journalFrameSize(b *testing.B) int {
	b.Helper()
	parts, err := cluster.NewPartitioner(1)
	if err != nil {
		b.Fatal(err)
	}
	p := parts.Child("/ledgers", "0")
	data, err := cluster.EncodeFrame(p.Token(), 1, 1000, false, &journal.Record{
		Time: time.Now().UnixNano(), Seed: 1 << 62, Service: "/ledgers/0", Method: bAdd.Name(),
		Payload: make([]byte, benchPayloadSize),
	})
	if err != nil {
		b.Fatal(err)
	}
	return len(data)
}

// rawResponder answers every request on subj with its own data, on its
// own connection, in the subscription's callback: the least a responder
// can do.
func rawResponder(b *testing.B, srv *clustertest.Servers, subj string) {
	b.Helper()
	nc := srv.Connect(b)
	if _, err := nc.Subscribe(subj, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRawRequest is the baseline of BenchmarkRemoteCall: a plain NATS
// request with a 100-byte body from one connection, echoed by a trivial
// responder on another connection to the same server; one at a time.
func BenchmarkRawRequest(b *testing.B) {
	srv := clustertest.Single(b)
	const subj = benchCluster + ".raw.rpc"
	rawResponder(b, srv, subj)
	nc := srv.Connect(b)
	payload := make([]byte, benchPayloadSize)
	if _, err := nc.Request(subj, payload, 5*time.Second); err != nil { // the reply subscription
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m, err := nc.Request(subj, payload, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Data) != benchPayloadSize {
			b.Fatalf("reply of %d bytes", len(m.Data))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkRemoteCall: a Call with a 100-byte request and reply from the
// front-end node's client (front.Ref("/echo")) to the in-memory service
// /echo owned by the other node: encode, NATS request with the address
// and method headers, the owner's serve goroutine, Deliver into the
// service's turn, the reply back and decoded; one caller at a time.
// Target: ≤ 1.5× BenchmarkRawRequest's ns/op.
func BenchmarkRemoteCall(b *testing.B) {
	bn := openBenchNodes(b)
	ref := bn.front.Ref("/echo")
	ctx := context.Background()
	var req benchPayload
	if _, err := bEcho.Call(ctx, ref, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req[0] = byte(i)
		resp, err := bEcho.Call(ctx, ref, req)
		if err != nil {
			b.Fatal(err)
		}
		if resp != req {
			b.Fatal("echo reply differs from the request")
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkRawRequestParallel is BenchmarkRawRequest from
// 32×GOMAXPROCS goroutines sharing the requesting connection: throughput.
func BenchmarkRawRequestParallel(b *testing.B) {
	srv := clustertest.Single(b)
	const subj = benchCluster + ".raw.rpc"
	rawResponder(b, srv, subj)
	nc := srv.Connect(b)
	payload := make([]byte, benchPayloadSize)
	if _, err := nc.Request(subj, payload, 5*time.Second); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := nc.Request(subj, payload, 5*time.Second); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkRemoteCallParallel is BenchmarkRemoteCall from 32×GOMAXPROCS
// goroutines sharing the front-end node: throughput.
func BenchmarkRemoteCallParallel(b *testing.B) {
	bn := openBenchNodes(b)
	ref := bn.front.Ref("/echo")
	ctx := context.Background()
	if _, err := bEcho.Call(ctx, ref, benchPayload{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var req benchPayload
		for pb.Next() {
			if _, err := bEcho.Call(ctx, ref, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkRawJetStreamAsyncPublish is the baseline of
// BenchmarkDurableRemoteSend: one publisher keeps 4096 jetstream
// PublishMsgAsync in flight to a stream configured as a partition's
// journal (R1, file storage, limits, discard new, no direct get, 1s
// duplicate window), with messages of a journal record's size; every ack
// is awaited and checked, in order, by one goroutine (as the journal's
// notifier does). No message ids or expected-sequence headers: plain
// JetStream.
func BenchmarkRawJetStreamAsyncPublish(b *testing.B) { benchRawAsyncPublish(b) }

// BenchmarkRawJetStreamAsyncPublishLazy is the baseline on a server with
// NATS's default lazy fsync (what the issue's ~400 K/s was measured on).
func BenchmarkRawJetStreamAsyncPublishLazy(b *testing.B) {
	benchRawAsyncPublish(b, clustertest.LazySync())
}

func benchRawAsyncPublish(b *testing.B, opts ...clustertest.Option) {
	srv := clustertest.Single(b, opts...)
	nc := srv.Connect(b)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchInFlight+1))
	if err != nil {
		b.Fatal(err)
	}
	const name, subj = benchCluster + "_raw", benchCluster + ".raw.j"
	ctx := ctxT(b, 30*time.Second)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subj},
		Storage: jetstream.FileStorage, Replicas: 1, MaxMsgSize: cluster.MaxRecordSize,
		AllowDirect: false, Duplicates: time.Second,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		b.Fatal(err)
	}
	size := journalFrameSize(b)
	data := make([]byte, size)
	if _, err := js.Publish(ctx, subj, data); err != nil {
		b.Fatal(err)
	}
	slots := make(chan struct{}, benchInFlight)
	futs := make(chan jetstream.PubAckFuture, benchInFlight)
	var ackErr error
	acked := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		defer close(acked)
		for f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if ackErr == nil {
					ackErr = err
				}
			}
			<-slots
		}
	}()
	for range b.N {
		slots <- struct{}{}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: data})
		if err != nil {
			b.Fatal(err)
		}
		futs <- f
	}
	close(futs)
	<-acked
	b.StopTimer()
	if ackErr != nil {
		b.Fatal(ackErr)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if info.State.LastSeq < uint64(b.N)+1 {
		b.Fatalf("stream ends at %d after %d acked publishes", info.State.LastSeq, b.N+1)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(size), "B/msg")
}

// BenchmarkDurableRemoteSend: 4096 goroutines on the front-end node each
// Send 100-byte Adds to one of 64 journaled children of /ledgers, whose
// single partition the other node owns, so 4096 durable sends are in
// flight. A Send from outside a handler returns once the owner answered:
// the Add was appended to the partition's JetStream stream, acknowledged
// (stored, synced: sync_interval always) and handled. Target: ≥ 0.5×
// BenchmarkRawJetStreamAsyncPublish's msgs/s.
func BenchmarkDurableRemoteSend(b *testing.B) { benchDurableRemoteSend(b) }

// BenchmarkDurableRemoteSendLazy is BenchmarkDurableRemoteSend on a server
// with lazy fsync: the CPU cost of the path, not the disk's.
func BenchmarkDurableRemoteSendLazy(b *testing.B) { benchDurableRemoteSend(b, clustertest.LazySync()) }

func benchDurableRemoteSend(b *testing.B, opts ...clustertest.Option) {
	bn := openBenchNodes(b, opts...)
	ctx := context.Background()
	refs := make([]reactor.Ref, benchLedgers)
	var payload benchPayload
	for i := range refs {
		refs[i] = bn.front.Ref("/ledgers/" + strconv.Itoa(i))
		if err := bAdd.Send(ctx, refs[i], payload); err != nil { // the child is created
			b.Fatal(err)
		}
	}
	p, _ := bn.owner.PartitionOf("/ledgers/0")
	stream, err := bn.js.Stream(ctx, cluster.JournalStream(benchCluster, p))
	if err != nil {
		b.Fatal(err)
	}
	before, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for g := range benchInFlight {
		wg.Go(func() {
			var payload benchPayload
			for next.Add(1) <= int64(b.N) {
				if err := bAdd.Send(ctx, refs[g%benchLedgers], payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	after, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if got := after.State.LastSeq - before.State.LastSeq; !b.Failed() && got < uint64(b.N) {
		b.Fatalf("the partition's stream grew by %d records for %d acknowledged sends", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(journalFrameSize(b)), "B/msg")
}
