package cluster_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/checkpoint/checkpointtest"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

func TestCheckpointsContract(t *testing.T) {
	srv := clustertest.Single(t)
	js := jsOf(t, srv.Connect(t))
	var n atomic.Int64
	checkpointtest.RunStoreTests(t, func(t *testing.T) checkpoint.Store {
		s, err := cluster.OpenCheckpoints(ctxT(t, 10*time.Second), js, cluster.CheckpointConfig{Cluster: fmt.Sprintf("ck%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The checkpoint bucket's stream answers reads from its leader only: a
// direct get may be answered by a follower that has not seen the last
// checkpoint yet. Binding to an existing bucket keeps it so.
func TestCheckpointsReadFromLeader(t *testing.T) {
	srvs := clustertest.Cluster(t)
	js := jsOf(t, srvs.Connect(t))
	cfg := cluster.CheckpointConfig{Cluster: "ckleader", Replicas: 3}
	for range 2 { // create, then bind
		if _, err := cluster.OpenCheckpoints(ctxT(t, 10*time.Second), js, cfg); err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctxT(t, 5*time.Second), "OBJ_"+cluster.CheckpointBucket(cfg.Cluster))
		if err != nil {
			t.Fatal(err)
		}
		if st.CachedInfo().Config.AllowDirect {
			t.Fatal("checkpoint stream allows direct gets (reads from followers)")
		}
	}
}

// A checkpoint with one flipped bit in the store is refused on Load.
func TestCheckpointFlippedBitRefused(t *testing.T) {
	srv := clustertest.Single(t)
	js := jsOf(t, srv.Connect(t))
	s, err := cluster.OpenCheckpoints(ctxT(t, 10*time.Second), js, cluster.CheckpointConfig{Cluster: "ckbad"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	if err := s.Save(ctx, "/rooms/42", checkpoint.Checkpoint{Seq: 7, Data: []byte("the state of room 42")}); err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, cluster.CheckpointBucket("ckbad"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obs.GetBytes(ctx, "/rooms/42")
	if err != nil {
		t.Fatal(err)
	}
	raw[25] ^= 0x04 // a bit of the data
	if _, err := obs.PutBytes(ctx, "/rooms/42", raw); err != nil {
		t.Fatal(err)
	}
	cp, err := s.Load(ctx, "/rooms/42")
	if !errors.Is(err, checkpoint.ErrCorrupt) || !errors.Is(err, cluster.ErrCorrupt) {
		t.Fatalf("Load of a flipped bit = %+v, %v; want ErrCorrupt", cp, err)
	}
}

// A partition's checkpoint write still in flight when its lease fences
// must not land: a new owner may already have taken over and saved its
// own. The Save starts while the lease is valid (renewals paused, a few
// milliseconds left) and is too large to finish before it fences: it
// fails, and the previous checkpoint stays.
func TestPartitionCheckpointInFlightAtFence(t *testing.T) {
	srv := clustertest.Single(t)
	nc := srv.Connect(t)
	p := cluster.Service("/big")
	l := acquireEventually(t, openLeases(t, nc, "ckf", "a", time.Second, 1), p, time.Second)
	ck, err := cluster.OpenCheckpoints(ctxT(t, 10*time.Second), jsOf(t, nc), cluster.CheckpointConfig{Cluster: "ckf"})
	if err != nil {
		t.Fatal(err)
	}
	ps := cluster.NewPartitionStore(ck, p, l)
	ctx := ctxT(t, 60*time.Second)
	if err := ps.Save(ctx, "/big", checkpoint.Checkpoint{Seq: 1, Data: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	cluster.PauseRenewals(l)
	big := make([]byte, 48<<20)
	time.Sleep(time.Until(l.ValidUntil().Add(-10 * time.Millisecond)))
	if !l.Valid() {
		t.Fatal("lease already expired: the test raced nothing")
	}
	err = ps.Save(ctx, "/big", checkpoint.Checkpoint{Seq: 2, Data: big})
	finished := time.Now()
	if !finished.After(l.ValidUntil()) {
		t.Fatalf("the save finished at %v, before the lease's end %v: the test raced nothing", finished, l.ValidUntil())
	}
	if err == nil {
		t.Fatalf("a checkpoint save finishing %v after the lease fenced succeeded", finished.Sub(l.ValidUntil()))
	}
	if !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("save in flight at the fence: %v, want ErrFenced", err)
	}
	cp, err := ck.Load(ctx, p.Token()+":/big")
	if err != nil || cp.Seq != 1 || string(cp.Data) != "old" {
		t.Fatalf("checkpoint after the refused save: seq %d, %d bytes, %v; want the old one", cp.Seq, len(cp.Data), err)
	}
}
