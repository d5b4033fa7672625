package sqlreactor

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/reactorgo/reactor"
)

// request is a business-level request to a DB reactor, defined once by
// name with Method: "move money from X to Y", never SQL from callers.
type request[Req, Resp any] struct {
	name string
	fn   func(*Tx, Req) (Resp, error)
}

// Method defines a request to DB reactors: fn runs on the DB reactor's turn,
// inside its own savepoint of the batch's transaction. If fn returns an
// error or panics, its SQL changes and its cache changes are rolled back and
// its caller gets the error (a panic as an error wrapping ErrPanic); the
// batch's other requests are unaffected. Callers are answered after the
// batch commits.
//
// The result is a reactor method of the DB service like any other (same
// family as reactor.Method: Call, TryCall, Send, SendWait, Async, Forward).
// The name is what the runtime (and its journal) carries: keep it stable.
// Method panics if the name is taken, like reactor.Method.
func Method[Req, Resp any](name string, fn func(tx *Tx, req Req) (Resp, error)) *reactor.MethodOf[DB, Req, Resp] {
	r := &request[Req, Resp]{name: name, fn: fn}
	return reactor.Method(name, r.handle)
}

func (r *request[Req, Resp]) run(tx *Tx, req Req) (resp Resp, err error) {
	defer func() {
		if p := recover(); p != nil {
			tx.db.stats.panics.Add(1)
			err = fmt.Errorf("sqlreactor: request %s: %w (%w): %v\n%s", r.name, ErrPanic, reactor.ErrPanic, p, debug.Stack())
			tx.c.Logger().Error("sqlreactor: request panicked", "request", r.name, "panic", fmt.Sprint(p))
		}
	}()
	return r.fn(tx, req)
}

// handle is the reactor method: it runs fn in a savepoint and defers the
// reply until AfterBatch has committed.
func (r *request[Req, Resp]) handle(db *DB, c *reactor.Ctx, req Req) (Resp, error) {
	var zero Resp
	db.stats.requests.Add(1)
	reply := reactor.Defer[Resp](c)
	if db.closed.Load() {
		reply.Fail(fmt.Errorf("sqlreactor: request %s: %w", r.name, ErrClosed))
		return zero, nil
	}
	seq := c.Seq()
	if seq != 0 && seq <= db.applied {
		// Committed before a crash: the journal replays it, the database
		// already has it.
		db.stats.skipped.Add(1)
		reply.Fail(fmt.Errorf("sqlreactor: request %s: %w (seq %d)", r.name, ErrApplied, seq))
		return zero, nil
	}
	// The runtime replays journaled messages one at a time, without the
	// batch hooks: each is then a batch of its own.
	alone := !db.inBatch
	if alone {
		db.BeforeBatch(c)
	}
	if seq > db.batchSeq {
		db.batchSeq = seq
	}
	cl := &call{name: r.name, now: c.Now(), seq: seq}
	cl.tx.db, cl.tx.call = db, cl
	var resp Resp
	cl.run = func(tx *Tx) error {
		var err error
		resp, err = r.run(tx, req)
		if err != nil {
			resp = zero
		}
		return err
	}
	cl.done = func(commitErr error) {
		if commitErr != nil {
			reply.Fail(fmt.Errorf("sqlreactor: request %s: %w", r.name, commitErr))
			return
		}
		reply.Complete(resp, cl.err)
	}
	db.calls = append(db.calls, cl)
	db.runCall(c, cl, false)
	if alone {
		db.AfterBatch(c)
	}
	return zero, nil
}

// call is one request of a batch.
type call struct {
	name     string
	now      time.Time
	seq      uint64
	tx       Tx
	run      func(tx *Tx) error
	done     func(commitErr error)
	err      error // the request's outcome
	firstErr error // the queued statement whose failure caused a rerun
}

// runCall runs a request function in its savepoint; immediate for a rerun.
func (db *DB) runCall(c *reactor.Ctx, cl *call, immediate bool) {
	tx := &cl.tx
	tx.reset(c, immediate)
	err := db.batchErr
	if err == nil {
		err = cl.run(tx)
		if err == nil && tx.stmtErr != nil && (db.pipe != nil || db.cfg.Dialect.Name() == "postgres") {
			// PostgreSQL aborted the transaction at the failed statement
			// (or the pipeline rolled the savepoint back): the request
			// cannot succeed, whatever it returned.
			err = fmt.Errorf("sqlreactor: request %s ignored a failed statement: %w", cl.name, tx.stmtErr)
		}
	}
	tx.finish(err != nil)
	if err != nil {
		db.stats.failed.Add(1)
	}
	cl.err = err
	tx.c = nil
}

// IsPanic reports whether err comes from a panicking request function.
func IsPanic(err error) bool { return errors.Is(err, ErrPanic) }
