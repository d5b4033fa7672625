package bank_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// bankProc is one process of the bank on a SQLite file.
type bankProc struct {
	rt  *reactor.Runtime
	db  *sqlreactor.DB
	ref reactor.Ref
}

func startProc(t *testing.T, path string) *bankProc {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, Schema: bank.Schema})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := bank.Register(rt, "/bank", db)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := &bankProc{rt: rt, db: db, ref: ref}
	t.Cleanup(p.stop)
	return p
}

func (p *bankProc) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.rt.Close(ctx)
	p.db.Close()
}

func setWindow(t *testing.T, w bank.Window) {
	old := bank.KeyWindow
	bank.KeyWindow = w
	t.Cleanup(func() { bank.KeyWindow = old })
}

func balances(t *testing.T, p *bankProc, ids ...string) []int64 {
	t.Helper()
	var out []int64
	for _, id := range ids {
		a, err := bank.Balance.Call(context.Background(), p.ref, id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a.Balance)
	}
	return out
}

// TestIdempotencyWindow: a retried transfer with the same key is applied
// once — retried later, retried concurrently in one batch, and retried
// after a restart (the window is rebuilt from the ledger) — and a key is
// forgotten only beyond the window's bounds.
func TestIdempotencyWindow(t *testing.T) {
	setWindow(t, bank.Window{Age: time.Hour, Keys: 4})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bank.db")
	p := startProc(t, path)
	mustOpen(t, p.ref, "a", "b")
	if _, err := bank.DepositMoney.Call(ctx, p.ref, bank.Deposit{Key: "d1", Account: "a", Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	tr := func(p *bankProc, key string, amount int64) (bank.Receipt, error) {
		return bank.TransferMoney.Call(ctx, p.ref, bank.Transfer{Key: key, From: "a", To: "b", Amount: amount})
	}
	first, err := tr(p, "k1", 10)
	if err != nil || first.Replayed {
		t.Fatalf("k1: %+v, %v", first, err)
	}
	// The same key sent 8 times at once, in one batch: applied once.
	var wg sync.WaitGroup
	rcs := make([]bank.Receipt, 8)
	errs := make([]error, 8)
	for i := range rcs {
		wg.Add(1)
		go func() { defer wg.Done(); rcs[i], errs[i] = tr(p, "k2", 20) }()
	}
	wg.Wait()
	applied := 0
	for i := range rcs {
		if errs[i] != nil {
			t.Fatalf("k2 #%d: %v", i, errs[i])
		}
		if !rcs[i].Replayed {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("k2 sent 8 times at once: applied %d times, want 1", applied)
	}
	retry, err := tr(p, "k1", 10)
	if err != nil || !retry.Replayed || retry.At != first.At {
		t.Errorf("k1 retried: %+v, %v; want the first receipt %+v replayed", retry, err, first)
	}
	if _, err := tr(p, "k1", 11); !errors.Is(err, bank.ErrKeyReused) {
		t.Errorf("k1 with another amount: %v, want ErrKeyReused", err)
	}
	if got := balances(t, p, "a", "b"); got[0] != 970 || got[1] != 30 {
		t.Fatalf("balances %v, want [970 30]", got)
	}

	// After a restart the window is rebuilt from the ledger's tail.
	p.stop()
	p = startProc(t, path)
	retry, err = tr(p, "k1", 10)
	if err != nil || !retry.Replayed || retry.At != first.At {
		t.Errorf("k1 retried after a restart: %+v, %v; want the first receipt %+v replayed", retry, err, first)
	}
	if _, err := tr(p, "k2", 21); !errors.Is(err, bank.ErrKeyReused) {
		t.Errorf("k2 with another amount after a restart: %v, want ErrKeyReused", err)
	}
	if got := balances(t, p, "a", "b"); got[0] != 970 || got[1] != 30 {
		t.Fatalf("balances after a restart %v, want [970 30]", got)
	}

	// Beyond 4 keys the oldest are forgotten (d1, k1, k2 after three more):
	// a retry of k1 is then a new transfer — the window's documented bound.
	for _, k := range []string{"k3", "k4", "k5"} {
		if _, err := tr(p, k, 1); err != nil {
			t.Fatal(err)
		}
	}
	again, err := tr(p, "k1", 10)
	if err != nil || again.Replayed {
		t.Errorf("k1 beyond the window: %+v, %v; want applied anew", again, err)
	}
	if rc, err := tr(p, "k5", 1); err != nil || !rc.Replayed {
		t.Errorf("k5 (in the window): %+v, %v; want replayed", rc, err)
	}
	p.stop()
	p = startProc(t, path)
	if rc, err := tr(p, "k4", 1); err != nil || !rc.Replayed {
		t.Errorf("k4 after a restart (in the rebuilt window): %+v, %v; want replayed", rc, err)
	}
	if got := balances(t, p, "a", "b"); got[0] != 957 || got[1] != 43 {
		t.Errorf("balances %v, want [957 43]", got)
	}
	st, err := bank.Statement(ctx, p.db, "a", 100)
	if err != nil || len(st) != 7 || st[0].Key != "k1" || st[len(st)-1].Key != "d1" {
		t.Errorf("statement of a: %+v, %v; want 7 entries, newest (k1 again) first, d1 last", st, err)
	}

	// By age: a key older than Age is forgotten, after a restart too.
	setWindow(t, bank.Window{Age: 50 * time.Millisecond, Keys: 4})
	p.stop()
	time.Sleep(100 * time.Millisecond)
	p = startProc(t, path)
	if rc, err := tr(p, "k5", 1); err != nil || rc.Replayed {
		t.Errorf("k5 older than the window's age: %+v, %v; want applied anew", rc, err)
	}
	bal, dep, err := bank.Total(ctx, p.db)
	if err != nil || bal != 1000 || dep != 1000 {
		t.Errorf("total %d, deposits %d, %v; want 1000", bal, dep, err)
	}
}
