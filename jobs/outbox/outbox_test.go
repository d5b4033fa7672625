package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/amqp"
	"github.com/reactorgo/reactor/jobs/outbox"
)

var quiet = slog.New(slog.DiscardHandler)

// Shop is a journaled service whose handler publishes an event through the
// outbox, in its turn.
type Shop struct {
	Orders map[string]string // order → publish job id
	qs     *jobs.Queues
	via    string
	to     string
}

type Placed struct{ Order string }

func (s *Shop) Order(c *reactor.Ctx, name string) (string, error) {
	b, _ := json.Marshal(Placed{name})
	id, err := outbox.Publish(c, s.qs, outbox.Message{Via: s.via, Subject: s.to, Data: b, Header: map[string]string{"X-Order": name}})
	if err != nil {
		return "", err
	}
	if s.Orders == nil {
		s.Orders = map[string]string{}
	}
	s.Orders[name] = id
	return id, nil
}

var shopOrder = reactor.Method("test.outbox.shop.order", (*Shop).Order)

// loseFirst publishes for real, but reports the first publish as failed:
// the confirmation was lost, so the job retries with the same id.
type loseFirst struct {
	p outbox.Publisher
	n atomic.Int32
}

func (l *loseFirst) Publish(ctx context.Context, id string, m outbox.Message) error {
	if err := l.p.Publish(ctx, id, m); err != nil {
		return err
	}
	if l.n.Add(1) == 1 {
		return errors.New("confirmation lost")
	}
	return nil
}

func openShop(t *testing.T, via, to string) (*jobs.Queues, reactor.Ref) {
	t.Helper()
	var qs *jobs.Queues
	var shop reactor.Ref
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{Logger: quiet}, func(rt *reactor.Runtime) error {
		var err error
		qs, err = jobs.New(rt, jobs.Config{Logger: quiet, Queues: map[string]jobs.QueueConfig{
			outbox.Queue: {Workers: 2, PollInterval: 5 * time.Millisecond}}})
		if err != nil {
			return err
		}
		shop, err = reactor.Register(rt, "/shop", &Shop{qs: qs, via: via, to: to}, reactor.Journaled())
		return err
	})
	ctx := context.Background()
	if err := qs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		qs.Close(ctx)
		rt.Close(ctx)
		j.Close()
	})
	return qs, shop
}

func completed(t *testing.T, qs *jobs.Queues, id string) jobs.Info {
	t.Helper()
	var info jobs.Info
	testutil.WaitFor(t, func() bool {
		var err error
		info, err = qs.Get(context.Background(), outbox.Queue, id)
		return err == nil && info.State == jobs.Completed
	})
	return info
}

// TestPublishJetStream: two orders, two messages in the stream — although
// the first publish's confirmation was lost and it was published again —
// each with its dedup id as Nats-Msg-Id.
func TestPublishJetStream(t *testing.T) {
	addr := os.Getenv("REACTOR_TEST_NATS")
	if addr == "" {
		addr = "nats://127.0.0.1:4222"
	}
	u, _ := url.Parse(addr)
	testenv.TCP(t, "NATS", u.Host)
	nc, err := nats.Connect(addr)
	if err != nil {
		testenv.Missing(t, "NATS: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	n := time.Now().UnixNano()
	name, subject := fmt.Sprintf("REACTOROUTBOX_%d", n), fmt.Sprintf("reactoroutbox.%d", n)
	str, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.MemoryStorage})
	if err != nil {
		testenv.Missing(t, "JetStream: %v", err)
	}
	defer js.DeleteStream(ctx, name)
	via := "nats-" + name
	outbox.Register(via, &loseFirst{p: outbox.NewNATS(js)})

	qs, shop := openShop(t, via, subject)
	ids := map[string]string{}
	for _, o := range []string{"o1", "o2"} {
		id, err := shopOrder.Call(ctx, shop, o)
		if err != nil {
			t.Fatal(err)
		}
		ids[o] = id
	}
	attempts := 0
	for _, id := range ids {
		attempts += completed(t, qs, id).Attempt
	}
	if attempts != 3 {
		t.Fatalf("%d attempts for two messages, one confirmation lost", attempts)
	}
	info, err := str.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("stream holds %+v (%v), want 2 messages", info.State, err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := str.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var p Placed
		json.Unmarshal(m.Data, &p)
		id := m.Header.Get(nats.MsgIdHdr)
		if ids[p.Order] == "" || m.Header.Get("X-Order") != p.Order || id == "" {
			t.Fatalf("message %d: %s %v", seq, m.Data, m.Header)
		}
	}
}

// Ledger applies each order once.
type Ledger struct{ Applied map[string]int }

func (l *Ledger) Add(_ *reactor.Ctx, p Placed) (int, error) {
	if l.Applied == nil {
		l.Applied = map[string]int{}
	}
	l.Applied[p.Order]++
	return 0, nil
}

func (l *Ledger) Dump(*reactor.Ctx, struct{}) (map[string]int, error) {
	return maps.Clone(l.Applied), nil
}

var (
	ledgerAdd  = reactor.Method("test.outbox.ledger.add", (*Ledger).Add)
	ledgerDump = reactor.Method("test.outbox.ledger.dump", (*Ledger).Dump, reactor.ReadOnly())
)

// TestPublishRabbitMQ: the outbox publishes with publisher confirms and
// the job's dedup id as message-id; the lost confirmation makes a second
// copy in RabbitMQ, and the amqp ingress on the other side applies each
// order once.
func TestPublishRabbitMQ(t *testing.T) {
	addr := os.Getenv("REACTOR_TEST_AMQP")
	if addr == "" {
		addr = "amqp://guest:guest@127.0.0.1:5672/"
	}
	u, _ := url.Parse(addr)
	testenv.TCP(t, "RabbitMQ", u.Host)
	conn, err := amqp091.Dial(addr)
	if err != nil {
		testenv.Missing(t, "RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("reactor-outbox-%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	via := "amqp-" + queue
	pub := outbox.NewAMQP(conn)
	defer pub.Close()
	outbox.Register(via, &loseFirst{p: pub})

	qs, shop := openShop(t, via, queue)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ids []string
	for _, o := range []string{"o1", "o2"} {
		id, err := shopOrder.Call(ctx, shop, o)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		completed(t, qs, id)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil || q.Messages != 3 {
		t.Fatalf("queue holds %d messages (%v), want 3: two orders and the copy of the lost confirmation", q.Messages, err)
	}

	// The consumer side: jobs/amqp into a journaled ledger.
	var ledger reactor.Ref
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{Logger: quiet}, func(rt *reactor.Runtime) error {
		var err error
		ledger, err = reactor.Register(rt, "/ledger", &Ledger{}, reactor.Journaled())
		return err
	})
	defer func() { rt.Close(context.Background()); j.Close() }()
	cch, _ := conn.Channel()
	go amqp.Consume(ctx, cch, amqp.Config{Queue: queue, Logger: quiet}, ledgerAdd, ledger)
	testutil.WaitFor(t, func() bool {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		m, _ := ledgerDump.Call(ctx, ledger, struct{}{})
		return err == nil && q.Messages == 0 && len(m) == 2
	})
	time.Sleep(20 * time.Millisecond) // the last ack went after the journal: let its handler finish
	if m, _ := ledgerDump.Call(ctx, ledger, struct{}{}); m["o1"] != 1 || m["o2"] != 1 {
		t.Fatalf("applied %v", m)
	}
}
