package cluster_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

// Tally is a journaled child: the sum of what it was told to add.
type Tally struct{ Sum int }

func (t *Tally) Add(_ *reactor.Ctx, n int) (int, error)      { t.Sum += n; return t.Sum, nil }
func (t *Tally) Get(_ *reactor.Ctx, _ struct{}) (int, error) { return t.Sum, nil }

var (
	tallyAdd = reactor.Method("test.tally.add", (*Tally).Add)
	tallyGet = reactor.Method("test.tally.get", (*Tally).Get, reactor.ReadOnly())
)

// partitionNode is one node's runtime for one partition: the partition's
// stream as its journal and the cluster's checkpoint store, under a lease.
type partitionNode struct {
	rt    *reactor.Runtime
	j     *cluster.Journal
	lease *cluster.Lease
}

func openPartitionNode(t *testing.T, nc *nats.Conn, cl, node string, p cluster.Partition, ttl time.Duration) *partitionNode {
	t.Helper()
	ls := openLeases(t, nc, cl, node, ttl, 1)
	lease := acquireEventually(t, ls, p, 5*ttl)
	ctx := ctxT(t, 20*time.Second)
	j, err := cluster.OpenJournal(ctx, nc, cluster.JournalConfig{Cluster: cl, Partition: p, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	store, err := cluster.OpenCheckpoints(ctx, jsOf(t, nc), cluster.CheckpointConfig{Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(rt, "/tallies", func(string) *Tally { return &Tally{} }, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &partitionNode{rt: rt, j: j, lease: lease}
}

// TestRuntimeTakesPartitionOver: the runtime runs journaled services on a
// partition's stream and the cluster's checkpoint store (the
// reactor.Journal seam). Node A applies commands, checkpoints midway and
// dies (its NATS connection cut: no Close, no final checkpoint); node B
// acquires the lease once A's lapsed, fences the stream, loads the
// checkpoint, replays the records after it and serves every acknowledged
// command's effect, exactly once; A can no longer append.
func TestRuntimeTakesPartitionOver(t *testing.T) {
	srv := clustertest.Single(t)
	const cl, ttl = "rt", time.Second
	parts, err := cluster.NewPartitioner(1)
	if err != nil {
		t.Fatal(err)
	}
	p := parts.Child("/tallies", "any")
	ncA := srv.Connect(t)
	a := openPartitionNode(t, ncA, cl, "a", p, ttl)
	ctx := ctxT(t, 60*time.Second)
	want := map[string]int{}
	for i := range 60 {
		key := strconv.Itoa(i % 6)
		if _, err := tallyAdd.Call(ctx, a.rt.Ref("/tallies/"+key), i); err != nil {
			t.Fatalf("add %d on a: %v", i, err)
		}
		want[key] += i
		if i == 29 {
			a.rt.Checkpoint() // a checkpoint round: later records are replayed over it
		}
	}
	ncA.Close() // A dies: its lease lapses, nothing more is saved

	b := openPartitionNode(t, srv.Connect(t), cl, "b", p, ttl)
	t.Cleanup(func() { b.rt.Close(context.Background()) })
	if b.lease.Epoch() <= a.lease.Epoch() {
		t.Fatalf("epoch %d after %d", b.lease.Epoch(), a.lease.Epoch())
	}
	for key, sum := range want {
		got, err := tallyGet.Call(ctx, b.rt.Ref("/tallies/"+key), struct{}{})
		if err != nil || got != sum {
			t.Fatalf("tally %s on b: %d, %v; want %d", key, got, err, sum)
		}
	}
	if _, err := tallyAdd.Call(ctx, b.rt.Ref("/tallies/0"), 1); err != nil {
		t.Fatalf("add on b: %v", err)
	}
	// A's runtime is still up but fenced: a command through it is refused.
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := tallyAdd.Call(actx, a.rt.Ref("/tallies/1"), 1); err == nil {
		t.Fatal("the old owner accepted a command after the takeover")
	}
}
