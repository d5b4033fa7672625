package natsq_test

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs/internal/ingresstest"
	"github.com/reactorgo/reactor/jobs/natsq"
)

var quiet = slog.New(slog.DiscardHandler)

// The ledger of the tests, named here as ExampleConsume names it.
type Ledger = ingresstest.Ledger

var ledgerAdd = ingresstest.LedgerAdd

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

var entry = ingresstest.Body

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
	_, crash, ledger := ingresstest.OpenLedger(t, dir)
	if err := natsq.Deliver(ctx, "nats/"+name+":", ledgerAdd, ledger, msg); err != nil {
		t.Fatal(err)
	}
	crash() // no ack

	// Second life.
	_, closeRT, ledger := ingresstest.OpenLedger(t, dir)
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
		m, _ := ingresstest.LedgerDump.Call(ctx, ledger, struct{}{})
		if time.Now().After(deadline) {
			t.Fatalf("info %+v err %v ledger %v", info, err, m)
		}
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && m["last"] == 1 && m["m-crash"] >= 1
	})
	m, _ := ingresstest.LedgerDump.Call(ctx, ledger, struct{}{})
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
}

// TestConsumeBusyBacksOffToTheServer: while the service's inbox is full,
// messages are naked with a delay; MaxAckPending keeps the rest on the
// server (not in our memory); once the service drains, every message is
// applied exactly once and acked.
func TestConsumeBusyBacksOffToTheServer(t *testing.T) {
	js := connect(t)
	name, subject := stream(t, js)
	ref, release := ingresstest.OpenGate(t)
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
			Logger: ingresstest.BusyLogger(&busy)}, ingresstest.GatePass, ref)
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
	release()
	ingresstest.WaitAppliedOnce(t, ctx, ref, n)
	testutil.WaitFor(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Consume returned %v", err)
	}
}
