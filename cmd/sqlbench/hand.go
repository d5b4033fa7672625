package main

// The hand-written single-writer loop: the baseline the DB reactor is
// measured against on the same schema, and the instrument that prices each
// schema choice (mode hand-<variant>). No reactor, no sqlreactor: one
// pinned SQLite connection, BEGIN IMMEDIATE, prepared statements, a
// savepoint per transfer, balances (and, where the variant says so,
// idempotency keys) in memory, group commit of whatever the clients have
// sent while the previous batch committed. Durability as the reactor's:
// WAL, synchronous=FULL, every transfer answered after its COMMIT.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// variant is one schema choice for the bank's tables.
type variant struct {
	name string
	doc  string
	// schema: accounts and entries (and their indexes).
	schema []string
	// intIDs: accounts keyed by INTEGER (rowid); external money is src 0.
	intIDs bool
	// ledger "xkey": entries keyed by the idempotency key (the old bank);
	// "seq": an append-only ledger keyed by INTEGER rowid.
	ledger string
	// dedup "unique": a unique key in SQL (INSERT … ON CONFLICT DO NOTHING,
	// rows affected); "window": a bounded in-memory window of keys, the
	// ledger rows being its durable copy.
	dedup string
	// chain: statements as a linked list (accounts.last, the entries'
	// src_prev/dst_prev), written with the rows a transfer writes anyway.
	chain bool
	// pageSize: PRAGMA page_size of the new file (0: SQLite's 4096).
	pageSize int
	// pragmas run on the writer after it is opened.
	pragmas []string
	// nums: accounts keyed by an INTEGER number (rowid), the TEXT id kept
	// in a UNIQUE index that transfers only read; entries keep TEXT ids.
	nums bool
}

const (
	accountsText = `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0))`
	accountsLast = `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0), last BIGINT NOT NULL DEFAULT 0)`
	entriesXkey  = `CREATE TABLE entries (xkey TEXT PRIMARY KEY, src TEXT NOT NULL, dst TEXT NOT NULL, amount BIGINT NOT NULL, at BIGINT NOT NULL)`
	entriesSeq   = `CREATE TABLE entries (seq INTEGER PRIMARY KEY, xkey TEXT NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,
		amount BIGINT NOT NULL, at BIGINT NOT NULL, src_prev BIGINT NOT NULL DEFAULT 0, dst_prev BIGINT NOT NULL DEFAULT 0)`
)

// variants: "old" is the bank example's schema before its data design,
// "ledger" the bank's schema now (examples/bank/bank.Schema, exactly); the
// others each change one choice, so that the table in docs/SQLREACTOR.md
// can price it.
var variants = []variant{
	{name: "old", doc: "entries keyed by TEXT idempotency key + indexes (src, at), (dst, at): the bank before",
		schema: []string{accountsText, entriesXkey,
			`CREATE INDEX entries_src ON entries (src, at)`, `CREATE INDEX entries_dst ON entries (dst, at)`},
		ledger: "xkey", dedup: "unique"},
	{name: "old-noidx", doc: "old without the two statement indexes (statements would scan)",
		schema: []string{accountsText, entriesXkey}, ledger: "xkey", dedup: "unique"},
	{name: "seq-unique-idx", doc: "rowid ledger, UNIQUE index on the key (kept forever), statement indexes (src, seq), (dst, seq)",
		schema: []string{accountsText, entriesSeq, `CREATE UNIQUE INDEX entries_xkey ON entries (xkey)`,
			`CREATE INDEX entries_src ON entries (src, seq)`, `CREATE INDEX entries_dst ON entries (dst, seq)`},
		ledger: "seq", dedup: "unique"},
	{name: "seq-unique-chain", doc: "rowid ledger, UNIQUE index on the key (kept forever), statements by chain",
		schema: []string{accountsLast, entriesSeq, `CREATE UNIQUE INDEX entries_xkey ON entries (xkey)`},
		ledger: "seq", dedup: "unique", chain: true},
	{name: "seq-window-idx", doc: "rowid ledger, keys in a memory window, statement indexes (src, seq), (dst, seq)",
		schema: []string{accountsText, entriesSeq,
			`CREATE INDEX entries_src ON entries (src, seq)`, `CREATE INDEX entries_dst ON entries (dst, seq)`},
		ledger: "seq", dedup: "window"},
	{name: "ledger-rowid", doc: "ledger with accounts as a rowid table (TEXT PRIMARY KEY: table + index)",
		schema: []string{accountsLast, entriesSeq}, ledger: "seq", dedup: "window", chain: true},
	{name: "ledger", doc: "THE BANK NOW (bank.Schema): rowid ledger, keys in a memory window, statements by chain, accounts WITHOUT ROWID",
		schema: bank.Schema, ledger: "seq", dedup: "window", chain: true},
	{name: "ledger-p1k", doc: "ledger with page_size 1024", schema: bank.Schema,
		ledger: "seq", dedup: "window", chain: true, pageSize: 1024},
	{name: "ledger-p2k", doc: "ledger with page_size 2048", schema: bank.Schema,
		ledger: "seq", dedup: "window", chain: true, pageSize: 2048},
	{name: "ledger-p8k", doc: "ledger with page_size 8192", schema: bank.Schema,
		ledger: "seq", dedup: "window", chain: true, pageSize: 8192},
	{name: "ledger-ckpt10k", doc: "ledger with wal_autocheckpoint 10000 pages (SQLite's: 1000)", schema: bank.Schema,
		ledger: "seq", dedup: "window", chain: true, pragmas: []string{"PRAGMA wal_autocheckpoint = 10000"}},
	{name: "ledger-nums", doc: "ledger with accounts keyed by an INTEGER number, the TEXT id UNIQUE (read only by transfers)",
		schema: []string{`CREATE TABLE accounts (num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, balance BIGINT NOT NULL CHECK (balance >= 0), last BIGINT NOT NULL DEFAULT 0)`, entriesSeq},
		ledger: "seq", dedup: "window", chain: true, nums: true},
	{name: "ledger-intids", doc: "ledger-rowid with INTEGER account ids (accounts keyed by rowid)",
		schema: []string{`CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0), last BIGINT NOT NULL DEFAULT 0)`,
			`CREATE TABLE entries (seq INTEGER PRIMARY KEY, xkey TEXT NOT NULL, src INTEGER NOT NULL, dst INTEGER NOT NULL,
				amount BIGINT NOT NULL, at BIGINT NOT NULL, src_prev BIGINT NOT NULL DEFAULT 0, dst_prev BIGINT NOT NULL DEFAULT 0)`},
		intIDs: true, ledger: "seq", dedup: "window", chain: true},
}

func variantByName(name string) (variant, bool) {
	for _, v := range variants {
		if v.name == name {
			return v, true
		}
	}
	return variant{}, false
}

func variantNames() []string {
	var out []string
	for _, v := range variants {
		out = append(out, "hand-"+v.name)
	}
	return out
}

type handReq struct {
	key      string
	from, to int
	amount   int64
	done     chan error // nil: applied; errOverdraft
}

var errOverdraft = errors.New("overdraft")

// handWindow is the hand loop's idempotency window: key → ledger seq, the
// oldest forgotten first beyond max keys (what the bank does).
type handWindow struct {
	seq  map[string]int64
	ring []string
	head int
	max  int
}

func (w *handWindow) add(key string, seq int64) {
	if len(w.ring) < w.max {
		w.ring = append(w.ring, key)
	} else {
		delete(w.seq, w.ring[w.head])
		w.ring[w.head] = key
		w.head = (w.head + 1) % w.max
	}
	w.seq[key] = seq
}

// initPageSize creates path with the given page size before WAL mode
// fixes it.
func initPageSize(driver, path string, size int) error {
	db, err := sql.Open(driver, "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{fmt.Sprintf("PRAGMA page_size = %d", size), "CREATE TABLE init_page_size (x)", "DROP TABLE init_page_size"} {
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

func runHand(cfg config, mode string, v variant) (result, error) {
	ctx := context.Background()
	driver := sqlite.DefaultDriver
	path := filepath.Join(cfg.dir, mode+".db")
	for _, sfx := range []string{"", "-wal", "-shm"} {
		os.Remove(path + sfx)
	}
	if v.pageSize != 0 {
		if err := initPageSize(driver, path, v.pageSize); err != nil {
			return result{}, fmt.Errorf("page size: %w", err)
		}
	}
	db, err := sql.Open(driver, sqlite.DSN(driver, path, 5*time.Second, false))
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	exec := func(q string, args ...any) error { _, err := conn.ExecContext(ctx, q, args...); return err }
	for _, q := range append(v.pragmas, v.schema...) {
		if err := exec(q); err != nil {
			return result{}, fmt.Errorf("schema: %w", err)
		}
	}
	id := func(i int) any {
		if v.intIDs {
			return int64(i + 1)
		}
		return acct(i)
	}
	var external any = ""
	if v.intIDs {
		external = int64(0)
	}
	// Seed: every account's opening deposit, in the ledger.
	bal := make([]int64, cfg.accounts)
	last := make([]int64, cfg.accounts)
	var seq int64
	if err := exec("BEGIN IMMEDIATE"); err != nil {
		return result{}, err
	}
	for i := range cfg.accounts {
		bal[i] = initial
		var err error
		if v.nums {
			err = exec(`INSERT INTO accounts (num, id, balance) VALUES (?, ?, ?)`, int64(i+1), id(i), initial)
		} else {
			err = exec(`INSERT INTO accounts (id, balance) VALUES (?, ?)`, id(i), initial)
		}
		if err != nil {
			return result{}, err
		}
		if v.ledger == "xkey" {
			err = exec(`INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, ?, ?, ?, 0)`, "seed"+acct(i), external, id(i), initial)
		} else {
			seq++
			err = exec(`INSERT INTO entries (seq, xkey, src, dst, amount, at, src_prev, dst_prev) VALUES (?, ?, ?, ?, ?, 0, 0, 0)`, seq, "seed"+acct(i), external, id(i), initial)
			if err == nil && v.chain {
				err = exec(`UPDATE accounts SET last = ? WHERE id = ?`, seq, id(i)) // by id in every variant
				last[i] = seq
			}
		}
		if err != nil {
			return result{}, err
		}
	}
	if err := exec("COMMIT"); err != nil {
		return result{}, err
	}

	var insertQ, updateQ string
	switch {
	case v.ledger == "xkey":
		insertQ = `INSERT INTO entries (xkey, src, dst, amount, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (xkey) DO NOTHING`
	case v.dedup == "unique":
		insertQ = `INSERT INTO entries (seq, xkey, src, dst, amount, at, src_prev, dst_prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (xkey) DO NOTHING`
	default:
		insertQ = `INSERT INTO entries (seq, xkey, src, dst, amount, at, src_prev, dst_prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	}
	updateQ = `UPDATE accounts SET balance = balance + ? WHERE id = ?`
	if v.chain {
		updateQ = `UPDATE accounts SET balance = balance + ?, last = ? WHERE id = ?`
	}
	if v.nums {
		updateQ = `UPDATE accounts SET balance = balance + ?, last = ? WHERE num = ?`
	}
	prep := func(q string) (*sql.Stmt, error) { return conn.PrepareContext(ctx, q) }
	var stmts [7]*sql.Stmt
	for i, q := range []string{insertQ, updateQ, "SAVEPOINT t", "RELEASE SAVEPOINT t", "ROLLBACK TO SAVEPOINT t", "BEGIN IMMEDIATE", "COMMIT"} {
		if stmts[i], err = prep(q); err != nil {
			return result{}, fmt.Errorf("prepare %q: %w", q, err)
		}
		defer stmts[i].Close()
	}
	insert, update, savepoint, release, rollback, begin, commit := stmts[0], stmts[1], stmts[2], stmts[3], stmts[4], stmts[5], stmts[6]
	win := &handWindow{seq: make(map[string]int64), max: 1 << 20}

	// transfer applies r inside the batch transaction, in a savepoint.
	transfer := func(r *handReq) error {
		if v.dedup == "window" {
			if _, ok := win.seq[r.key]; ok {
				return nil // a retry (never, in this workload)
			}
		}
		if bal[r.from] < r.amount {
			return errOverdraft
		}
		if _, err := savepoint.ExecContext(ctx); err != nil {
			return err
		}
		err := func() error {
			now := time.Now().UnixNano()
			var res sql.Result
			var err error
			if v.ledger == "xkey" {
				res, err = insert.ExecContext(ctx, r.key, id(r.from), id(r.to), r.amount, now)
			} else {
				res, err = insert.ExecContext(ctx, seq+1, r.key, id(r.from), id(r.to), r.amount, now, last[r.from], last[r.to])
			}
			if err != nil {
				return err
			}
			if v.dedup == "unique" {
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					return fmt.Errorf("key %s: %d rows, %v", r.key, n, err)
				}
			}
			for _, u := range [2]struct {
				i int
				d int64
			}{{r.from, -r.amount}, {r.to, r.amount}} {
				if v.nums {
					_, err = update.ExecContext(ctx, u.d, seq+1, int64(u.i+1))
				} else if v.chain {
					_, err = update.ExecContext(ctx, u.d, seq+1, id(u.i))
				} else {
					_, err = update.ExecContext(ctx, u.d, id(u.i))
				}
				if err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			rollback.ExecContext(ctx)
			release.ExecContext(ctx)
			return err
		}
		if _, err := release.ExecContext(ctx); err != nil {
			return err
		}
		seq++
		bal[r.from] -= r.amount
		bal[r.to] += r.amount
		if v.chain {
			last[r.from], last[r.to] = seq, seq
		}
		if v.dedup == "window" {
			win.add(r.key, seq)
		}
		return nil
	}

	reqs := make(chan *handReq, cfg.clients)
	stop := make(chan struct{})
	loopDone := make(chan error, 1)
	var batches, maxBatch uint64
	go func() {
		batch := make([]*handReq, 0, 1024)
		errs := make([]error, 0, 1024)
		for {
			var r *handReq
			select {
			case r = <-reqs:
			case <-stop:
				loopDone <- nil
				return
			}
			batch = append(batch[:0], r)
		drain:
			for len(batch) < cap(batch) {
				select {
				case r := <-reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			if _, err := begin.ExecContext(ctx); err != nil {
				loopDone <- err
				return
			}
			errs = errs[:0]
			for _, r := range batch {
				errs = append(errs, transfer(r))
			}
			if _, err := commit.ExecContext(ctx); err != nil {
				loopDone <- err
				return
			}
			batches++
			maxBatch = max(maxBatch, uint64(len(batch)))
			for i, r := range batch {
				r.done <- errs[i]
			}
		}
	}()
	r, err := drive(cfg, func(c, n int, rng *rand.Rand) (bool, int, error) {
		from, to, amt := pickIdx(rng, cfg.accounts)
		q := &handReq{key: fmt.Sprintf("c%d-%d", c, n), from: from, to: to, amount: amt, done: make(chan error, 1)}
		reqs <- q
		err := <-q.done
		if errors.Is(err, errOverdraft) {
			return false, 0, nil
		}
		return err == nil, 0, err
	})
	close(stop)
	if lerr := <-loopDone; lerr != nil && err == nil {
		err = lerr
	}
	if err != nil {
		return r, err
	}
	r.mode, r.batches, r.maxBatch = mode, batches, maxBatch
	var sum, dep int64
	err = conn.QueryRowContext(ctx, `SELECT COALESCE(SUM(balance), 0), (SELECT COALESCE(SUM(amount), 0) FROM entries WHERE src = ?) FROM accounts`, external).Scan(&sum, &dep)
	r.invariant = invariant(sum, dep, int64(cfg.accounts)*initial, err)
	var pageSize, pages int64
	if err := conn.QueryRowContext(ctx, `SELECT page_size, page_count FROM pragma_page_size(), pragma_page_count()`).Scan(&pageSize, &pages); err == nil {
		r.note = fmt.Sprintf("page_size %d, %d pages", pageSize, pages)
	}
	return r, nil
}

func pickIdx(rng *rand.Rand, n int) (int, int, int64) {
	a := rng.IntN(n)
	b := rng.IntN(n - 1)
	if b >= a {
		b++
	}
	return a, b, 1 + rng.Int64N(100)
}

// listVariants prints the hand-loop variants (-list).
func listVariants() {
	for _, v := range variants {
		fmt.Printf("%-24s %s\n", "hand-"+v.name, v.doc)
	}
}
