package natsq_test

import (
	"context"
	"log"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs/natsq"
)

// Deliver the ORDERS stream to a journaled ledger service: each message is
// acked once the ledger accepted it durably, and a redelivery is not
// applied twice. (Not run: it needs a NATS server with JetStream.)
func ExampleConsume() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{}) // with a Journal in a real deployment
	ledger, _ := reactor.Register(rt, "/ledger", &Ledger{}, reactor.Journaled())
	rt.Start(ctx)
	defer rt.Close(ctx)

	nc, _ := nats.Connect(nats.DefaultURL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	err := natsq.Consume(ctx, js, natsq.Config{Stream: "ORDERS", Consumer: "ledger", MaxAckPending: 64}, ledgerAdd, ledger)
	log.Print(err)
}
