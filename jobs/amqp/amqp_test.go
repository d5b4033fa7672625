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
	"strings"
	"sync/atomic"
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
	dir := filepath.Join(t.TempDir(), "app")
	var ledger reactor.Ref
	open := func() (*reactor.Runtime, func()) {
		rt, j := testutil.OpenDurable(t, dir, reactor.Config{Logger: slog.New(slog.DiscardHandler)}, func(rt *reactor.Runtime) error {
			var err error
			ledger, err = reactor.Register(rt, "/ledger", &Ledger{}, reactor.Journaled())
			return err
		})
		return rt, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			rt.Close(ctx)
			j.Close()
		}
	}
	_, crash := open()
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
	crash()
	dying.Close() // unacked: the broker redelivers it
	rt, closeRT := open()
	defer closeRT()
	_ = rt

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

// Gate applies entries only while its gate is open: the handler blocks,
// so with an inbox of one the third message meets ErrBusy.
type Gate struct{ Applied map[string]int }

var gate chan struct{}

func (g *Gate) Pass(_ *reactor.Ctx, e Entry) (int, error) {
	<-gate
	if g.Applied == nil {
		g.Applied = map[string]int{}
	}
	g.Applied[e.ID]++
	return len(g.Applied), nil
}

func (g *Gate) Dump(*reactor.Ctx, struct{}) (map[string]int, error) {
	return maps.Clone(g.Applied), nil
}

var (
	gatePass = reactor.Method("test.amqp.gate.pass", (*Gate).Pass)
	gateDump = reactor.Method("test.amqp.gate.dump", (*Gate).Dump, reactor.ReadOnly())
)

// busyLog counts the consumer's "service busy" records.
type busyLog struct {
	slog.Handler
	n *atomic.Int64
}

func (h busyLog) Enabled(context.Context, slog.Level) bool { return true }
func (h busyLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "busy") {
		h.n.Add(1)
	}
	return nil
}

// TestConsumeBusyBacksOffToTheBroker: while the service's inbox is full,
// deliveries are refused with ErrBusy and requeued after a backoff; the
// prefetch window keeps the rest in the broker (not in our memory); once
// the service drains, every message is applied exactly once and acked.
func TestConsumeBusyBacksOffToTheBroker(t *testing.T) {
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
	gate = make(chan struct{})
	var ref reactor.Ref
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{Logger: slog.New(slog.DiscardHandler)}, func(rt *reactor.Runtime) error {
		var err error
		ref, err = reactor.Register(rt, "/gate", &Gate{}, reactor.Journaled(), reactor.InboxSize(1))
		return err
	})
	released := false
	defer func() {
		if !released {
			close(gate)
		}
		rt.Close(context.Background())
		j.Close()
	}()
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
			Logger: slog.New(busyLog{n: &busy})}, gatePass, ref)
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
	close(gate)
	released = true
	testutil.WaitFor(t, func() bool {
		m, _ := gateDump.Call(ctx, ref, struct{}{})
		return len(m) == n
	})
	m, _ := gateDump.Call(ctx, ref, struct{}{})
	for id, k := range m {
		if k != 1 {
			t.Fatalf("%s applied %d times: %v", id, k, m)
		}
	}
	testutil.WaitFor(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		return err == nil && q.Messages == 0
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Consume returned %v", err)
	}
}
