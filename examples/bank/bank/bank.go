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
	"slices"
	"strings"
	"time"

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

// Schema is the bank's tables on SQLite (PostgresSchema is the same on
// PostgreSQL). It is designed for a single writer that commits small
// batches with an fsync each, where the cost of a commit is the number of
// pages it dirties (docs/SQLREACTOR.md, "Data design"):
//
//   - entries is the ledger, append-only, keyed by seq, the bank's own
//     increasing number (INTEGER PRIMARY KEY is SQLite's rowid): a batch's
//     entries land on the last page or two of one b-tree.
//   - The idempotency key is a column of the entry, not an index: keys are
//     checked against a bounded window of recent keys kept in memory
//     (KeyWindow) and rebuilt from the ledger's tail at start.
//   - accounts is WITHOUT ROWID: one b-tree keyed by the id, so that an
//     UPDATE by id finds its row in one descent instead of an index's and
//     then the table's.
//   - A statement is a linked list: each entry holds the previous entry of
//     its source and of its destination (src_prev, dst_prev) and an
//     account's newest entry is accounts.last, written by the UPDATE of the
//     balance that a transfer makes anyway. No secondary index.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS accounts (
		id TEXT PRIMARY KEY,
		balance BIGINT NOT NULL CHECK (balance >= 0),
		last BIGINT NOT NULL DEFAULT 0) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS entries (
		seq INTEGER PRIMARY KEY,
		xkey TEXT NOT NULL,
		src TEXT NOT NULL,
		dst TEXT NOT NULL,
		amount BIGINT NOT NULL,
		at BIGINT NOT NULL,
		src_prev BIGINT NOT NULL,
		dst_prev BIGINT NOT NULL)`,
}

// PostgresSchema is Schema for PostgreSQL, whose INTEGER is 32 bits and
// whose tables are all keyed by their primary key's index.
var PostgresSchema = []string{
	strings.TrimSuffix(Schema[0], " WITHOUT ROWID"),
	strings.Replace(Schema[1], "seq INTEGER PRIMARY KEY", "seq BIGINT PRIMARY KEY", 1),
}

// SchemaFor returns the schema for a dialect name ("sqlite", "postgres").
func SchemaFor(dialect string) []string {
	if dialect == "postgres" {
		return PostgresSchema
	}
	return Schema
}

// Window bounds the idempotency window: a key is remembered while its
// entry is younger than Age and among the newest Keys entries, whichever
// ends first. A retry with a forgotten key is a new transfer.
type Window struct {
	Age  time.Duration
	Keys int
}

// KeyWindow is the idempotency window of the DBs the bank's requests run
// on (its bounds are read as keys are added and when a DB's window is
// rebuilt at start). Memory: about 100–150 bytes per key plus the key
// itself (a full default window: 100–200 MB); the rebuild at start reads
// at most Keys rows of the ledger's tail.
var KeyWindow = Window{Age: 24 * time.Hour, Keys: 1_000_000}

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
func lastKey(id string) string { return "last:" + id }

// account returns id's balance and the seq of its newest entry, through
// the coherent cache.
func account(tx *sqlreactor.Tx, id string) (bal, last int64, err error) {
	b, okb := tx.Get(acctKey(id))
	l, okl := tx.Get(lastKey(id))
	if bal, ok := b.(int64); ok && okb {
		if last, ok := l.(int64); ok && okl {
			return bal, last, nil
		}
	}
	err = tx.QueryRow(`SELECT balance, last FROM accounts WHERE id = ?`, id).Scan(&bal, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("%w: %q", ErrUnknownAccount, id)
	}
	if err != nil {
		return 0, 0, err
	}
	tx.Put(acctKey(id), bal)
	tx.Put(lastKey(id), last)
	return bal, last, nil
}

// setAccount applies delta to a balance the request knows from the cache
// and makes seq the account's newest entry: a Write, queued with the
// batch's other statements on PostgreSQL.
func setAccount(tx *sqlreactor.Tx, id string, old, delta, seq int64) error {
	if err := tx.Write(`UPDATE accounts SET balance = balance + ?, last = ? WHERE id = ?`, delta, seq, id); err != nil {
		return fmt.Errorf("bank: update %q: %w", id, err)
	}
	tx.Put(acctKey(id), old+delta)
	tx.Put(lastKey(id), seq)
	return nil
}

// ledger is a DB's writer-side ledger state (a sqlreactor.Local): the next
// entry number and the idempotency window. Neither is undone when a
// request rolls back: a number is then skipped, and a window entry is a
// hint checked against the ledger row it names before it is trusted.
type ledger struct {
	next int64            // seq of the next entry
	keys map[string]int64 // idempotency key → seq of its entry
	ring []windowKey      // the window's keys, oldest first, from head
	head int
}

type windowKey struct {
	key     string
	seq, at int64
}

var errStop = errors.New("stop")

// ledgerOf returns the DB's ledger state, built on first use from the
// ledger's tail.
func ledgerOf(tx *sqlreactor.Tx) (*ledger, error) {
	return sqlreactor.Local(tx, "bank.ledger", func(tx *sqlreactor.Tx) (*ledger, error) {
		l := &ledger{keys: make(map[string]int64)}
		var top int64
		if err := tx.QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM entries`).Scan(&top); err != nil {
			return nil, fmt.Errorf("bank: read the ledger (a database of the bank's schema before the rowid ledger must be migrated): %w", err)
		}
		l.next = top + 1
		w := KeyWindow
		cutoff := tx.Now().Add(-w.Age).UnixNano()
		err := tx.Query(`SELECT seq, xkey, at FROM entries ORDER BY seq DESC LIMIT ?`, []any{w.Keys}, func(rows *sql.Rows) error {
			var k windowKey
			if err := rows.Scan(&k.seq, &k.key, &k.at); err != nil {
				return err
			}
			if k.at < cutoff {
				return errStop
			}
			l.ring = append(l.ring, k)
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, fmt.Errorf("bank: read the idempotency window: %w", err)
		}
		slices.Reverse(l.ring)
		for _, k := range l.ring {
			l.keys[k.key] = k.seq
		}
		return l, nil
	})
}

// remember adds key (entry seq, time at) to the window and forgets the
// keys beyond its bounds.
func (l *ledger) remember(key string, seq, at int64) {
	l.ring = append(l.ring, windowKey{key: key, seq: seq, at: at})
	l.keys[key] = seq
	w := KeyWindow
	cutoff := at - int64(w.Age)
	for l.head < len(l.ring) && (len(l.ring)-l.head > w.Keys || l.ring[l.head].at < cutoff) {
		k := l.ring[l.head]
		if l.keys[k.key] == k.seq {
			delete(l.keys, k.key)
		}
		l.ring[l.head] = windowKey{}
		l.head++
	}
	if l.head > 1024 && l.head > len(l.ring)/2 {
		n := copy(l.ring, l.ring[l.head:])
		clear(l.ring[n:])
		l.ring, l.head = l.ring[:n], 0
	}
}

// seen returns the first receipt of key if the window holds it and its
// entry is in the ledger (it may name an entry of a request that was
// rolled back since), or ErrKeyReused if that receipt's body differs.
func (l *ledger) seen(tx *sqlreactor.Tx, r Receipt) (Receipt, bool, error) {
	seq, ok := l.keys[r.Key]
	if !ok {
		return r, false, nil
	}
	first := Receipt{}
	err := tx.QueryRow(`SELECT xkey, src, dst, amount, at FROM entries WHERE seq = ?`, seq).Scan(&first.Key, &first.From, &first.To, &first.Amount, &first.At)
	if errors.Is(err, sql.ErrNoRows) || err == nil && first.Key != r.Key {
		delete(l.keys, r.Key) // rolled back: not applied
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("bank: read entry %q: %w", r.Key, err)
	}
	if first.From != r.From || first.To != r.To || first.Amount != r.Amount {
		return r, false, fmt.Errorf("%w: key %q was %s→%s %d", ErrKeyReused, r.Key, first.From, first.To, first.Amount)
	}
	first.Replayed = true
	return first, true, nil
}

// apply appends r to the ledger and moves its amount: from r.From (unless
// External) to r.To, whose balances and newest entries the request read.
func (l *ledger) apply(tx *sqlreactor.Tx, r Receipt, from, fromLast, to, toLast int64) error {
	seq := l.next
	l.next++
	if err := tx.Write(`INSERT INTO entries (seq, xkey, src, dst, amount, at, src_prev, dst_prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		seq, r.Key, r.From, r.To, r.Amount, r.At, fromLast, toLast); err != nil {
		return fmt.Errorf("bank: record %q: %w", r.Key, err)
	}
	if r.From != External {
		if err := setAccount(tx, r.From, from, -r.Amount, seq); err != nil {
			return err
		}
	}
	if err := setAccount(tx, r.To, to, r.Amount, seq); err != nil {
		return err
	}
	l.remember(r.Key, seq, r.At)
	return nil
}

// The bank's requests. Send them to the sqlreactor.DB registered with
// Register.
var (
	Open = sqlreactor.Method("bank.open", func(tx *sqlreactor.Tx, r OpenAccount) (Account, error) {
		if r.ID == "" || len(r.ID) > 64 {
			return Account{}, fmt.Errorf("%w: account id must be 1 to 64 bytes", ErrBadRequest)
		}
		res, err := tx.Exec(`INSERT INTO accounts (id, balance, last) VALUES (?, 0, 0) ON CONFLICT (id) DO NOTHING`, r.ID)
		if err != nil {
			return Account{}, fmt.Errorf("bank: open %q: %w", r.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return Account{}, fmt.Errorf("%w: %q", ErrAccountExists, r.ID)
		}
		tx.Put(acctKey(r.ID), int64(0))
		tx.Put(lastKey(r.ID), int64(0))
		return Account{ID: r.ID}, nil
	})

	DepositMoney = sqlreactor.Method("bank.deposit", func(tx *sqlreactor.Tx, d Deposit) (Receipt, error) {
		if d.Amount <= 0 {
			return Receipt{}, fmt.Errorf("%w: %d", ErrBadAmount, d.Amount)
		}
		if d.Key == "" {
			d.Key = fmt.Sprintf("dep-%016x", tx.Ctx().Rand().Uint64())
		}
		bal, last, err := account(tx, d.Account)
		if err != nil {
			return Receipt{}, err
		}
		l, err := ledgerOf(tx)
		if err != nil {
			return Receipt{}, err
		}
		r := Receipt{Key: d.Key, From: External, To: d.Account, Amount: d.Amount, At: tx.Now().UnixNano()}
		if rc, dup, err := l.seen(tx, r); err != nil || dup {
			return rc, err
		}
		return r, l.apply(tx, r, 0, 0, bal, last)
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
		from, fromLast, err := account(tx, t.From)
		if err != nil {
			return Receipt{}, err
		}
		to, toLast, err := account(tx, t.To)
		if err != nil {
			return Receipt{}, err
		}
		l, err := ledgerOf(tx)
		if err != nil {
			return Receipt{}, err
		}
		// The key first: a retry of a transfer that went through must get
		// its receipt, not an overdraft.
		r := Receipt{Key: t.Key, From: t.From, To: t.To, Amount: t.Amount, At: tx.Now().UnixNano()}
		if rc, dup, err := l.seen(tx, r); err != nil || dup {
			return rc, err
		}
		if from < t.Amount {
			return Receipt{}, fmt.Errorf("%w: %q has %d, needs %d", ErrOverdraft, t.From, from, t.Amount)
		}
		return r, l.apply(tx, r, from, fromLast, to, toLast)
	})

	// Balance answers from the coherent cache (loading the row once).
	Balance = sqlreactor.Method("bank.balance", func(tx *sqlreactor.Tx, id string) (Account, error) {
		b, _, err := account(tx, id)
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
		// Walk the account's chain from its newest entry: one primary-key
		// lookup per line, no index to maintain on the writer.
		return r.Query(`WITH RECURSIVE chain (seq, n) AS (
				SELECT last, 1 FROM accounts WHERE id = ? AND last > 0
				UNION ALL
				SELECT CASE WHEN e.src = ? THEN e.src_prev ELSE e.dst_prev END, c.n + 1
				FROM chain c JOIN entries e ON e.seq = c.seq
				WHERE c.n < ?)
			SELECT e.xkey, e.src, e.dst, e.amount, e.at FROM chain c JOIN entries e ON e.seq = c.seq ORDER BY c.n`,
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
// read pool: after any sequence of transfers they are equal. It reads the
// whole ledger (an audit, not a request path).
func Total(ctx context.Context, db *sqlreactor.DB) (balances, deposits int64, err error) {
	err = db.View(ctx, func(r *sqlreactor.ReadTx) error {
		if err := r.QueryRow(`SELECT COALESCE(SUM(balance), 0) FROM accounts`).Scan(&balances); err != nil {
			return err
		}
		return r.QueryRow(`SELECT COALESCE(SUM(amount), 0) FROM entries WHERE src = ''`).Scan(&deposits)
	})
	return balances, deposits, err
}
