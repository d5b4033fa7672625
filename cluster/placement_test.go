package cluster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

// A node over its fair share hands off the partitions it would take last
// (the end of its placement order), not arbitrary ones: a node that owns
// all six partitions keeps the first three of its order when a second one
// joins.
func TestPlacementHandsOffTheLastInOrder(t *testing.T) {
	srv := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srv, "place", ttl)
	a := e.open(srv.Connect(t), "a")
	waitAllOwned(t, 10*time.Second, false, a)
	b := e.open(srv.Connect(t), "b")
	deadline := time.Now().Add(20 * ttl)
	for len(a.Owned()) > faultPartitions/2 {
		if time.Now().After(deadline) {
			t.Fatalf("a still owns %v", a.Owned())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitAllOwned(t, 10*ttl, true, a, b)
	order := cluster.PlacementOrder(a.Node)
	kept := a.Owned()
	for _, p := range order[:faultPartitions/2] {
		if !slices.Contains(kept, p) {
			t.Fatalf("a kept %v; its placement order is %v: it handed off %s", kept, order, p)
		}
	}
}
