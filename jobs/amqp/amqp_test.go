package amqp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs/amqp"
)

// Ledger counts how often each message was applied.
type Ledger struct{ Applied map[string]int }

type Entry struct {
	ID     string
	Amount int
}

func (l *Ledger) Add(_ *reactor.Ctx, e Entry) (int, error) {
	if l.Applied == nil {
		l.Applied = map[string]int{}
	}
	l.Applied[e.ID]++
	return len(l.Applied), nil
}

func (l *Ledger) Dump(*reactor.Ctx, struct{}) (map[string]int, error) {
	return maps.Clone(l.Applied), nil
}

var (
	ledgerAdd  = reactor.Method("test.amqp.ledger.add", (*Ledger).Add)
	ledgerDump = reactor.Method("test.amqp.ledger.dump", (*Ledger).Dump, reactor.ReadOnly())
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

func publish(t *testing.T, ch *amqp091.Channel, queue, id string, body []byte) {
	t.Helper()
	err := ch.PublishWithContext(context.Background(), "", queue, false, false,
		amqp091.Publishing{MessageId: id, ContentType: "application/json", Body: body, DeliveryMode: amqp091.Persistent})
	if err != nil {
		t.Fatal(err)
	}
}

func entry(id string) []byte { b, _ := json.Marshal(Entry{ID: id, Amount: 1}); return b }

// TestConsumeAcksDurablyAndDedupsRedelivery: messages reach the journaled
// service once each, although one was published twice with the same id and
// another was delivered, accepted durably, and then redelivered by the
// broker because its ack never came (the consumer died first). Malformed
// messages and messages without an id are rejected, not requeued.
func TestConsumeAcksDurablyAndDedupsRedelivery(t *testing.T) {
	conn := dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("reactor-test-%s-%d", t.Name(), time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	dir := t.TempDir()
	var ledger reactor.Ref
	rt, j := testutil.OpenDurable(t, filepath.Join(dir, "app"), reactor.Config{Logger: slog.New(slog.DiscardHandler)}, func(rt *reactor.Runtime) error {
		var err error
		ledger, err = reactor.Register(rt, "/ledger", &Ledger{}, reactor.Journaled())
		return err
	})
	defer func() { rt.Close(context.Background()); j.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A consumer that dies after the service accepted a message but before
	// its ack: take it by hand, deliver it the way Consume does, then drop
	// the channel without acking.
	publish(t, ch, queue, "m-crash", entry("m-crash"))
	dying, _ := conn.Channel()
	var d amqp091.Delivery
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		d, ok, err = dying.Get(queue, false)
		if err != nil {
			t.Fatal(err)
		}
	}
	if !ok {
		t.Fatal("m-crash not delivered")
	}
	if err := ledgerAdd.Send(reactor.WithDeliveryKey(ctx, "amqp:"+queue+":"+d.MessageId), ledger, Entry{ID: "m-crash"}); err != nil {
		t.Fatal(err)
	}
	dying.Close() // unacked: the broker redelivers it

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
		done <- amqp.Consume(ctx, cch, amqp.Config{Queue: queue, Prefetch: 4, Logger: slog.New(slog.DiscardHandler)}, ledgerAdd, ledger)
	}()
	testutil.WaitFor(t, func() bool {
		m, _ := ledgerDump.Call(ctx, ledger, struct{}{})
		return m["last"] == 1
	})
	m, _ := ledgerDump.Call(ctx, ledger, struct{}{})
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
