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
//
// On a pipelining backend (PostgreSQL) the request's writes (Write), its
// savepoint and the batch's COMMIT are queued and sent together; a
// statement that needs its result (Exec, QueryRow, Query) sends the queue
// first. See Write for what happens when a queued write fails.
type Tx struct {
	db        *DB
	c         *reactor.Ctx
	call      *call
	sp        string // savepoint name, "" until the request's first statement
	sent      bool   // pipelined: the savepoint reached the server
	immediate bool   // pipelined: a rerun, every statement is sent at once
	qstart    int    // pipelined: index of the request's first queued op
	undo      []undoRec
	undoAt    int   // index of undo in the batch's undo log, -1 if not there
	stmtErr   error // first statement error (PostgreSQL aborts the transaction on it)
}

func (tx *Tx) reset(c *reactor.Ctx, immediate bool) {
	tx.c, tx.sp, tx.stmtErr, tx.sent, tx.immediate, tx.qstart = c, "", nil, false, immediate, 0
	tx.undoAt = -1
	clear(tx.undo)
	tx.undo = tx.undo[:0]
}

// Ctx is the reactor context of the request: Now, Rand, Replaying, Logger.
// For a request run again at the end of its batch (see Write) it is the
// context of the batch's end; Now and Seq stay the request's own.
func (tx *Tx) Ctx() *reactor.Ctx { return tx.c }

// Now is the request's time (recorded, for journaled services).
func (tx *Tx) Now() time.Time { return tx.call.now }

// Seq is the journal sequence number of the request's message (0 if the
// service is not journaled).
func (tx *Tx) Seq() uint64 { return tx.call.seq }

// Deferring reports whether Write queues statements (a pipelining backend,
// and not a rerun). A request may use it to pick an optimistic path whose
// writes can fail at execution, knowing it is run again with Deferring
// false if one does.
func (tx *Tx) Deferring() bool { return tx.db.pipe != nil && !tx.immediate }

// savepoint opens the batch transaction and the request's savepoint, once.
func (tx *Tx) savepoint() error {
	if tx.sp != "" {
		return nil
	}
	db := tx.db
	if err := db.begin(db.ctx); err != nil {
		return err
	}
	db.stats.savepoints.Add(1)
	if db.pipe != nil {
		tx.qstart = len(db.q)
		o := opsSavepoint
		o.owner = tx
		db.queue(o)
		tx.sp = spName
		return nil
	}
	name := spName
	if !db.cfg.Dialect.ReleaseSavepoints() {
		// Savepoints stay open until COMMIT: one name each.
		db.spSeq++
		name = "r" + strconv.Itoa(db.spSeq)
	}
	if err := db.control("SAVEPOINT " + name); err != nil {
		db.poison(err)
		return fmt.Errorf("sqlreactor: savepoint: %w", err)
	}
	tx.sp = name
	return nil
}

// control runs an argument-free control statement of the batch. Where a
// request's savepoint is released before the next one opens (SQLite), one
// savepoint name serves every request, and its statements are prepared
// once, like the requests' own: no parse per request.
func (db *DB) control(q string) error {
	if !db.cfg.Dialect.ReleaseSavepoints() {
		_, err := db.conn.ExecContext(db.ctx, q)
		return err
	}
	st, err := db.stmt(db.ctx, q)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(db.ctx)
	return err
}

func (tx *Tx) note(err error) error {
	if err != nil && tx.stmtErr == nil && !errors.Is(err, sql.ErrNoRows) {
		tx.stmtErr = err
	}
	return err
}

// aborted is the error of a statement after one of the request's
// statements failed on a pipelining backend (its savepoint was rolled back).
func (tx *Tx) aborted() error {
	if tx.db.pipe != nil && tx.stmtErr != nil {
		return fmt.Errorf("sqlreactor: an earlier statement of the request failed: %w", tx.stmtErr)
	}
	return nil
}

// Exec runs a statement that returns no rows and returns its result.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	if err := tx.savepoint(); err != nil {
		return nil, err
	}
	if err := tx.aborted(); err != nil {
		return nil, err
	}
	db := tx.db
	if db.pipe != nil {
		var n int64
		db.queue(op{kind: opStmt, sql: db.rb.rebind(query), args: args, owner: tx, out: &n})
		if err := db.flush(tx); err != nil {
			return nil, err
		}
		if db.batchErr != nil {
			return nil, db.batchErr
		}
		return pipeResult(n), nil
	}
	st, err := db.stmt(db.ctx, query)
	if err != nil {
		return nil, tx.note(err)
	}
	res, err := st.ExecContext(db.ctx, args...)
	return res, tx.note(err)
}

// Write runs a statement whose result the request does not need: an
// UPDATE or INSERT whose checks the request made from the coherent cache.
// On a pipelining backend it is queued and sent with the batch's other
// statements in one round trip, and Write returns nil; elsewhere it runs
// at once and returns its error.
//
// If a queued write fails when it runs, its request is rolled back alone
// (savepoint and cache changes) and its function is run again at the end of
// the batch, with every statement sent at once (Deferring false), so that
// it meets the error where it made the write and handles it as it would
// without pipelining (most return it: then its caller gets it). A request
// function must therefore not act outside its Tx. If the request is still
// running when its write fails (it ran a statement that needs a result
// after queueing writes), that statement returns the error instead.
func (tx *Tx) Write(query string, args ...any) error {
	if tx.db.pipe == nil || tx.immediate {
		_, err := tx.Exec(query, args...)
		return err
	}
	if err := tx.savepoint(); err != nil {
		return err
	}
	if err := tx.aborted(); err != nil {
		return err
	}
	tx.db.queue(op{kind: opStmt, sql: tx.db.rb.rebind(query), args: args, owner: tx})
	return nil
}

// sync sends the queue before a query that needs results.
func (tx *Tx) sync() error {
	if err := tx.savepoint(); err != nil {
		return err
	}
	if err := tx.aborted(); err != nil {
		return err
	}
	db := tx.db
	if db.pipe != nil && len(db.q) > 0 {
		if err := db.flush(tx); err != nil {
			return err
		}
		if db.batchErr != nil {
			return db.batchErr
		}
	}
	return nil
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
	if err := tx.sync(); err != nil {
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
	if err := tx.sync(); err != nil {
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
func (tx *Tx) Get(key string) (any, bool) {
	tx.touch(key)
	return tx.db.cache.get(key)
}

// Put caches v under key. Call it whenever the request changes the row
// behind key (or Evict). If the request fails, the change is undone.
func (tx *Tx) Put(key string, v any) {
	tx.touch(key)
	tx.undo = append(tx.undo, tx.db.cache.set(key, v))
	tx.markDirty(key)
}

// Evict drops key from the cache (undone if the request fails).
func (tx *Tx) Evict(key string) {
	tx.touch(key)
	tx.undo = append(tx.undo, tx.db.cache.del(key))
	tx.markDirty(key)
}

// Cached returns the cached value of key, or loads it with load and caches
// it. A cached value of another type than T is treated as a miss.
func Cached[T any](tx *Tx, key string, load func(tx *Tx) (T, error)) (T, error) {
	if v, ok := tx.Get(key); ok {
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
	if db.pipe != nil {
		tx.finishPipelined(failed)
		return
	}
	if failed {
		db.cache.undo(tx.undo)
		if tx.sp != "" && db.batchErr == nil {
			db.stats.rollbacks.Add(1)
			if err := db.control("ROLLBACK TO SAVEPOINT " + tx.sp); err != nil {
				db.poison(fmt.Errorf("roll back savepoint: %w", err))
			}
		}
		return
	}
	tx.undoAt = len(db.batchUndo)
	db.batchUndo = append(db.batchUndo, tx.undo...)
	if tx.sp != "" && db.batchErr == nil && db.cfg.Dialect.ReleaseSavepoints() {
		if err := db.control("RELEASE SAVEPOINT " + tx.sp); err != nil {
			db.poison(fmt.Errorf("release savepoint: %w", err))
		}
	}
}

func (tx *Tx) finishPipelined(failed bool) {
	db := tx.db
	if failed {
		db.cache.undo(tx.undo)
		for _, u := range tx.undo {
			if db.dirty[u.key] == tx {
				delete(db.dirty, u.key)
			}
		}
		if tx.sp == "" || db.batchErr != nil {
			return
		}
		// Drop what the server has not seen; roll back what it has.
		clear(db.q[tx.qstart:])
		db.q = db.q[:tx.qstart]
		if tx.sent {
			db.stats.rollbacks.Add(1)
			db.queue(opsRollback)
			db.queue(opsRelease)
		}
		return
	}
	tx.undoAt = len(db.batchUndo)
	db.batchUndo = append(db.batchUndo, tx.undo...)
	if tx.sp != "" && db.batchErr == nil {
		o := opsRelease
		o.owner = tx
		db.queue(o)
	}
}
