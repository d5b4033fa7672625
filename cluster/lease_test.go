package cluster_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

// Several contenders race for one partition: exactly one wins and keeps it
// while it renews; when it stops renewing (a paused process) it fences
// itself before any other node acquires, and the new epoch is higher.
func TestLeaseExclusiveAndSelfFencesBeforeTakeover(t *testing.T) {
	srv := clustertest.Single(t)
	const ttl = time.Second
	p := cluster.Service("/lobby")
	const n = 5
	leases := make([]*cluster.Leases, n)
	for i := range leases {
		leases[i] = openLeases(t, srv.Connect(t), "lx", fmt.Sprintf("node%d", i), ttl, 1)
	}

	var (
		mu     sync.Mutex
		won    []*cluster.Lease
		wg     sync.WaitGroup
		others int
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := leases[i].Acquire(ctxT(t, 5*time.Second), p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, l)
			case errors.Is(err, cluster.ErrHeld):
				others++
			default:
				t.Errorf("node%d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(won) != 1 || others != n-1 {
		t.Fatalf("%d winners, %d ErrHeld; want 1 and %d", len(won), others, n-1)
	}
	holder := won[0]

	// Renewing, the holder keeps the lease well past the TTL.
	deadline := time.Now().Add(2 * ttl)
	for time.Now().Before(deadline) {
		for i := range n {
			if l, err := leases[i].Acquire(ctxT(t, 5*time.Second), p); err == nil {
				t.Fatalf("node%d acquired a renewed lease (epoch %d)", i, l.Epoch())
			}
		}
		if !holder.Valid() {
			t.Fatalf("holder fenced while renewing: %v", holder.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The holder pauses: every contender tries until one gets it.
	cluster.PauseRenewals(holder)
	got := make(chan *cluster.Lease, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := time.Now().Add(5 * ttl); time.Now().Before(d); time.Sleep(5 * time.Millisecond) {
				if l, err := leases[i].Acquire(ctxT(t, 5*time.Second), p); err == nil {
					got <- l
					return
				}
				if len(got) > 0 { // another contender won
					return
				}
			}
		}()
	}
	wg.Wait()
	close(got)
	var next []*cluster.Lease
	for l := range got {
		next = append(next, l)
	}
	if len(next) != 1 {
		t.Fatalf("%d nodes acquired after the pause, want 1", len(next))
	}
	nl := next[0]
	defer nl.Release(ctxT(t, 5*time.Second))
	fencedAt := holder.FencedAt()
	if fencedAt.IsZero() || holder.Valid() || !errors.Is(holder.Err(), cluster.ErrFenced) {
		t.Fatalf("holder not fenced: valid %v, err %v", holder.Valid(), holder.Err())
	}
	if !fencedAt.Before(nl.Acquired()) {
		t.Fatalf("holder fenced at %v, new owner acquired at %v: double ownership", fencedAt, nl.Acquired())
	}
	if nl.Epoch() <= holder.Epoch() {
		t.Fatalf("epoch after takeover %d <= %d", nl.Epoch(), holder.Epoch())
	}
	t.Logf("holder fenced %v before the takeover (TTL %v); epochs %d -> %d", nl.Acquired().Sub(fencedAt), ttl, holder.Epoch(), nl.Epoch())

	// A released lease is free at once.
	if err := nl.Release(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	l3, err := leases[0].Acquire(ctxT(t, 5*time.Second), p)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if l3.Epoch() <= nl.Epoch() {
		t.Fatalf("epoch after release %d <= %d", l3.Epoch(), nl.Epoch())
	}
	l3.Release(ctxT(t, 5*time.Second))
}

// A node cut off from NATS fences itself within the TTL, before another
// node can acquire the partition.
func TestLeaseCutOffSelfFences(t *testing.T) {
	srv := clustertest.Single(t)
	const ttl = time.Second
	px := newProxy(t, srv.URL(0)[len("nats://"):])
	a := openLeases(t, srv.ConnectURL(t, px.URL()), "lc", "a", ttl, 1)
	b := openLeases(t, srv.Connect(t), "lc", "b", ttl, 1)
	p := cluster.Service("/lobby")
	la, err := a.Acquire(ctxT(t, 5*time.Second), p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl) // a few renewals through the proxy
	if !la.Valid() {
		t.Fatalf("lease fenced while connected: %v", la.Err())
	}
	lastValid := la.ValidUntil()
	cut := time.Now()
	px.Stop()
	select {
	case <-la.Fenced():
	case <-time.After(ttl):
		t.Fatalf("cut-off holder still valid %v after the cut (TTL %v)", time.Since(cut), ttl)
	}
	if la.FencedAt().After(lastValid.Add(ttl / 3)) {
		t.Fatalf("fenced at %v, later than validity %v allowed", la.FencedAt(), lastValid)
	}
	lb := acquireEventually(t, b, p, 5*ttl)
	if !la.FencedAt().Before(lb.Acquired()) {
		t.Fatalf("cut-off holder fenced at %v, other node acquired at %v", la.FencedAt(), lb.Acquired())
	}
	if lb.Epoch() <= la.Epoch() {
		t.Fatalf("epoch %d <= %d", lb.Epoch(), la.Epoch())
	}
	t.Logf("fenced %v after the cut; takeover %v after the fence", la.FencedAt().Sub(cut), lb.Acquired().Sub(la.FencedAt()))
}
