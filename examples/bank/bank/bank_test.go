package bank_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/reactortest"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/postgres"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// hold blocks the reactor's turn so that the requests queued meanwhile are
// handled as one batch.
type holdReq struct{ started, gate chan struct{} }

var hold = sqlreactor.Method("banktest.hold", func(tx *sqlreactor.Tx, h holdReq) (bool, error) {
	close(h.started)
	<-h.gate
	return true, nil
})

// boom is a request function with a bug.
var boom = sqlreactor.Method("banktest.boom", func(tx *sqlreactor.Tx, id string) (int, error) {
	if _, err := tx.Exec(`UPDATE accounts SET balance = balance + 1000000 WHERE id = ?`, id); err != nil {
		return 0, err
	}
	var m map[string]int
	m["x"] = 1 // nil map write: panics after the update
	return 0, nil
})

type backend struct {
	name string
	open func(t *testing.T) *sqlreactor.DB
}

func backends(t *testing.T) []backend {
	return []backend{
		{"sqlite", func(t *testing.T) *sqlreactor.DB {
			db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "bank.db"), Schema: bank.Schema})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
		{"postgres", func(t *testing.T) *sqlreactor.DB {
			dsn := testenv.PostgresDSN(t)
			schema := fmt.Sprintf("banktest_%x", rand.Uint64())
			admin, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); admin.Close() })
			db, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, SearchPath: schema, Schema: bank.PostgresSchema})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}},
	}
}

func start(t *testing.T, db *sqlreactor.DB) reactor.Ref {
	rt, err := reactor.New(reactor.Config{CheckShared: reactortest.NoAliasing(t)})
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
	runtimes.Store(ref.Addr(), rt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rt.Close(ctx)
		db.Close()
	})
	return ref
}

func mustOpen(t *testing.T, ref reactor.Ref, ids ...string) {
	for _, id := range ids {
		if _, err := bank.Open.Call(context.Background(), ref, bank.OpenAccount{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadInputInOneBatch(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			db := b.open(t)
			ref := start(t, db)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			mustOpen(t, ref, "a", "b")
			if _, err := bank.DepositMoney.Call(ctx, ref, bank.Deposit{Key: "d1", Account: "a", Amount: 100}); err != nil {
				t.Fatal(err)
			}
			first, err := bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k1", From: "a", To: "b", Amount: 30})
			if err != nil {
				t.Fatal(err)
			}

			type outcome struct {
				name string
				call func() error
				want error // nil: must succeed
			}
			var replayed bank.Receipt
			cases := []outcome{
				{"ok", func() error {
					_, err := bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k2", From: "b", To: "a", Amount: 5})
					return err
				}, nil},
				{"unknown account", func() error {
					_, err := bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k3", From: "a", To: "nobody", Amount: 1})
					return err
				}, bank.ErrUnknownAccount},
				{"overdraft", func() error {
					_, err := bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k4", From: "a", To: "b", Amount: 1000})
					return err
				}, bank.ErrOverdraft},
				{"negative amount", func() error {
					_, err := bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k5", From: "a", To: "b", Amount: -7})
					return err
				}, bank.ErrBadAmount},
				{"negative deposit", func() error {
					_, err := bank.DepositMoney.Call(ctx, ref, bank.Deposit{Account: "a", Amount: -1})
					return err
				}, bank.ErrBadAmount},
				{"key reused with another body", func() error {
					_, err := bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k1", From: "a", To: "b", Amount: 31})
					return err
				}, bank.ErrKeyReused},
				{"retry gets the first answer", func() error {
					var err error
					replayed, err = bank.TransferMoney.Call(ctx, ref, bank.Transfer{Key: "k1", From: "a", To: "b", Amount: 30})
					return err
				}, nil},
				{"panicking request", func() error {
					_, err := boom.Call(ctx, ref, "b")
					return err
				}, sqlreactor.ErrPanic},
				{"ok 2", func() error {
					_, err := bank.DepositMoney.Call(ctx, ref, bank.Deposit{Key: "d2", Account: "b", Amount: 10})
					return err
				}, nil},
			}
			h := holdReq{started: make(chan struct{}), gate: make(chan struct{})}
			held := make(chan error, 1)
			go func() { _, err := hold.Call(ctx, ref, h); held <- err }()
			<-h.started
			errs := make([]error, len(cases))
			var wg sync.WaitGroup
			for i, c := range cases {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = c.call() }()
			}
			waitQueued(t, ref, len(cases))
			before := db.Stats()
			close(h.gate)
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			for i, c := range cases {
				switch {
				case c.want == nil && errs[i] != nil:
					t.Errorf("%s: unexpected error %v", c.name, errs[i])
				case c.want != nil && !errors.Is(errs[i], c.want):
					t.Errorf("%s: err = %v, want %v", c.name, errs[i], c.want)
				}
			}
			// Two batches: hold's, then every case together.
			if after := db.Stats(); after.Batches != before.Batches+2 || after.MaxBatch < uint64(len(cases)) {
				t.Errorf("the cases took %d batches (max %d requests), want 1 batch of %d", after.Batches-before.Batches-1, after.MaxBatch, len(cases))
			}
			if !replayed.Replayed || replayed.At != first.At || replayed.Amount != 30 {
				t.Errorf("retry receipt %+v, want the first %+v replayed", replayed, first)
			}
			for id, want := range map[string]int64{"a": 75, "b": 35} {
				acct, err := bank.Balance.Call(ctx, ref, id)
				if err != nil || acct.Balance != want {
					t.Errorf("balance %s = %d, %v; want %d", id, acct.Balance, err, want)
				}
			}
			bal, dep, err := bank.Total(ctx, db)
			if err != nil || bal != dep || bal != 110 {
				t.Errorf("total balances %d, deposits %d, err %v: want 110 both", bal, dep, err)
			}
			st, err := bank.Statement(ctx, db, "a", 10)
			if err != nil || len(st) != 3 {
				t.Fatalf("statement of a: %+v, %v; want 3 entries", st, err)
			}
			if _, err := bank.Statement(ctx, db, "nobody", 10); !errors.Is(err, bank.ErrUnknownAccount) {
				t.Errorf("statement of unknown account: %v", err)
			}
		})
	}
}

func waitQueued(t *testing.T, ref reactor.Ref, n int) {
	t.Helper()
	testutil.WaitFor(t, func() bool {
		for _, s := range refRuntime(ref).Stats() {
			if s.Addr == ref.Addr() && s.InboxDepth >= n {
				return true
			}
		}
		return false
	})
}

var runtimes sync.Map // address → *reactor.Runtime of the running test, set by start

func refRuntime(ref reactor.Ref) *reactor.Runtime {
	v, _ := runtimes.Load(ref.Addr())
	return v.(*reactor.Runtime)
}

func TestHTTP(t *testing.T) {
	db := backends(t)[0].open(t)
	ref := start(t, db)
	srv := httptest.NewServer(bank.Handler(db, ref, 5*time.Second))
	defer srv.Close()
	do := func(method, path, body string, hdr ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out any
		json.NewDecoder(resp.Body).Decode(&out)
		m, _ := out.(map[string]any)
		if l, ok := out.([]any); ok {
			m = map[string]any{"entries": l}
		}
		return resp.StatusCode, m
	}
	steps := []struct {
		method, path, body string
		hdr                []string
		status             int
		code               string
	}{
		{"POST", "/accounts", `{"id":"ann"}`, nil, 201, ""},
		{"POST", "/accounts", `{"id":"bob"}`, nil, 201, ""},
		{"POST", "/accounts", `{"id":"bob"}`, nil, 409, "account_exists"},
		{"POST", "/accounts/ann/deposits", `{"key":"d1","amount":500}`, nil, 200, ""},
		{"POST", "/transfers", `{"from":"ann","to":"bob","amount":200}`, []string{"Idempotency-Key", "t1"}, 200, ""},
		{"POST", "/transfers", `{"from":"ann","to":"bob","amount":200}`, []string{"Idempotency-Key", "t1"}, 200, ""},
		{"POST", "/transfers", `{"key":"t1","from":"ann","to":"bob","amount":201}`, nil, 422, "idempotency_key_reused"},
		{"POST", "/transfers", `{"key":"t2","from":"ann","to":"bob","amount":301}`, nil, 409, "insufficient_funds"},
		{"POST", "/transfers", `{"key":"t3","from":"ann","to":"zed","amount":1}`, nil, 404, "unknown_account"},
		{"POST", "/transfers", `{"key":"t4","from":"ann","to":"bob","amount":-1}`, nil, 400, "bad_amount"},
		{"POST", "/transfers", `{"key":"t5","from":"ann","to":"bob","amount":1,"extra":1}`, nil, 400, "invalid_body"},
		{"POST", "/transfers", `{"from":"ann","to":"bob","amount":1}`, nil, 400, "bad_request"},
		{"GET", "/accounts/ann", "", nil, 200, ""},
		{"GET", "/accounts/zed", "", nil, 404, "unknown_account"},
		{"GET", "/accounts/ann/statement", "", nil, 200, ""},
	}
	for _, s := range steps {
		status, body := do(s.method, s.path, s.body, s.hdr...)
		if status != s.status || (s.code != "" && body["error"] != s.code) {
			t.Errorf("%s %s %s: %d %v, want %d %s", s.method, s.path, s.body, status, body, s.status, s.code)
		}
	}
	if _, body := do("GET", "/accounts/ann", ""); body["balance"] != 300.0 {
		t.Errorf("ann's balance %v, want 300", body["balance"])
	}
	if _, body := do("GET", "/accounts/ann/statement", ""); len(body["entries"].([]any)) != 2 {
		t.Errorf("ann's statement %v, want 2 entries", body)
	}
}
