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
