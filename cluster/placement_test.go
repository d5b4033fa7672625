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

// A node that joins when every other node holds its ceil share still gets
// partitions: 6 partitions on a, b, c hold 2+2+2, which is ceil(6/4) for
// four nodes too, so no node is over its share when d joins; d is below
// floor(6/4) = 1, and the node owning most hands one off to it. d is not
// Serving until then; afterwards every node is, each owning 1 or 2.
func TestPlacementGivesToAShortNode(t *testing.T) {
	srv := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srv, "short", ttl)
	nodes := []*fnode{e.open(srv.Connect(t), "a"), e.open(srv.Connect(t), "b"), e.open(srv.Connect(t), "c")}
	balanced := func() bool {
		for _, n := range nodes {
			if len(n.Owned()) != faultPartitions/3 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * ttl)
	for !balanced() {
		if time.Now().After(deadline) {
			t.Fatalf("a, b, c do not settle at 2 partitions each")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := e.open(srv.Connect(t), "d")
	nodes = append(nodes, d)
	took := waitAllOwned(t, 20*ttl, true, nodes...)
	t.Logf("d owns %v %v after it joined", d.Owned(), took)
	deadline = time.Now().Add(5 * ttl)
	for !d.Serving() {
		if time.Now().After(deadline) {
			t.Fatalf("d owns %v but is not Serving", d.Owned())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, n := range nodes {
		if c := len(n.Owned()); c < 1 || c > 2 {
			t.Fatalf("%s owns %d partitions, want 1 or 2", n.id, c)
		}
	}
}
