package outbox_test

import (
	"context"
	"log"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/outbox"
)

// Publish an event from a journaled handler: it reaches JetStream only
// after the handler's input is durable, and exactly once in the stream
// however often the worker retries. (Not run: it needs a NATS server.)
func Example() {
	ctx := context.Background()
	nc, _ := nats.Connect(nats.DefaultURL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	outbox.Register("events", outbox.NewNATS(js))

	rt, _ := reactor.New(reactor.Config{}) // with a Journal in a real deployment
	qs, _ := jobs.New(rt, jobs.Config{Queues: map[string]jobs.QueueConfig{outbox.Queue: {Workers: 4}}})
	shop, _ := reactor.Register(rt, "/shop", &Shop{qs: qs, via: "events", to: "orders.placed"}, reactor.Journaled())
	rt.Start(ctx)
	qs.Start(ctx)
	defer rt.Close(ctx)
	defer qs.Close(ctx)

	// Shop.Order calls outbox.Publish(c, qs, outbox.Message{…}) in its turn.
	if _, err := shopOrder.Call(ctx, shop, "o-1"); err != nil {
		log.Fatal(err)
	}
}
