package main

// The bank example's transfer before its data design (commit e9df833 and
// earlier), kept here so that one run measures before and after: entries
// keyed by the TEXT idempotency key, with two statement indexes. Mode
// reactor-sqlite-cgo-old runs it through the same DB reactor.

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/sqlreactor"
)

// oldSchema is the bank's schema before the rowid ledger. The conventional
// PostgreSQL modes use it too: a unique key on the idempotency key is how a
// conventional design deduplicates.
var oldSchema = []string{
	`CREATE TABLE IF NOT EXISTS accounts (
		id TEXT PRIMARY KEY,
		balance BIGINT NOT NULL CHECK (balance >= 0))`,
	`CREATE TABLE IF NOT EXISTS entries (
		xkey TEXT PRIMARY KEY,
		src TEXT NOT NULL,
		dst TEXT NOT NULL,
		amount BIGINT NOT NULL,
		at BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS entries_src ON entries (src, at)`,
	`CREATE INDEX IF NOT EXISTS entries_dst ON entries (dst, at)`,
}

var oldSeed = sqlreactor.Method("sqlbench.old.seed", func(tx *sqlreactor.Tx, n int) (int, error) {
	for i := range n {
		if _, err := tx.Exec(`INSERT INTO accounts (id, balance) VALUES (?, ?)`, acct(i), initial); err != nil {
			return i, err
		}
		if _, err := tx.Exec(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, '', ?, ?, 0)`, "seed"+acct(i), acct(i), initial); err != nil {
			return i, err
		}
		tx.Put("old:"+acct(i), int64(initial)) // warm, as in a long-running server
	}
	return n, nil
})

func oldBalance(tx *sqlreactor.Tx, id string) (int64, error) {
	return sqlreactor.Cached(tx, "old:"+id, func(tx *sqlreactor.Tx) (int64, error) {
		var b int64
		err := tx.QueryRow(`SELECT balance FROM accounts WHERE id = ?`, id).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("%w: %q", bank.ErrUnknownAccount, id)
		}
		return b, err
	})
}

func oldAddBalance(tx *sqlreactor.Tx, id string, old, delta int64) error {
	if err := tx.Write(`UPDATE accounts SET balance = balance + ? WHERE id = ?`, delta, id); err != nil {
		return err
	}
	tx.Put("old:"+id, old+delta)
	return nil
}

// oldTransfer is bank.TransferMoney as it was (the key recorded by INSERT …
// ON CONFLICT DO NOTHING; the pipelined fast path's plain INSERT).
var oldTransfer = sqlreactor.Method("sqlbench.old.transfer", func(tx *sqlreactor.Tx, t bank.Transfer) (bank.Receipt, error) {
	from, err := oldBalance(tx, t.From)
	if err != nil {
		return bank.Receipt{}, err
	}
	to, err := oldBalance(tx, t.To)
	if err != nil {
		return bank.Receipt{}, err
	}
	r := bank.Receipt{Key: t.Key, From: t.From, To: t.To, Amount: t.Amount, At: tx.Now().UnixNano()}
	if tx.Deferring() && from >= t.Amount {
		if err := tx.Write(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, ?, ?, ?, ?)`, r.Key, r.From, r.To, r.Amount, r.At); err != nil {
			return bank.Receipt{}, err
		}
		if err := oldAddBalance(tx, t.From, from, -t.Amount); err != nil {
			return bank.Receipt{}, err
		}
		return r, oldAddBalance(tx, t.To, to, t.Amount)
	}
	res, err := tx.Exec(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (xkey) DO NOTHING`,
		r.Key, r.From, r.To, r.Amount, r.At)
	if err != nil {
		return bank.Receipt{}, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		// A retry: never in this workload.
		return bank.Receipt{}, fmt.Errorf("sqlbench: key %q: %d rows, %v", r.Key, n, err)
	}
	if from < t.Amount {
		return bank.Receipt{}, fmt.Errorf("%w: %q has %d, needs %d", bank.ErrOverdraft, t.From, from, t.Amount)
	}
	if err := oldAddBalance(tx, t.From, from, -t.Amount); err != nil {
		return bank.Receipt{}, err
	}
	return r, oldAddBalance(tx, t.To, to, t.Amount)
})
