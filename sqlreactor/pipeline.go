package sqlreactor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Pipeliner is implemented by a Dialect whose driver can send many
// statements without waiting for each result (PostgreSQL through pgx).
// With it, a batch's writes (Tx.Write), savepoints and COMMIT are queued and
// sent together: a batch of transfers costs one or two round trips instead
// of four per request.
type Pipeliner interface {
	// Pipeline runs stmts in order on the writer's driver connection (what
	// sql.Conn.Raw passes), sending them all before reading the results,
	// and stores each statement's rows-affected count in affected (same
	// length as stmts). If a statement fails, it returns its index and
	// error, and the statements after it did not run (the server skips
	// them up to the pipeline's sync point). failed is -1 when all ran, or
	// when err is not the failure of one statement (the connection broke):
	// the batch transaction is then in an unknown state.
	Pipeline(ctx context.Context, driverConn any, stmts []Stmt, affected []int64) (failed int, err error)
}

// ControlStatements are the argument-free statements the DB puts in its
// pipelines (BEGIN aside, which is the dialect's). A Pipeliner whose
// server cannot parse a statement in an aborted transaction (PostgreSQL)
// should prepare them once per connection, before the first pipeline: the
// ROLLBACK TO SAVEPOINT that recovers from a failed statement is sent in
// exactly that state.
var ControlStatements = []string{
	"SAVEPOINT " + spName, "RELEASE SAVEPOINT " + spName, "ROLLBACK TO SAVEPOINT " + spName, "COMMIT",
}

// Stmt is a statement of a pipeline, with the dialect's placeholders.
type Stmt struct {
	SQL  string
	Args []any
}

type opKind uint8

const (
	opStmt opKind = iota
	opBegin
	opSavepoint
	opRelease
	opRollback // ROLLBACK TO SAVEPOINT
	opCommit
	opApplied // journaled: the batch's last applied sequence number
)

// spName is the savepoint every request uses on a pipelining backend: a
// request's savepoint is released (or rolled back and released) before the
// next request's is opened, so one name serves, and the backend's statement
// cache holds one SAVEPOINT statement instead of one per batch position.
const spName = "sqlr"

// op is a statement queued on a pipelining backend.
type op struct {
	kind  opKind
	sql   string
	args  []any
	owner *Tx    // the request that queued it (nil: batch control)
	out   *int64 // where to store the rows affected (Exec)
}

var (
	opsSavepoint = op{kind: opSavepoint, sql: "SAVEPOINT " + spName}
	opsRelease   = op{kind: opRelease, sql: "RELEASE SAVEPOINT " + spName}
	opsRollback  = op{kind: opRollback, sql: "ROLLBACK TO SAVEPOINT " + spName}
	opsCommit    = op{kind: opCommit, sql: "COMMIT"}
)

// pipeResult is the sql.Result of a pipelined Exec.
type pipeResult int64

func (r pipeResult) LastInsertId() (int64, error) {
	return 0, errors.New("sqlreactor: LastInsertId is not supported by this backend")
}
func (r pipeResult) RowsAffected() (int64, error) { return int64(r), nil }

var _ sql.Result = pipeResult(0)

// queue appends o to the batch's pipeline.
func (db *DB) queue(o op) {
	db.q = append(db.q, o)
	if o.kind == opStmt {
		db.stats.queued.Add(1)
	}
}

// send runs the statements of q in one pipeline.
func (db *DB) send(q []op) (int, error) {
	stmts := db.stmtBuf[:0]
	for i := range q {
		stmts = append(stmts, Stmt{SQL: q[i].sql, Args: q[i].args})
	}
	db.stmtBuf = stmts
	if cap(db.affected) < len(q) {
		db.affected = make([]int64, len(q))
	}
	aff := db.affected[:len(q)]
	failed := -1
	err := db.conn.Raw(func(dc any) error {
		var err error
		failed, err = db.pipe.Pipeline(db.ctx, dc, stmts, aff)
		return err
	})
	clear(stmts)
	db.stats.pipelines.Add(1)
	if err == nil {
		failed = -1
	}
	for i := range q {
		if failed >= 0 && i >= failed {
			break
		}
		if err != nil && failed < 0 {
			break
		}
		o := &q[i]
		if o.out != nil {
			*o.out = aff[i]
		}
		if o.kind == opSavepoint && o.owner != nil {
			o.owner.sent = true
		}
		if o.kind == opCommit {
			db.committed = true
		}
	}
	return failed, err
}

// flush sends the queued statements and resolves what failed, until the
// queue is empty:
//
//   - a statement of a finished request: its savepoint is rolled back and
//     released, its cache changes undone, the statements queued after it
//     (which the server skipped) are sent again, and the request is run
//     again at the end of the batch with statements sent at once (rerun);
//   - a statement of cur, the request now running: its savepoint is rolled
//     back and the error is returned (and sticks to cur);
//   - BEGIN, a savepoint statement or the connection: the batch is poisoned;
//   - COMMIT: commitErr is set.
//
// A COMMIT still queued behind a failed request is dropped: the rerun must
// come first.
func (db *DB) flush(cur *Tx) error {
	var curErr error
	for len(db.q) > 0 {
		if db.batchErr != nil {
			db.dropQueue()
			break
		}
		q := db.q
		failed, err := db.send(q)
		if err == nil {
			db.dropQueue()
			break
		}
		if failed < 0 {
			db.poison(err)
			db.dropQueue()
			break
		}
		o := q[failed]
		switch {
		case o.kind == opCommit:
			db.commitErr = err
			db.dropQueue()
		case o.kind != opStmt || o.owner == nil:
			db.poison(fmt.Errorf("%s: %w", o.sql, err))
			db.dropQueue()
		case o.owner == cur:
			// cur's own ops are the tail of the queue.
			cur.stmtErr = err
			curErr = err
			db.q = append(db.q[:0], opsRollback)
		default:
			t := o.owner
			end := failed
			for end+1 < len(q) && q[end+1].owner == t {
				end++
			}
			rest := q[end+1:]
			nq := make([]op, 0, len(rest))
			for _, r := range rest {
				if r.kind != opCommit && r.kind != opApplied {
					nq = append(nq, r)
				}
			}
			clear(db.q)
			db.q = nq
			db.failQueued(t, err)
			// The rollback goes alone: the transaction is aborted, and the
			// driver may have to prepare the rest again (pgx forgets a
			// failed batch's statements), which an aborted transaction
			// refuses.
			if _, rerr := db.send([]op{opsRollback, opsRelease}); rerr != nil {
				db.poison(fmt.Errorf("roll back savepoint: %w", rerr))
				db.dropQueue()
			}
		}
	}
	if cur != nil {
		cur.qstart = 0
	}
	clear(db.dirty)
	return curErr
}

func (db *DB) dropQueue() {
	clear(db.q)
	db.q = db.q[:0]
}

// failQueued undoes the cache changes of t, a finished request whose queued
// statement failed with err, and schedules its rerun.
func (db *DB) failQueued(t *Tx, err error) {
	db.cache.undo(t.undo)
	// t's records are contiguous in the batch log, and no later request
	// touched t's keys (touching a dirty key flushes first).
	if t.undoAt >= 0 && t.undoAt+len(t.undo) <= len(db.batchUndo) {
		db.batchUndo = append(db.batchUndo[:t.undoAt], db.batchUndo[t.undoAt+len(t.undo):]...)
		for _, c := range db.calls {
			if c.tx.undoAt > t.undoAt {
				c.tx.undoAt -= len(t.undo)
			}
		}
	}
	clear(t.undo)
	t.undo = t.undo[:0]
	t.undoAt = -1
	t.call.firstErr = err
	db.reruns = append(db.reruns, t.call)
	db.stats.reruns.Add(1)
}

// touch is called before request t reads or changes the cache entry key:
// if another request whose statements are still queued changed it, the
// queue is sent first, so that t never builds on a change that may yet be
// rolled back.
func (t *Tx) touch(key string) {
	db := t.db
	if db.pipe == nil || len(db.dirty) == 0 {
		return
	}
	if w, ok := db.dirty[key]; ok && w != t {
		if err := db.flush(t); err != nil && t.stmtErr == nil {
			t.stmtErr = err
		}
	}
}

// markDirty records that t changed key while its statements are queued.
func (t *Tx) markDirty(key string) {
	if t.db.pipe != nil && !t.immediate {
		t.db.dirty[key] = t
	}
}
