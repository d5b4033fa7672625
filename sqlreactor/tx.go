package sqlreactor

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/reactorgo/reactor"
)

// Tx is a request's handle on the writer: SQL inside the request's own
// savepoint of the batch transaction, and the coherent cache, whose changes
// are undone with the savepoint. A Tx is valid only while its request
// function runs. Queries use '?' placeholders whatever the backend.
type Tx struct {
	db      *DB
	c       *reactor.Ctx
	sp      string // savepoint name, "" until the request's first statement
	undo    []undoRec
	stmtErr error // first statement error (PostgreSQL aborts the transaction on it)
}

func (tx *Tx) reset(c *reactor.Ctx) {
	tx.c, tx.sp, tx.stmtErr = c, "", nil
	clear(tx.undo)
	tx.undo = tx.undo[:0]
}

// Ctx is the reactor context of the request: Now, Rand, Replaying, Logger.
func (tx *Tx) Ctx() *reactor.Ctx { return tx.c }

// Now is the request's time (recorded, for journaled services).
func (tx *Tx) Now() time.Time { return tx.c.Now() }

// savepoint opens the batch transaction and the request's savepoint, once.
func (tx *Tx) savepoint() error {
	if tx.sp != "" {
		return nil
	}
	db := tx.db
	if err := db.begin(db.ctx); err != nil {
		return err
	}
	db.spSeq++
	name := "r" + strconv.Itoa(db.spSeq)
	if _, err := db.conn.ExecContext(db.ctx, "SAVEPOINT "+name); err != nil {
		db.poison(err)
		return fmt.Errorf("sqlreactor: savepoint: %w", err)
	}
	db.stats.savepoints.Add(1)
	tx.sp = name
	return nil
}

func (tx *Tx) note(err error) error {
	if err != nil && tx.stmtErr == nil && !errors.Is(err, sql.ErrNoRows) {
		tx.stmtErr = err
	}
	return err
}

// Exec runs a statement that returns no rows.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	if err := tx.savepoint(); err != nil {
		return nil, err
	}
	st, err := tx.db.stmt(tx.db.ctx, query)
	if err != nil {
		return nil, tx.note(err)
	}
	res, err := st.ExecContext(tx.db.ctx, args...)
	return res, tx.note(err)
}

// Row is the result of QueryRow.
type Row struct {
	tx  *Tx
	row *sql.Row
	err error
}

// Scan copies the row's columns into dest; it returns sql.ErrNoRows when
// the query matched nothing.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	return r.tx.note(r.row.Scan(dest...))
}

// QueryRow runs a query expected to return at most one row.
func (tx *Tx) QueryRow(query string, args ...any) *Row {
	if err := tx.savepoint(); err != nil {
		return &Row{err: err}
	}
	st, err := tx.db.stmt(tx.db.ctx, query)
	if err != nil {
		return &Row{err: tx.note(err)}
	}
	return &Row{tx: tx, row: st.QueryRowContext(tx.db.ctx, args...)}
}

// Query runs a query and calls each for every row. The rows are closed
// before Query returns: a request leaves no cursor open.
func (tx *Tx) Query(query string, args []any, each func(*sql.Rows) error) error {
	if err := tx.savepoint(); err != nil {
		return err
	}
	st, err := tx.db.stmt(tx.db.ctx, query)
	if err != nil {
		return tx.note(err)
	}
	rows, err := st.QueryContext(tx.db.ctx, args...)
	if err != nil {
		return tx.note(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return tx.note(rows.Err())
}

// Get returns the cached value of key.
func (tx *Tx) Get(key string) (any, bool) { return tx.db.cache.get(key) }

// Put caches v under key. Call it whenever the request changes the row
// behind key (or Evict). If the request fails, the change is undone.
func (tx *Tx) Put(key string, v any) { tx.undo = append(tx.undo, tx.db.cache.set(key, v)) }

// Evict drops key from the cache (undone if the request fails).
func (tx *Tx) Evict(key string) { tx.undo = append(tx.undo, tx.db.cache.del(key)) }

// Cached returns the cached value of key, or loads it with load and caches
// it. A cached value of another type than T is treated as a miss.
func Cached[T any](tx *Tx, key string, load func(tx *Tx) (T, error)) (T, error) {
	if v, ok := tx.db.cache.get(key); ok {
		if t, ok := v.(T); ok {
			return t, nil
		}
	}
	t, err := load(tx)
	if err != nil {
		return t, err
	}
	tx.Put(key, t)
	return t, nil
}

// finish ends the request: on failure the savepoint and the cache changes
// are rolled back; on success the savepoint is released and the cache
// changes join the batch's (undone if the commit fails).
func (tx *Tx) finish(failed bool) {
	db := tx.db
	if failed {
		db.cache.undo(tx.undo)
		if tx.sp != "" && db.batchErr == nil {
			db.stats.rollbacks.Add(1)
			if _, err := db.conn.ExecContext(db.ctx, "ROLLBACK TO SAVEPOINT "+tx.sp); err != nil {
				db.poison(fmt.Errorf("roll back savepoint: %w", err))
			}
		}
		return
	}
	db.batchUndo = append(db.batchUndo, tx.undo...)
	if tx.sp != "" && db.batchErr == nil && db.cfg.Dialect.ReleaseSavepoints() {
		if _, err := db.conn.ExecContext(db.ctx, "RELEASE SAVEPOINT "+tx.sp); err != nil {
			db.poison(fmt.Errorf("release savepoint: %w", err))
		}
	}
}
