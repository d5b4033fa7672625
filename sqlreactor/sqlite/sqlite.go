// Package sqlite is the embedded SQLite backend of sqlreactor: one database
// file in WAL mode, the reactor's single writing connection with
// synchronous=FULL (a commit is fsynced before its callers are answered, so
// "committed" means "on disk", power loss included), and a pool of
// query-only reader connections that WAL lets run beside the writer.
//
// Two drivers are linked in, picked by measurement (docs/SQLREACTOR.md):
// the cgo github.com/mattn/go-sqlite3 ("sqlite3"), 30–40 % faster on the
// transfer benchmark, is the default when the build has cgo (CGO_ENABLED=1
// and a C compiler); with CGO_ENABLED=0 the default is the pure-Go
// modernc.org/sqlite ("sqlite"). Options.Driver picks one explicitly.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/reactorgo/reactor/sqlreactor"
	_ "modernc.org/sqlite" // the default driver, "sqlite"
)

// Options configures Open. Path is required; every other zero value has a
// documented default.
type Options struct {
	// Path is the database file (created if missing).
	Path string
	// Driver is the database/sql driver name: "sqlite3"
	// (github.com/mattn/go-sqlite3, cgo) or "sqlite" (modernc.org/sqlite,
	// pure Go). Default: DefaultDriver.
	Driver string
	// ReadConns is the size of the read-only pool (default 4).
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock (default 5s).
	BusyTimeout time.Duration
	// PageSize is the page size of a database file that Open creates (a
	// power of two from 512 to 65536; default SQLite's, 4096). It has no
	// effect on an existing file: WAL mode fixes a file's page size. A
	// commit writes every page it dirtied to the WAL, so with small rows
	// updated at random a smaller page writes fewer bytes per commit
	// (docs/SQLREACTOR.md, "Data design").
	PageSize int
	// CacheSize, Schema and Logger are passed to
	// sqlreactor.Config.
	CacheSize int
	Schema    []string
	Logger    *slog.Logger
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.Path == "":
		return fmt.Errorf("%w: sqlite: Options.Path is empty", sqlreactor.ErrConfig)
	case o.Driver != "" && o.Driver != "sqlite" && o.Driver != "sqlite3":
		return fmt.Errorf("%w: sqlite: unknown driver %q", sqlreactor.ErrConfig, o.Driver)
	case o.ReadConns < 0 || o.BusyTimeout < 0:
		return fmt.Errorf("%w: sqlite: negative option", sqlreactor.ErrConfig)
	case o.PageSize != 0 && (o.PageSize < 512 || o.PageSize > 65536 || o.PageSize&(o.PageSize-1) != 0):
		return fmt.Errorf("%w: sqlite: page size %d is not a power of two from 512 to 65536", sqlreactor.ErrConfig, o.PageSize)
	}
	return nil
}

// Dialect is SQLite's sqlreactor.Dialect.
type Dialect struct{}

var _ sqlreactor.Dialect = Dialect{}

// Name returns "sqlite".
func (Dialect) Name() string { return "sqlite" }

// Begin takes the write lock at once: the reactor is the only writer.
func (Dialect) Begin() string { return "BEGIN IMMEDIATE" }

// Placeholder is '?'.
func (Dialect) Placeholder(int) string { return "?" }

// ReleaseSavepoints is true: releasing is an in-process operation.
func (Dialect) ReleaseSavepoints() bool { return true }

// ReadTxOptions returns nil: the reader connections are query_only.
func (Dialect) ReadTxOptions() *sql.TxOptions { return nil }

// DSN returns the data source name for path with the durability settings
// (WAL, synchronous=FULL, busy_timeout, foreign keys), for the writer or,
// with readOnly, for the query-only readers.
func DSN(driver, path string, busy time.Duration, readOnly bool) string {
	ms := busy.Milliseconds()
	q := url.Values{}
	if driver == "sqlite3" {
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		q.Set("_busy_timeout", fmt.Sprint(ms))
		q.Set("_foreign_keys", "1")
		if readOnly {
			q.Set("_query_only", "1")
		}
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", ms))
		q.Add("_pragma", "foreign_keys(1)")
		if readOnly {
			q.Add("_pragma", "query_only(1)")
		}
	}
	return "file:" + strings.ReplaceAll(path, "?", "%3F") + "?" + q.Encode()
}

// Open opens (creating if needed) the database file and returns the DB
// reactor, with its writer connection and its read-only pool.
func Open(ctx context.Context, o Options) (*sqlreactor.DB, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Driver == "" {
		o.Driver = DefaultDriver
	}
	if o.ReadConns == 0 {
		o.ReadConns = 4
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.PageSize != 0 {
		if err := createWithPageSize(ctx, o.Driver, o.Path, o.PageSize); err != nil {
			return nil, fmt.Errorf("sqlite: create %s: %w", o.Path, err)
		}
	}
	w, err := sql.Open(o.Driver, DSN(o.Driver, o.Path, o.BusyTimeout, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", o.Path, err)
	}
	w.SetMaxOpenConns(1)
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", o.Path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		w.Close()
		return nil, fmt.Errorf("sqlite: %s: journal_mode is %q, want wal", o.Path, mode)
	}
	r, err := sql.Open(o.Driver, DSN(o.Driver, o.Path, o.BusyTimeout, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers of %s: %w", o.Path, err)
	}
	r.SetMaxOpenConns(o.ReadConns)
	r.SetMaxIdleConns(o.ReadConns)
	db, err := sqlreactor.Open(ctx, sqlreactor.Config{
		Writer: w, Reader: r, Dialect: Dialect{},
		CacheSize: o.CacheSize, Schema: o.Schema, Logger: o.Logger,
		Close: func() error { return errors.Join(r.Close(), w.Close()) },
	})
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return db, nil
}

// createWithPageSize creates path with the given page size, unless it
// exists with content already. The page size is fixed by the first write
// (a table created and dropped), before WAL mode would fix it.
func createWithPageSize(ctx context.Context, driver, path string, size int) error {
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return nil
	}
	db, err := sql.Open(driver, "file:"+strings.ReplaceAll(path, "?", "%3F"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{fmt.Sprintf("PRAGMA page_size = %d", size), "CREATE TABLE sqlreactor_page_size (x)", "DROP TABLE sqlreactor_page_size"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return db.Close()
}
