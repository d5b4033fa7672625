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
// and send it requests defined with Define:
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
	tx    Tx
	// ctx is the writer's context. The reactor's *reactor.Ctx is not used
	// for I/O: drivers watch a context's Done from their own goroutines,
	// beyond the turn that the Ctx is valid for.
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once

	// batch state, owned by the service's turn
	inTx      bool
	batchErr  error
	pending   []func(commitErr error)
	batchUndo []undoRec
	spSeq     int

	stats dbCounters
}

type dbCounters struct {
	batches, requests, failed, panics, commits, commitFailures, savepoints, rollbacks atomic.Uint64
	maxBatch                                                                          atomic.Uint64
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
	Cache          CacheStats
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
	}
	db.tx.db = db
	db.ctx, db.cancel = context.WithCancel(context.Background())
	if len(cfg.Schema) > 0 {
		if err := db.migrate(ctx); err != nil {
			conn.Close()
			return nil, err
		}
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
}

// AfterBatch commits the batch's transaction, then answers its requests.
func (db *DB) AfterBatch(c *reactor.Ctx) {
	n := len(db.pending)
	if n == 0 && !db.inTx {
		return
	}
	db.stats.batches.Add(1)
	if uint64(n) > db.stats.maxBatch.Load() {
		db.stats.maxBatch.Store(uint64(n))
	}
	err := db.batchErr
	if db.inTx {
		bg := context.WithoutCancel(db.ctx)
		if err == nil {
			if _, cerr := db.conn.ExecContext(bg, "COMMIT"); cerr != nil {
				err = fmt.Errorf("%w: %w", ErrCommit, cerr)
			} else {
				db.stats.commits.Add(1)
			}
		}
		if err != nil {
			db.stats.commitFailures.Add(1)
			if _, rerr := db.conn.ExecContext(bg, "ROLLBACK"); rerr != nil {
				db.log.Warn("sqlreactor: rollback after failed commit", "err", rerr)
			}
		}
		db.inTx = false
	}
	if err != nil {
		db.cache.undo(db.batchUndo)
		db.log.Error("sqlreactor: batch failed", "requests", n, "err", err)
	}
	clear(db.batchUndo)
	db.batchUndo = db.batchUndo[:0]
	pending := db.pending
	db.pending = pending[:0]
	for i, done := range pending {
		done(err)
		pending[i] = nil
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
