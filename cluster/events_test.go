package cluster_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

// TestEvents: the stream keeps the last PerAddress events of each address;
// LastEvents reads them in order; Follow delivers the retained ones after
// its id, then the live ones, each once, in order, ids strictly
// increasing (a duplicate id — a new owner issuing an id again — is
// dropped); Unfollow stops it; addresses do not mix.
func TestEvents(t *testing.T) {
	srv := clustertest.Single(t)
	nc := srv.Connect(t)
	ev, err := cluster.OpenEvents(ctxT(t, 10*time.Second), nc, cluster.EventsConfig{Cluster: "evt", PerAddress: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	pub := func(addr string, from, to uint64) {
		for id := from; id <= to; id++ {
			ev.Publish(addr, reactor.StateEvent{ID: id, Data: []byte(addr + "#" + strconv.FormatUint(id, 10))})
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	pub("/rooms/a", 1, 12)
	pub("/rooms/b", 1, 3)
	pub("/rooms/odd.name", 1, 1)
	ids := func(evs []reactor.StateEvent) (out []uint64) {
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	var last []reactor.StateEvent
	for deadline := time.Now().Add(5 * time.Second); ; {
		if last, err = ev.LastEvents(ctxT(t, 5*time.Second), "/rooms/a", 5); err != nil {
			t.Fatal(err)
		}
		if len(last) == 5 && last[4].ID == 12 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ids(last); len(got) != 5 || got[0] != 8 || got[4] != 12 || string(last[4].Data) != "/rooms/a#12" {
		t.Fatalf("LastEvents(a, 5) = %v", got)
	}
	if all, err := ev.LastEvents(ctxT(t, 5*time.Second), "/rooms/a", 100); err != nil || len(all) != 8 || all[0].ID != 5 {
		t.Fatalf("LastEvents(a, 100) = %v, %v: want the 8 retained, 5..12", ids(all), err)
	}
	if none, err := ev.LastEvents(ctxT(t, 5*time.Second), "/rooms/none", 5); err != nil || len(none) != 0 {
		t.Fatalf("LastEvents of an address without events: %v, %v", none, err)
	}
	if odd, err := ev.LastEvents(ctxT(t, 5*time.Second), "/rooms/odd.name", 5); err != nil || len(odd) != 1 {
		t.Fatalf("LastEvents of an address with a '.': %v, %v", odd, err)
	}

	var mu sync.Mutex
	var got []uint64
	ev.Follow("/rooms/a", 10, func(evs []reactor.StateEvent, err error) {
		if err != nil {
			t.Errorf("follow: %v", err)
			return
		}
		mu.Lock()
		got = append(got, ids(evs)...)
		mu.Unlock()
	})
	pub("/rooms/b", 4, 6)
	pub("/rooms/a", 13, 15)
	pub("/rooms/a", 14, 14) // issued again: dropped
	pub("/rooms/a", 16, 16)
	want := []uint64{11, 12, 13, 14, 15, 16}
	for deadline := time.Now().Add(5 * time.Second); ; {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ev.Unfollow("/rooms/a")
	pub("/rooms/a", 17, 17)
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("followed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("followed %v, want %v", got, want)
		}
	}
}
