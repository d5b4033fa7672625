package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/journal"
)

// The life of a partition owner: acquire the lease, open (fence) the
// journal, append, replay. (Not run: it needs a NATS server with
// JetStream; the tests use package clustertest.)
func Example() {
	nc, _ := nats.Connect(nats.DefaultURL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	parts, _ := cluster.NewPartitioner(8)
	p := parts.Child("/rooms", "42")
	leases, _ := cluster.OpenLeases(ctx, js, cluster.LeaseConfig{Cluster: "demo", Node: "node-1"})
	lease, err := leases.Acquire(ctx, p)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease.Release(ctx)
	j, _ := cluster.OpenJournal(ctx, nc, cluster.JournalConfig{Cluster: "demo", Partition: p, Lease: lease})
	for _, who := range []string{"ann", "bob"} {
		j.Append(ctx, &journal.Record{Service: "/rooms/42", Method: "room.join", Payload: []byte(who)}, nil)
	}
	j.Close() // waits for the acks
	j.Replay(ctx, 0, func(r *journal.Record) error {
		fmt.Println(r.Seq, r.Method, string(r.Payload))
		return nil
	})
	// Prints (the fence record took seq 1):
	// 2 room.join ann
	// 3 room.join bob
}
