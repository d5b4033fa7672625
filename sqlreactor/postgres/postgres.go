// Package postgres is the PostgreSQL backend of sqlreactor, through pgx
// (github.com/jackc/pgx/v5, database/sql adapter): the reactor's single
// writing connection, and a pool of read-only transactions on the same
// server or on a replica (Options.ReadDSN).
//
// Durability is the server's: with the default synchronous_commit=on a
// COMMIT returns after the WAL is flushed, so the reactor answers a batch's
// callers only once it is on disk.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/reactorgo/reactor/sqlreactor"
)

// Options configures Open. DSN is required.
type Options struct {
	// DSN is the writer's connection string (postgres://...).
	DSN string
	// ReadDSN is the read-only pool's (a replica); default DSN.
	ReadDSN string
	// ReadConns is the size of the read-only pool (default 4).
	ReadConns int
	// SearchPath, when set, is the schema search_path of every connection
	// (to keep several reactors, or test runs, apart in one database).
	SearchPath string
	// CacheSize, Schema, Logger and NoPipeline are passed to
	// sqlreactor.Config.
	CacheSize  int
	Schema     []string
	Logger     *slog.Logger
	NoPipeline bool
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	if o.DSN == "" {
		return fmt.Errorf("%w: postgres: Options.DSN is empty", sqlreactor.ErrConfig)
	}
	if o.ReadConns < 0 {
		return fmt.Errorf("%w: postgres: negative ReadConns", sqlreactor.ErrConfig)
	}
	return nil
}

// Dialect is PostgreSQL's sqlreactor.Dialect.
type Dialect struct{}

var (
	_ sqlreactor.Dialect   = Dialect{}
	_ sqlreactor.Pipeliner = Dialect{}
)

// Name returns "postgres".
func (Dialect) Name() string { return "postgres" }

// Begin opens a READ COMMITTED transaction: the reactor is the only writer,
// so there is nothing for a stronger level to protect against.
func (Dialect) Begin() string { return "BEGIN" }

// Placeholder is $n.
func (Dialect) Placeholder(n int) string { return sqlreactor.DollarPlaceholder(n) }

// ReleaseSavepoints is false: a RELEASE is a round trip that frees nothing
// the commit does not free anyway.
func (Dialect) ReleaseSavepoints() bool { return false }

// Pipeline sends stmts as one pgx batch: every statement goes out before
// any result is read, so a batch of requests and its COMMIT cost one round
// trip (two the first time a statement text is seen: pgx prepares the new
// ones first). It implements sqlreactor.Pipeliner.
func (Dialect) Pipeline(ctx context.Context, driverConn any, stmts []sqlreactor.Stmt, affected []int64) (int, error) {
	sc, ok := driverConn.(*stdlib.Conn)
	if !ok {
		return -1, fmt.Errorf("postgres: pipeline on a %T, not a pgx connection", driverConn)
	}
	conn := sc.Conn()
	for _, q := range sqlreactor.ControlStatements {
		// Idempotent: a map lookup once prepared (on the first pipeline,
		// which opens the batch transaction, so never in an aborted one).
		if _, err := conn.Prepare(ctx, q, q); err != nil {
			return -1, fmt.Errorf("postgres: prepare %q: %w", q, err)
		}
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(stmts))}
	for _, s := range stmts {
		b.Queue(s.SQL, s.Args...)
	}
	br := conn.SendBatch(ctx, b)
	for i := range stmts {
		tag, err := br.Exec()
		if err != nil {
			cerr := br.Close()
			var pre pgx.ErrPreprocessingBatch
			if errors.As(err, &pre) {
				// A statement did not prepare (the server aborted the
				// transaction before any of them ran) or an argument did
				// not encode (pgx closed the connection): the batch is lost.
				return -1, errors.Join(err, cerr)
			}
			var pe *pgconn.PgError
			if errors.As(err, &pe) && !conn.IsClosed() {
				return i, err
			}
			return -1, errors.Join(err, cerr)
		}
		affected[i] = tag.RowsAffected()
	}
	return -1, br.Close()
}

// ReadTxOptions asks for read-only transactions.
func (Dialect) ReadTxOptions() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

// OpenDB opens a database/sql pool on dsn through pgx, with search_path set
// on every connection when searchPath is not empty.
func OpenDB(dsn, searchPath string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	if searchPath != "" {
		cfg.RuntimeParams["search_path"] = searchPath
	}
	return stdlib.OpenDB(*cfg), nil
}

// Open connects the writer and the read pool and returns the DB reactor.
func Open(ctx context.Context, o Options) (*sqlreactor.DB, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.ReadDSN == "" {
		o.ReadDSN = o.DSN
	}
	if o.ReadConns == 0 {
		o.ReadConns = 4
	}
	w, err := OpenDB(o.DSN, o.SearchPath)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	r, err := OpenDB(o.ReadDSN, o.SearchPath)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(o.ReadConns)
	r.SetMaxIdleConns(o.ReadConns)
	db, err := sqlreactor.Open(ctx, sqlreactor.Config{
		Writer: w, Reader: r, Dialect: Dialect{},
		CacheSize: o.CacheSize, Schema: o.Schema, Logger: o.Logger,
		NoPipeline: o.NoPipeline,
		Close:      func() error { return errors.Join(r.Close(), w.Close()) },
	})
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return db, nil
}
