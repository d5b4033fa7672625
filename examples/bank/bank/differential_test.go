package bank_test

import (
	"cmp"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/reactortest"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// bankRun is one run of the bank workload: the database file survives
// every restart of the run.
type bankRun struct {
	path string
	db   *sqlreactor.DB
	ref  reactor.Ref
}

func bankStep[Req, Resp any](name string, r *reactor.MethodOf[sqlreactor.DB, Req, Resp], req Req) reactortest.Step[*bankRun] {
	return reactortest.Step[*bankRun]{Name: name, Do: func(ctx context.Context, b *bankRun) (any, error) {
		return r.Call(ctx, b.ref, req)
	}}
}

// TestBankDifferential feeds the journaled bank the same requests with a
// restart or a crash (the journal replayed against the database, which
// skips what it already committed) before each of them, and requires the
// same receipts, errors, statements and database.
func TestBankDifferential(t *testing.T) {
	tr := func(key, from, to string, amount int64) bank.Transfer {
		return bank.Transfer{Key: key, From: from, To: to, Amount: amount}
	}
	d := &reactortest.Differential[*bankRun]{
		New: func(_ testing.TB, dir string) *bankRun { return &bankRun{path: filepath.Join(dir, "bank.db")} },
		Open: func(t testing.TB, rt *reactor.Runtime, b *bankRun) {
			db, err := sqlite.Open(context.Background(), sqlite.Options{Path: b.path, Schema: bank.Schema})
			if err != nil {
				t.Fatal(err)
			}
			b.db = db
			if b.ref, err = bank.Register(rt, "/bank", db, reactor.Journaled()); err != nil {
				t.Fatal(err)
			}
		},
		Close: func(t testing.TB, b *bankRun) {
			if err := b.db.Close(); err != nil {
				t.Errorf("close database: %v", err)
			}
		},
		Steps: []reactortest.Step[*bankRun]{
			bankStep("open a", bank.Open, bank.OpenAccount{ID: "a"}),
			bankStep("open b", bank.Open, bank.OpenAccount{ID: "b"}),
			bankStep("open a again", bank.Open, bank.OpenAccount{ID: "a"}),
			bankStep("deposit a", bank.DepositMoney, bank.Deposit{Key: "d1", Account: "a", Amount: 1000}),
			bankStep("deposit nowhere", bank.DepositMoney, bank.Deposit{Key: "d2", Account: "zz", Amount: 5}),
			bankStep("a→b", bank.TransferMoney, tr("t1", "a", "b", 300)),
			bankStep("a→b retried", bank.TransferMoney, tr("t1", "a", "b", 300)),
			bankStep("key reused", bank.TransferMoney, tr("t1", "a", "b", 301)),
			bankStep("overdraft", bank.TransferMoney, tr("t2", "b", "a", 301)),
			bankStep("retry after overdraft", bank.TransferMoney, tr("t2", "b", "a", 300)),
			bankStep("bad amount", bank.TransferMoney, tr("t3", "a", "b", 0)),
			bankStep("to self", bank.TransferMoney, tr("t4", "a", "a", 1)),
			{Name: "balances", Do: func(ctx context.Context, b *bankRun) (any, error) {
				a, errA := bank.Balance.Call(ctx, b.ref, "a")
				bb, errB := bank.Balance.Call(ctx, b.ref, "b")
				return []any{a, errText(errA), bb, errText(errB)}, nil
			}},
			bankStep("open c", bank.Open, bank.OpenAccount{ID: "c"}),
			{Name: "batch of transfers", Do: func(ctx context.Context, b *bankRun) (any, error) {
				// Sent together so the reactor handles them in one batch
				// (one transaction, a savepoint each); each outcome
				// is the same in any order.
				reqs := []bank.Transfer{tr("t5", "a", "c", 100), tr("t6", "a", "b", 50), tr("t7", "zz", "a", 5), tr("t5", "a", "c", 100)}
				out := make([]any, len(reqs))
				var wg sync.WaitGroup
				for i, q := range reqs[:3] {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rc, err := bank.TransferMoney.Call(ctx, b.ref, q)
						out[i] = []any{rc, errText(err)}
					}()
				}
				wg.Wait()
				rc, err := bank.TransferMoney.Call(ctx, b.ref, reqs[3])
				out[3] = []any{rc, errText(err)}
				return out, nil
			}},
			{Name: "statement a", Do: func(ctx context.Context, b *bankRun) (any, error) {
				return statement(ctx, b.db, "a", 10)
			}},
			bankStep("deposit c", bank.DepositMoney, bank.Deposit{Key: "d3", Account: "c", Amount: 7}),
		},
		Final: func(ctx context.Context, b *bankRun) (any, error) {
			var out []any
			for _, id := range []string{"a", "b", "c"} {
				st, err := statement(ctx, b.db, id, 100)
				out = append(out, st, errText(err))
				acc, err := bank.Balance.Call(ctx, b.ref, id)
				out = append(out, acc, errText(err))
			}
			bal, dep, err := bank.Total(ctx, b.db)
			return append(out, bal, dep), err
		},
		// The bank has no keyed children: nothing to evict.
		Disruptions: []reactortest.Disruption{reactortest.Reload, reactortest.Crash, reactortest.ReloadCrash},
	}
	d.Run(t)
}

// statement is bank.Statement with lines of the same time in key order: a
// statement lists entries in ledger order, and the order of the batch of
// concurrent transfers above is whatever order they reached the reactor in
// (the test's clock stands still, so they share a time).
func statement(ctx context.Context, db *sqlreactor.DB, id string, limit int) ([]bank.Entry, error) {
	st, err := bank.Statement(ctx, db, id, limit)
	slices.SortStableFunc(st, func(x, y bank.Entry) int {
		if c := cmp.Compare(y.At, x.At); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})
	return st, err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
