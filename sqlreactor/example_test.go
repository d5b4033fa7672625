package sqlreactor_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// Deposit is a business-level request: callers say what, never SQL.
type Deposit struct {
	Account string
	Amount  int64
}

var errNegative = errors.New("amount must be positive")

var deposit = sqlreactor.Method("example.deposit", func(tx *sqlreactor.Tx, d Deposit) (int64, error) {
	if d.Amount <= 0 {
		return 0, errNegative // this request's savepoint is rolled back; the batch goes on
	}
	bal, err := sqlreactor.Cached(tx, "acct:"+d.Account, func(tx *sqlreactor.Tx) (int64, error) {
		var b int64
		err := tx.QueryRow(`SELECT balance FROM accounts WHERE id = ?`, d.Account).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.Exec(`INSERT INTO accounts (id, balance) VALUES (?, 0)`, d.Account)
		}
		return b, err
	})
	if err != nil {
		return 0, err
	}
	bal += d.Amount
	if _, err := tx.Exec(`UPDATE accounts SET balance = ? WHERE id = ?`, bal, d.Account); err != nil {
		return 0, err
	}
	tx.Put("acct:"+d.Account, bal) // keep the cache coherent
	return bal, nil
})

func Example() {
	dir, _ := os.MkdirTemp("", "sqlreactor-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := sqlite.Open(ctx, sqlite.Options{
		Path:   filepath.Join(dir, "bank.db"),
		Schema: []string{`CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)`},
	})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	rt, _ := reactor.New(reactor.Config{})
	ref, _ := reactor.Register(rt, "/db", db)
	_ = rt.Start(ctx)
	defer rt.Close(ctx)

	bal, err := deposit.Call(ctx, ref, Deposit{Account: "ann", Amount: 100}) // answered after COMMIT
	fmt.Println(bal, err)
	_, err = deposit.Call(ctx, ref, Deposit{Account: "ann", Amount: -5})
	fmt.Println(err)

	// Reports go to the read-only pool, never to the writer.
	var total int64
	_ = db.View(ctx, func(r *sqlreactor.ReadTx) error {
		return r.QueryRow(`SELECT SUM(balance) FROM accounts`).Scan(&total)
	})
	fmt.Println(total)
	// Output:
	// 100 <nil>
	// amount must be positive
	// 100
}
