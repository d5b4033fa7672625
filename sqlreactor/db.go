package sqlreactor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/reactorgo/reactor"
)

// Config configures a DB. Writer and Dialect are required; the backend
// packages fill them in.
type Config struct {
	// Writer is the database the reactor takes its single writing connection
	// from. The DB holds that one connection for its whole life.
	Writer *sql.DB
	// Reader is the pool of read-only connections (a replica, where there is
	// one) that View uses. Default: Writer's other connections.
	Reader *sql.DB
	// Dialect is the backend's SQL flavour.
	Dialect Dialect
	// CacheSize bounds the coherent cache, in entries (default 100,000;
	// negative: no cache).
	CacheSize int
	// Schema statements run once at Open on the writer, in one transaction
	// (CREATE TABLE IF NOT EXISTS ...). Use '?'-free DDL.
	Schema []string
	// MaxStatements bounds the writer's prepared-statement cache (default 256).
	MaxStatements int
	// Close, when set, runs after the writer connection is released by
	// Close (the backend packages close their *sql.DB pools with it).
	Close func() error
	// Logger receives the DB's logs (default slog.Default()).
	Logger *slog.Logger
	// NoPipeline turns pipelining off on a backend whose Dialect is a
	// Pipeliner: every statement is then a round trip (for comparison).
	NoPipeline bool
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Writer == nil:
		return fmt.Errorf("%w: Config.Writer is nil", ErrConfig)
	case c.Dialect == nil:
		return fmt.Errorf("%w: Config.Dialect is nil", ErrConfig)
	case c.MaxStatements < 0:
		return fmt.Errorf("%w: Config.MaxStatements %d is negative", ErrConfig, c.MaxStatements)
	}
	return nil
}

// DB is the DB server reactor: the state of a reactor service that owns the
// only writing connection to a database. Register it with reactor.Register
// and send it requests defined with Method:
//
//	db, _ := sqlite.Open(ctx, sqlite.Options{Path: "bank.db"})
//	ref, _ := reactor.Register(rt, "/db", db)
//
// Each turn of the service handles a batch of requests in one database
// transaction: BeforeBatch opens nothing (the transaction begins with the
// first statement), every request runs in its own savepoint and is rolled
// back alone — database and cache — when it fails or panics, and AfterBatch
// commits and only then answers the batch's callers. If the commit fails,
// every request of the batch gets an error wrapping ErrCommit.
//
// Reads that need no coherence with the writer (reports, statements) go to
// View, on the read-only pool, and never touch the writer.
type DB struct {
	cfg   Config
	log   *slog.Logger
	conn  *sql.Conn
	rb    rebinder
	cache *Cache
	stmts map[string]*sql.Stmt
	local map[string]any // Local values, used on the turn only
	pipe  Pipeliner      // nil: every statement is a round trip
	// ctx is the writer's context. The reactor's *reactor.Ctx is not used
	// for I/O: drivers watch a context's Done from their own goroutines,
	// beyond the turn that the Ctx is valid for.
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once

	// batch state, owned by the service's turn
	inBatch   bool // between BeforeBatch and AfterBatch
	inTx      bool
	batchErr  error
	calls     []*call
	batchUndo []undoRec
	spSeq     int

	// pipelining state
	q         []op
	stmtBuf   []Stmt
	affected  []int64
	dirty     map[string]*Tx // cache keys changed by requests with queued statements
	reruns    []*call
	committed bool
	commitErr error

	// journaled state
	applied  uint64 // highest sequence number committed
	batchSeq uint64 // highest sequence number of the batch

	stats dbCounters
}

type dbCounters struct {
	batches, requests, failed, panics, commits, commitFailures, savepoints, rollbacks atomic.Uint64
	maxBatch, pipelines, queued, reruns, skipped                                      atomic.Uint64
}

// Stats is a snapshot of a DB's counters.
type Stats struct {
	Batches        uint64 // turns that handled requests
	Commits        uint64 // transactions committed (batches that wrote)
	CommitFailures uint64
	Requests       uint64
	Failed         uint64 // requests that returned an error (their savepoint rolled back)
	Panics         uint64
	Savepoints     uint64
	MaxBatch       uint64
	// Pipelines counts pipelines sent (about the round trips of a
	// pipelining backend); Queued the statements queued by Write; Reruns
	// the requests run again because a queued statement failed.
	Pipelines, Queued, Reruns uint64
	// Skipped counts journaled requests skipped as already applied.
	Skipped uint64
	Cache   CacheStats
}

var (
	_ reactor.BatchStarter = (*DB)(nil)
	_ reactor.BatchEnder   = (*DB)(nil)
)

// Open takes the writer connection, runs the schema, and returns the DB,
// ready to be registered.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Reader == nil {
		cfg.Reader = cfg.Writer
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.MaxStatements == 0 {
		cfg.MaxStatements = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, err := cfg.Writer.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlreactor: open writer connection: %w", err)
	}
	db := &DB{
		cfg:   cfg,
		log:   cfg.Logger.With("db", cfg.Dialect.Name()),
		conn:  conn,
		rb:    rebinder{d: cfg.Dialect},
		cache: newCache(cfg.CacheSize),
		stmts: make(map[string]*sql.Stmt),
		dirty: make(map[string]*Tx),
	}
	if p, ok := cfg.Dialect.(Pipeliner); ok && !cfg.NoPipeline {
		db.pipe = p
	}
	// Every DB keeps the applied journal sequence: a DB registered with
	// reactor.Journaled() gets journaled requests (Ctx.Seq != 0) and uses it.
	cfg.Schema = append(cfg.Schema[:len(cfg.Schema):len(cfg.Schema)], appliedSchema...)
	db.cfg.Schema = cfg.Schema
	db.ctx, db.cancel = context.WithCancel(context.Background())
	if len(cfg.Schema) > 0 {
		if err := db.migrate(ctx); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if err := db.conn.QueryRowContext(ctx, `SELECT seq FROM sqlreactor_applied WHERE id = 1`).Scan(&db.applied); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlreactor: read applied sequence: %w", err)
	}
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.conn.ExecContext(ctx, db.cfg.Dialect.Begin()); err != nil {
		return fmt.Errorf("sqlreactor: begin schema: %w", err)
	}
	for _, s := range db.cfg.Schema {
		if _, err := db.conn.ExecContext(ctx, s); err != nil {
			_, _ = db.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("sqlreactor: schema %.60q: %w", s, err)
		}
	}
	if _, err := db.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlreactor: commit schema: %w", err)
	}
	return nil
}

// Close releases the writer connection and runs Config.Close. Close the
// runtime first, so that no batch is running. Calling Close twice is safe.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		db.closed.Store(true)
		defer db.cancel()
		for _, st := range db.stmts {
			st.Close()
		}
		err = db.conn.Close()
		if db.cfg.Close != nil {
			err = errors.Join(err, db.cfg.Close())
		}
	})
	return err
}

// Dialect returns the backend's dialect.
func (db *DB) Dialect() Dialect { return db.cfg.Dialect }

// Cache returns the coherent cache (for its Stats).
func (db *DB) Cache() *Cache { return db.cache }

// Stats returns the DB's counters.
func (db *DB) Stats() Stats {
	s := &db.stats
	return Stats{
		Batches: s.batches.Load(), Commits: s.commits.Load(), CommitFailures: s.commitFailures.Load(),
		Requests: s.requests.Load(), Failed: s.failed.Load(), Panics: s.panics.Load(),
		Savepoints: s.savepoints.Load(), MaxBatch: s.maxBatch.Load(), Cache: db.cache.Stats(),
		Pipelines: s.pipelines.Load(), Queued: s.queued.Load(), Reruns: s.reruns.Load(), Skipped: s.skipped.Load(),
	}
}

// MarshalBinary keeps the DB out of the runtime's checkpoints: its state is
// the database itself.
func (db *DB) MarshalBinary() ([]byte, error) { return nil, nil }

// UnmarshalBinary accepts the empty checkpoint MarshalBinary writes.
func (db *DB) UnmarshalBinary([]byte) error { return nil }

// BeforeBatch starts a batch. The transaction itself begins lazily with the
// batch's first statement, so a batch served from the cache costs no
// round trip.
func (db *DB) BeforeBatch(c *reactor.Ctx) {
	db.batchErr = nil
	db.spSeq = 0
	db.inBatch = true
	db.committed, db.commitErr = false, nil
	db.batchSeq = 0
}

// AfterBatch commits the batch's transaction, then answers its requests.
func (db *DB) AfterBatch(c *reactor.Ctx) {
	db.inBatch = false
	n := len(db.calls)
	if n == 0 && !db.inTx {
		return
	}
	db.stats.batches.Add(1)
	if uint64(n) > db.stats.maxBatch.Load() {
		db.stats.maxBatch.Store(uint64(n))
	}
	if db.inTx {
		if db.pipe != nil {
			db.commitPipelined(c)
		} else {
			db.commitDirect()
		}
	}
	err := db.batchErr
	if err == nil && db.inTx && !db.committed {
		err = fmt.Errorf("%w: %w", ErrCommit, db.commitErr)
	}
	if db.inTx {
		if err != nil {
			db.stats.commitFailures.Add(1)
			if _, rerr := db.conn.ExecContext(context.WithoutCancel(db.ctx), "ROLLBACK"); rerr != nil {
				db.log.Warn("sqlreactor: rollback after failed commit", "err", rerr)
			}
		} else {
			db.stats.commits.Add(1)
			if db.batchSeq > db.applied {
				db.applied = db.batchSeq
			}
		}
		db.inTx = false
	}
	if err != nil {
		err = db.settleFailed(err)
		db.cache.undo(db.batchUndo)
		db.log.Error("sqlreactor: batch failed", "requests", n, "err", err)
	}
	db.dropQueue()
	clear(db.dirty)
	clear(db.reruns)
	db.reruns = db.reruns[:0]
	clear(db.batchUndo)
	db.batchUndo = db.batchUndo[:0]
	calls := db.calls
	db.calls = calls[:0]
	for i, cl := range calls {
		cl.done(err)
		calls[i] = nil
	}
}

// settleFailed records that a journaled batch failed, so that a replay
// after a restart skips it instead of applying what its callers were told
// failed: the batch's sequence becomes the applied one, in a statement of
// its own (the batch's transaction is gone). If even that write fails the
// outcome is unknown — the next start would replay the batch — and the
// callers are told so (ErrOutcomeUnknown), not that nothing happened.
func (db *DB) settleFailed(err error) error {
	if db.batchSeq <= db.applied {
		return err // not journaled, or nothing new to settle
	}
	if _, werr := db.conn.ExecContext(context.WithoutCancel(db.ctx), db.rb.rebind(appliedUpdate), int64(db.batchSeq)); werr != nil {
		db.log.Error("sqlreactor: failed batch not recorded; replay may apply it", "seq", db.batchSeq, "err", werr)
		return fmt.Errorf("%w: %w (recording the failure: %v)", ErrOutcomeUnknown, err, werr)
	}
	db.applied = db.batchSeq
	return err
}

// commitDirect commits with one round trip per statement.
func (db *DB) commitDirect() {
	if db.batchErr != nil {
		return
	}
	if db.batchSeq > db.applied {
		if _, err := db.conn.ExecContext(db.ctx, db.rb.rebind(appliedUpdate), int64(db.batchSeq)); err != nil {
			db.commitErr = err
			return
		}
	}
	if _, err := db.conn.ExecContext(context.WithoutCancel(db.ctx), "COMMIT"); err != nil {
		db.commitErr = err
		return
	}
	db.committed = true
}

// commitPipelined sends the queue with COMMIT at its end; if a queued
// statement failed, its request is run again first.
func (db *DB) commitPipelined(c *reactor.Ctx) {
	for db.batchErr == nil && !db.committed && db.commitErr == nil {
		if len(db.reruns) > 0 {
			if err := db.flush(nil); err != nil || db.batchErr != nil {
				break
			}
			reruns := append([]*call(nil), db.reruns...)
			clear(db.reruns)
			db.reruns = db.reruns[:0]
			for _, cl := range reruns {
				db.runCall(c, cl, true)
			}
			continue
		}
		if db.batchSeq > db.applied {
			db.queue(op{kind: opApplied, sql: db.rb.rebind(appliedUpdate), args: []any{int64(db.batchSeq)}})
		}
		db.queue(opsCommit)
		db.flush(nil)
	}
}

// begin opens the batch transaction if it is not open yet.
func (db *DB) begin(ctx context.Context) error {
	if db.batchErr != nil {
		return db.batchErr
	}
	if db.inTx {
		return nil
	}
	if db.closed.Load() {
		return ErrClosed
	}
	if db.pipe != nil {
		db.q = append(db.q, op{kind: opBegin, sql: db.cfg.Dialect.Begin()})
		db.inTx = true
		return nil
	}
	if _, err := db.conn.ExecContext(ctx, db.cfg.Dialect.Begin()); err != nil {
		db.batchErr = fmt.Errorf("%w: begin: %w", ErrCommit, err)
		return db.batchErr
	}
	db.inTx = true
	return nil
}

// stmt returns the writer's prepared statement for query.
func (db *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts[query]; ok {
		return st, nil
	}
	st, err := db.conn.PrepareContext(ctx, db.rb.rebind(query))
	if err != nil {
		return nil, err
	}
	if len(db.stmts) >= db.cfg.MaxStatements {
		for q, old := range db.stmts {
			old.Close()
			delete(db.stmts, q)
			break
		}
	}
	db.stmts[query] = st
	return st, nil
}

// poison fails the rest of the batch (a savepoint could not be rolled back:
// the transaction's state is unknown).
func (db *DB) poison(err error) {
	if db.batchErr == nil {
		db.batchErr = fmt.Errorf("%w: %w", ErrCommit, err)
	}
}

// appliedSchema is the table of a journaled DB: the highest journal
// sequence number its committed batches applied.
var appliedSchema = []string{
	`CREATE TABLE IF NOT EXISTS sqlreactor_applied (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL)`,
	`INSERT INTO sqlreactor_applied (id, seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`,
}

const appliedUpdate = `UPDATE sqlreactor_applied SET seq = ? WHERE id = 1`
