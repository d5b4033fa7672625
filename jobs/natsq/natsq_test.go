package natsq_test

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs/natsq"
)

var quiet = slog.New(slog.DiscardHandler)

// Ledger counts how often each entry was applied.
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
	ledgerAdd  = reactor.Method("test.natsq.ledger.add", (*Ledger).Add)
	ledgerDump = reactor.Method("test.natsq.ledger.dump", (*Ledger).Dump, reactor.ReadOnly())
)

// connect dials the test NATS server (REACTOR_TEST_NATS), or skips (fails
// with REACTOR_REQUIRE_SERVICES=1) when it is not there or has no
// JetStream.
func connect(t testing.TB) jetstream.JetStream {
	t.Helper()
	addr := os.Getenv("REACTOR_TEST_NATS")
	if addr == "" {
		addr = "nats://127.0.0.1:4222"
	}
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatalf("REACTOR_TEST_NATS: %v", err)
	}
	testenv.TCP(t, "NATS", u.Host)
	nc, err := nats.Connect(addr)
	if err != nil {
		testenv.Missing(t, "NATS at %s: %v", u.Host, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		testenv.Missing(t, "NATS at %s has no JetStream (start it with -js): %v", u.Host, err)
	}
	return js
}

// stream creates a fresh memory stream for one test and deletes it after.
func stream(t testing.TB, js jetstream.JetStream) (name, subject string) {
	t.Helper()
	n := time.Now().UnixNano()
	name, subject = fmt.Sprintf("REACTORTEST_%d", n), fmt.Sprintf("reactortest.%d", n)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { js.DeleteStream(context.Background(), name) })
	return name, subject
}

func publish(t testing.TB, js jetstream.JetStream, subject, id string, body []byte) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	if id != "" {
		msg.Header.Set(nats.MsgIdHdr, id)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func entry(id string) []byte { b, _ := json.Marshal(Entry{ID: id, Amount: 1}); return b }

func openLedger(t *testing.T, dir string) (*reactor.Runtime, func(), reactor.Ref) {
	var ref reactor.Ref
	rt, j := testutil.OpenDurable(t, dir, reactor.Config{Logger: quiet}, func(rt *reactor.Runtime) error {
		var err error
		ref, err = reactor.Register(rt, "/ledger", &Ledger{}, reactor.Journaled())
		return err
	})
	return rt, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rt.Close(ctx)
		j.Close()
	}, ref
}

// TestConsumeRedeliveryAfterCrash: a message the service accepted durably
// is not acked because our process dies; after the restart the server
// redelivers it and it is applied once. Messages without Nats-Msg-Id are
// keyed by stream sequence; a body that does not decode is terminated.
func TestConsumeRedeliveryAfterCrash(t *testing.T) {
	js := connect(t)
	name, subject := stream(t, js)
	dir := filepath.Join(t.TempDir(), "app")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := natsq.Config{Stream: name, Consumer: "ledger", AckWait: time.Second, MaxAckPending: 8, Logger: quiet}

	// First life: take one message, deliver it durably, die before the ack.
	publish(t, js, subject+".e", "m-crash", entry("m-crash"))
	cons, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "ledger", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second, MaxAckPending: 8})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg := <-batch.Messages()
	if msg == nil {
		t.Fatal("m-crash not delivered")
	}
	_, crash, ledger := openLedger(t, dir)
	if err := natsq.Deliver(ctx, "nats/"+name+":", ledgerAdd, ledger, msg); err != nil {
		t.Fatal(err)
	}
	crash() // no ack

	// Second life.
	rt, closeRT, ledger := openLedger(t, dir)
	defer closeRT()
	for i := range 10 {
		publish(t, js, subject+".e", fmt.Sprintf("m%d", i), entry(fmt.Sprintf("m%d", i)))
	}
	publish(t, js, subject+".e", "", entry("no-id-1"))
	publish(t, js, subject+".e", "", entry("no-id-2"))
	publish(t, js, subject+".e", "bad", []byte("not json"))
	publish(t, js, subject+".e", "last", entry("last"))
	done := make(chan error, 1)
	go func() { done <- natsq.Consume(ctx, js, cfg, ledgerAdd, ledger) }()
	deadline := time.Now().Add(8 * time.Second)
	testutil.WaitFor(t, func() bool {
		info, err := cons.Info(ctx)
		m, _ := ledgerDump.Call(ctx, ledger, struct{}{})
		if time.Now().After(deadline) {
			t.Fatalf("info %+v err %v ledger %v", info, err, m)
		}
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && m["last"] == 1 && m["m-crash"] >= 1
	})
	m, _ := ledgerDump.Call(ctx, ledger, struct{}{})
	want := map[string]int{"m-crash": 1, "last": 1, "no-id-1": 1, "no-id-2": 1}
	for i := range 10 {
		want[fmt.Sprintf("m%d", i)] = 1
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("applied %v, want %v", m, want)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Consume returned %v", err)
	}
	_ = rt
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
	gatePass = reactor.Method("test.natsq.gate.pass", (*Gate).Pass)
	gateDump = reactor.Method("test.natsq.gate.dump", (*Gate).Dump, reactor.ReadOnly())
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

// TestConsumeBusyBacksOffToTheServer: while the service's inbox is full,
// messages are naked with a delay; MaxAckPending keeps the rest on the
// server (not in our memory); once the service drains, every message is
// applied exactly once and acked.
func TestConsumeBusyBacksOffToTheServer(t *testing.T) {
	js := connect(t)
	name, subject := stream(t, js)
	gate = make(chan struct{})
	var ref reactor.Ref
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{Logger: quiet}, func(rt *reactor.Runtime) error {
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
	const n, window = 12, 4
	for i := range n {
		publish(t, js, subject+".e", fmt.Sprintf("b%d", i), entry(fmt.Sprintf("b%d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var busy atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- natsq.Consume(ctx, js, natsq.Config{Stream: name, Consumer: "gate", MaxAckPending: window, BusyBackoff: 5 * time.Millisecond,
			Logger: slog.New(busyLog{n: &busy})}, gatePass, ref)
	}()
	testutil.WaitFor(t, func() bool { return busy.Load() >= 3 })
	cons, err := js.Consumer(ctx, name, "gate")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// On the server: all but the window and the (at most two) accepted.
	if info.NumAckPending > window || info.NumPending < n-window-2 {
		t.Fatalf("while busy: ack pending %d, pending %d", info.NumAckPending, info.NumPending)
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
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Consume returned %v", err)
	}
}
