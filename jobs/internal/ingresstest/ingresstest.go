// Package ingresstest holds the test services and set-up that the broker
// ingress tests (jobs/amqp, jobs/natsq) share, so that each exists once:
// a journaled Ledger that counts how often each entry was applied, a Gate
// whose handler blocks until released (to fill an inbox of one and meet
// ErrBusy), and a log handler that counts the consumer's busy records.
//
// Each test binary links this package once, so its method names are
// defined once per binary.
package ingresstest

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
)

// Entry is the message body the tests publish, as JSON.
type Entry struct {
	ID     string
	Amount int
}

// Body returns the JSON of an Entry with the given id and an amount of one.
func Body(id string) []byte { b, _ := json.Marshal(Entry{ID: id, Amount: 1}); return b }

// Ledger counts how often each entry was applied.
type Ledger struct{ Applied map[string]int }

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
	LedgerAdd  = reactor.Method("ingresstest.ledger.add", (*Ledger).Add)
	LedgerDump = reactor.Method("ingresstest.ledger.dump", (*Ledger).Dump, reactor.ReadOnly())
)

// OpenLedger opens a durable runtime in dir with a journaled Ledger at
// /ledger. close shuts it down within a second; a test that simulates a
// crash calls it and opens dir again.
func OpenLedger(t *testing.T, dir string) (rt *reactor.Runtime, close func(), ledger reactor.Ref) {
	t.Helper()
	rt, j := testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
		var err error
		ledger, err = reactor.Register(rt, "/ledger", &Ledger{}, reactor.Journaled())
		return err
	})
	return rt, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rt.Close(ctx)
		j.Close()
	}, ledger
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
	GatePass = reactor.Method("ingresstest.gate.pass", (*Gate).Pass)
	GateDump = reactor.Method("ingresstest.gate.dump", (*Gate).Dump, reactor.ReadOnly())
)

// OpenGate opens a durable runtime in a temporary directory with a
// journaled Gate at /gate whose inbox holds one message, its gate shut.
// release opens the gate; a cleanup of t opens it if the test did not, then
// closes the runtime.
func OpenGate(t *testing.T) (ref reactor.Ref, release func()) {
	t.Helper()
	g := make(chan struct{})
	gate = g
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{}, func(rt *reactor.Runtime) error {
		var err error
		ref, err = reactor.Register(rt, "/gate", &Gate{}, reactor.Journaled(), reactor.InboxSize(1))
		return err
	})
	released := false
	release = func() {
		if !released {
			released = true
			close(g)
		}
	}
	t.Cleanup(func() {
		release()
		rt.Close(context.Background())
		j.Close()
	})
	return ref, release
}

// WaitAppliedOnce waits until the Gate at ref has applied n distinct
// entries, then fails t if any was applied more than once.
func WaitAppliedOnce(t *testing.T, ctx context.Context, ref reactor.Ref, n int) {
	t.Helper()
	testutil.WaitFor(t, func() bool {
		m, _ := GateDump.Call(ctx, ref, struct{}{})
		return len(m) == n
	})
	m, _ := GateDump.Call(ctx, ref, struct{}{})
	for id, k := range m {
		if k != 1 {
			t.Fatalf("%s applied %d times: %v", id, k, m)
		}
	}
}

// BusyLogger returns a logger that counts in n the records whose message
// mentions "busy" (the consumer's "service busy" records) and drops all.
func BusyLogger(n *atomic.Int64) *slog.Logger { return slog.New(busyLog{n: n}) }

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
