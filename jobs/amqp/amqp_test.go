package amqp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs/amqp"
	"github.com/reactorgo/reactor/jobs/internal/ingresstest"
)

func dial(t *testing.T) *amqp091.Connection {
	addr := os.Getenv("REACTOR_TEST_AMQP")
	if addr == "" {
		addr = "amqp://guest:guest@127.0.0.1:5672/"
	}
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatalf("REACTOR_TEST_AMQP: %v", err)
	}
	testenv.TCP(t, "RabbitMQ", u.Host)
	conn, err := amqp091.Dial(addr)
	if err != nil {
		testenv.Missing(t, "RabbitMQ at %s: %v", u.Host, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// declare opens a channel on conn and declares a fresh queue for t on it,
// deleted when t ends.
func declare(t *testing.T, conn *amqp091.Connection) (*amqp091.Channel, string) {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("reactor-test-%s-%d", t.Name(), time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.QueueDelete(queue, false, false, false) })
	return ch, queue
}

func publish(t *testing.T, ch *amqp091.Channel, queue, id string, body []byte) {
	t.Helper()
	err := ch.PublishWithContext(context.Background(), "", queue, false, false,
		amqp091.Publishing{MessageId: id, ContentType: "application/json", Body: body, DeliveryMode: amqp091.Persistent})
	if err != nil {
		t.Fatal(err)
	}
}

var entry = ingresstest.Body

// TestConsumeAcksDurablyAndDedupsRedelivery: messages reach the journaled
// service once each, although one was published twice with the same id and
// another was delivered, accepted durably, and then redelivered by the
// broker because its ack never came (the consumer died first). Malformed
// messages and messages without an id are rejected, not requeued.
func TestConsumeAcksDurablyAndDedupsRedelivery(t *testing.T) {
	conn := dial(t)
	ch, queue := declare(t, conn)
	dir := filepath.Join(t.TempDir(), "app")
	_, crash, ledger := ingresstest.OpenLedger(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Our process dies after the service accepted a message but before its
	// ack: take it by hand, deliver it the way Consume does, then stop the
	// runtime and drop the channel without acking. The next life of the
	// process, on the same journal, gets the broker's redelivery.
	publish(t, ch, queue, "m-crash", entry("m-crash"))
	dying, _ := conn.Channel()
	var d amqp091.Delivery
	var ok bool
	var err error
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		d, ok, err = dying.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !ok {
		t.Fatal("m-crash not delivered")
	}
	if err := ingresstest.LedgerAdd.Send(reactor.WithDeliveryKey(ctx, "amqp:"+queue+":"+d.MessageId), ledger, ingresstest.Entry{ID: "m-crash"}); err != nil {
		t.Fatal(err)
	}
	crash()
	dying.Close() // unacked: the broker redelivers it
	_, closeRT, ledger := ingresstest.OpenLedger(t, dir)
	defer closeRT()

	for i := range 10 {
		publish(t, ch, queue, fmt.Sprintf("m%d", i), entry(fmt.Sprintf("m%d", i)))
	}
	publish(t, ch, queue, "m3", entry("m3")) // a duplicate publish
	publish(t, ch, queue, "bad", []byte("not json"))
	publish(t, ch, queue, "", entry("no-id"))
	publish(t, ch, queue, "last", entry("last"))

	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- amqp.Consume(ctx, cch, amqp.Config{Queue: queue, Prefetch: 4, Logger: slog.New(slog.DiscardHandler)}, ingresstest.LedgerAdd, ledger)
	}()
	testutil.WaitFor(t, func() bool {
		m, _ := ingresstest.LedgerDump.Call(ctx, ledger, struct{}{})
		return m["last"] == 1
	})
	m, _ := ingresstest.LedgerDump.Call(ctx, ledger, struct{}{})
	want := map[string]int{"m-crash": 1, "last": 1}
	for i := range 10 {
		want[fmt.Sprintf("m%d", i)] = 1
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("applied %v, want %v", m, want)
	}
	// Everything was acked or rejected: nothing waits in the queue.
	testutil.WaitFor(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Consume returned %v", err)
	}
}

// TestConsumeBusyBacksOffToTheBroker: while the service's inbox is full,
// deliveries are refused with ErrBusy and requeued after a backoff; the
// prefetch window keeps the rest in the broker (not in our memory); once
// the service drains, every message is applied exactly once and acked.
func TestConsumeBusyBacksOffToTheBroker(t *testing.T) {
	conn := dial(t)
	ch, queue := declare(t, conn)
	ref, release := ingresstest.OpenGate(t)
	const n, prefetch = 12, 4
	for i := range n {
		publish(t, ch, queue, fmt.Sprintf("b%d", i), entry(fmt.Sprintf("b%d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var busy atomic.Int64
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- amqp.Consume(ctx, cch, amqp.Config{Queue: queue, Prefetch: prefetch, BusyBackoff: 5 * time.Millisecond,
			Logger: ingresstest.BusyLogger(&busy)}, ingresstest.GatePass, ref)
	}()
	// One message runs (blocked), one waits in the inbox; the next ones are
	// refused and requeued, again and again.
	testutil.WaitFor(t, func() bool { return busy.Load() >= 3 })
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Ready in the broker: all but the prefetch window and the (at most
	// two) accepted and acked.
	if q.Messages < n-prefetch-2 {
		t.Fatalf("the broker holds %d ready messages while we are busy, want at least %d", q.Messages, n-prefetch-2)
	}
	release()
	ingresstest.WaitAppliedOnce(t, ctx, ref, n)
	testutil.WaitFor(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Consume returned %v", err)
	}
}
