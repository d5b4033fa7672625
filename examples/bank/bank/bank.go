// Package bank is the ledger example of the DB server reactor: accounts and
// transfers as business-level requests to a sqlreactor.DB (no overdraft,
// each transfer exactly once by its idempotency key), statements from the
// read-only pool, and an HTTP API (Handler).
package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/sqlreactor"
)

// Errors a caller can get. Each is that caller's alone: the request is
// rolled back in its own savepoint and the batch's other requests commit.
var (
	ErrUnknownAccount = errors.New("bank: unknown account")
	ErrAccountExists  = errors.New("bank: account already exists")
	ErrOverdraft      = errors.New("bank: insufficient funds")
	ErrBadAmount      = errors.New("bank: amount must be positive")
	ErrBadRequest     = errors.New("bank: invalid request")
	// ErrKeyReused: an idempotency key came back with a different body.
	ErrKeyReused = errors.New("bank: idempotency key reused with a different request")
)

// Schema is the bank's tables. entries is the ledger and the idempotency
// record at once: one row per deposit or transfer, keyed by its key.
var Schema = []string{
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

// External is the src of a deposit.
const External = ""

// Account is an account and its balance (in cents).
type Account struct {
	ID      string `json:"id"`
	Balance int64  `json:"balance"`
}

// OpenAccount opens an account with a zero balance.
type OpenAccount struct {
	ID string `json:"id"`
}

// Deposit adds money from outside the bank.
type Deposit struct {
	Key     string `json:"key"`
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Transfer moves Amount from From to To, once per Key.
type Transfer struct {
	Key    string `json:"key"`
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
}

// Receipt is the answer to a transfer or deposit. A retried request (same
// key, same body) gets the first receipt again, with Replayed set.
type Receipt struct {
	Key      string `json:"key"`
	From     string `json:"from"`
	To       string `json:"to"`
	Amount   int64  `json:"amount"`
	At       int64  `json:"at"` // unix nanoseconds of the first execution
	Replayed bool   `json:"replayed,omitempty"`
}

func acctKey(id string) string { return "acct:" + id }

// balance returns id's balance through the coherent cache.
func balance(tx *sqlreactor.Tx, id string) (int64, error) {
	return sqlreactor.Cached(tx, acctKey(id), func(tx *sqlreactor.Tx) (int64, error) {
		var b int64
		err := tx.QueryRow(`SELECT balance FROM accounts WHERE id = ?`, id).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("%w: %q", ErrUnknownAccount, id)
		}
		return b, err
	})
}

// addBalance changes a balance whose value the request knows from the
// cache: a Write, queued with the batch's other statements on PostgreSQL.
func addBalance(tx *sqlreactor.Tx, id string, old, delta int64) error {
	if err := tx.Write(`UPDATE accounts SET balance = balance + ? WHERE id = ?`, delta, id); err != nil {
		return fmt.Errorf("bank: update %q: %w", id, err)
	}
	tx.Put(acctKey(id), old+delta)
	return nil
}

// record inserts the ledger entry under key, or, if the key was used
// before, returns the first receipt (or ErrKeyReused if the body differs).
func record(tx *sqlreactor.Tx, r Receipt) (Receipt, bool, error) {
	res, err := tx.Exec(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (xkey) DO NOTHING`,
		r.Key, r.From, r.To, r.Amount, r.At)
	if err != nil {
		return r, false, fmt.Errorf("bank: record %q: %w", r.Key, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return r, false, err
	}
	var first Receipt
	first.Key = r.Key
	if err := tx.QueryRow(`SELECT src, dst, amount, at FROM entries WHERE xkey = ?`, r.Key).Scan(&first.From, &first.To, &first.Amount, &first.At); err != nil {
		return r, false, fmt.Errorf("bank: read entry %q: %w", r.Key, err)
	}
	if first.From != r.From || first.To != r.To || first.Amount != r.Amount {
		return r, false, fmt.Errorf("%w: key %q was %s→%s %d", ErrKeyReused, r.Key, first.From, first.To, first.Amount)
	}
	first.Replayed = true
	return first, true, nil
}

// recordNew queues the ledger entry of r as a new key (a plain INSERT) and
// the balance change of the account it debits or credits. If the key was
// used before, the INSERT fails when the batch's pipeline runs: the
// request is rolled back and run again with statements sent at once
// (tx.Deferring() false), and then takes the record path, which returns
// the first receipt or ErrKeyReused.
func recordNew(tx *sqlreactor.Tx, r Receipt, id string, old, delta int64) error {
	if err := tx.Write(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, ?, ?, ?, ?)`,
		r.Key, r.From, r.To, r.Amount, r.At); err != nil {
		return fmt.Errorf("bank: record %q: %w", r.Key, err)
	}
	return addBalance(tx, id, old, delta)
}

// The bank's requests. Send them to the sqlreactor.DB registered with
// Register.
var (
	Open = sqlreactor.Method("bank.open", func(tx *sqlreactor.Tx, r OpenAccount) (Account, error) {
		if r.ID == "" || len(r.ID) > 64 {
			return Account{}, fmt.Errorf("%w: account id must be 1 to 64 bytes", ErrBadRequest)
		}
		res, err := tx.Exec(`INSERT INTO accounts (id, balance) VALUES (?, 0) ON CONFLICT (id) DO NOTHING`, r.ID)
		if err != nil {
			return Account{}, fmt.Errorf("bank: open %q: %w", r.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return Account{}, fmt.Errorf("%w: %q", ErrAccountExists, r.ID)
		}
		tx.Put(acctKey(r.ID), int64(0))
		return Account{ID: r.ID}, nil
	})

	DepositMoney = sqlreactor.Method("bank.deposit", func(tx *sqlreactor.Tx, d Deposit) (Receipt, error) {
		if d.Amount <= 0 {
			return Receipt{}, fmt.Errorf("%w: %d", ErrBadAmount, d.Amount)
		}
		if d.Key == "" {
			d.Key = fmt.Sprintf("dep-%016x", tx.Ctx().Rand().Uint64())
		}
		bal, err := balance(tx, d.Account)
		if err != nil {
			return Receipt{}, err
		}
		r := Receipt{Key: d.Key, From: External, To: d.Account, Amount: d.Amount, At: tx.Now().UnixNano()}
		if tx.Deferring() {
			return r, recordNew(tx, r, d.Account, bal, d.Amount)
		}
		rc, dup, err := record(tx, r)
		if err != nil || dup {
			return rc, err
		}
		return rc, addBalance(tx, d.Account, bal, d.Amount)
	})

	TransferMoney = sqlreactor.Method("bank.transfer", func(tx *sqlreactor.Tx, t Transfer) (Receipt, error) {
		switch {
		case t.Amount <= 0:
			return Receipt{}, fmt.Errorf("%w: %d", ErrBadAmount, t.Amount)
		case t.Key == "" || len(t.Key) > 128:
			return Receipt{}, fmt.Errorf("%w: a transfer needs an idempotency key of 1 to 128 bytes", ErrBadRequest)
		case t.From == t.To:
			return Receipt{}, fmt.Errorf("%w: transfer to the same account", ErrBadRequest)
		}
		from, err := balance(tx, t.From)
		if err != nil {
			return Receipt{}, err
		}
		to, err := balance(tx, t.To)
		if err != nil {
			return Receipt{}, err
		}
		r := Receipt{Key: t.Key, From: t.From, To: t.To, Amount: t.Amount, At: tx.Now().UnixNano()}
		if tx.Deferring() && from >= t.Amount {
			// The common case, in one pipeline with the batch: a new key
			// and enough money.
			if err := recordNew(tx, r, t.From, from, -t.Amount); err != nil {
				return Receipt{}, err
			}
			return r, addBalance(tx, t.To, to, t.Amount)
		}
		// The key first: a retry of a transfer that went through must get
		// its receipt, not an overdraft.
		rc, dup, err := record(tx, r)
		if err != nil || dup {
			return rc, err
		}
		if from < t.Amount {
			return Receipt{}, fmt.Errorf("%w: %q has %d, needs %d", ErrOverdraft, t.From, from, t.Amount)
		}
		if err := addBalance(tx, t.From, from, -t.Amount); err != nil {
			return Receipt{}, err
		}
		return rc, addBalance(tx, t.To, to, t.Amount)
	})

	// Balance answers from the coherent cache (loading the row once).
	Balance = sqlreactor.Method("bank.balance", func(tx *sqlreactor.Tx, id string) (Account, error) {
		b, err := balance(tx, id)
		return Account{ID: id, Balance: b}, err
	})
)

// Register registers db as the bank's DB reactor at addr.
func Register(rt *reactor.Runtime, addr string, db *sqlreactor.DB, opts ...reactor.Option) (reactor.Ref, error) {
	opts = append([]reactor.Option{reactor.InboxSize(8192), reactor.BatchSize(1024)}, opts...)
	return reactor.Register(rt, addr, db, opts...)
}

// Entry is one line of a statement.
type Entry struct {
	Key    string `json:"key"`
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"` // signed from the account's point of view
	At     int64  `json:"at"`
}

// Statement lists an account's latest entries, newest first, from the
// read-only pool: it never waits for, or slows down, the writer.
func Statement(ctx context.Context, db *sqlreactor.DB, id string, limit int) ([]Entry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var out []Entry
	err := db.View(ctx, func(r *sqlreactor.ReadTx) error {
		var n int
		if err := r.QueryRow(`SELECT COUNT(*) FROM accounts WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: %q", ErrUnknownAccount, id)
		}
		return r.Query(`SELECT xkey, src, dst, amount, at FROM entries WHERE src = ? OR dst = ? ORDER BY at DESC, xkey LIMIT ?`,
			[]any{id, id, limit}, func(rows *sql.Rows) error {
				var e Entry
				if err := rows.Scan(&e.Key, &e.From, &e.To, &e.Amount, &e.At); err != nil {
					return err
				}
				if e.From == id {
					e.Amount = -e.Amount
				}
				out = append(out, e)
				return nil
			})
	})
	return out, err
}

// Total is the sum of all balances and the sum of all deposits, from the
// read pool: after any sequence of transfers they are equal.
func Total(ctx context.Context, db *sqlreactor.DB) (balances, deposits int64, err error) {
	err = db.View(ctx, func(r *sqlreactor.ReadTx) error {
		if err := r.QueryRow(`SELECT COALESCE(SUM(balance), 0) FROM accounts`).Scan(&balances); err != nil {
			return err
		}
		return r.QueryRow(`SELECT COALESCE(SUM(amount), 0) FROM entries WHERE src = ''`).Scan(&deposits)
	})
	return balances, deposits, err
}
