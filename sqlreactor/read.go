package sqlreactor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ReadTx is a read-only transaction on the read pool. Queries use '?'
// placeholders whatever the backend.
type ReadTx struct {
	tx *sql.Tx
	rb *rebinder
	cx context.Context
}

// QueryRow runs a query expected to return at most one row.
func (r *ReadTx) QueryRow(query string, args ...any) *sql.Row {
	return r.tx.QueryRowContext(r.cx, r.rb.rebind(query), args...)
}

// Query runs a query and calls each for every row, closing the rows before
// it returns.
func (r *ReadTx) Query(query string, args []any, each func(*sql.Rows) error) error {
	rows, err := r.tx.QueryContext(r.cx, r.rb.rebind(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// View runs fn in a read-only transaction on the read pool, on the calling
// goroutine: reports and statements that need no coherence with requests in
// flight. It never touches the writer connection, and sees only committed
// data.
func (db *DB) View(ctx context.Context, fn func(r *ReadTx) error) error {
	if db.closed.Load() {
		return ErrClosed
	}
	tx, err := db.cfg.Reader.BeginTx(ctx, db.cfg.Dialect.ReadTxOptions())
	if err != nil {
		return fmt.Errorf("sqlreactor: begin read: %w", err)
	}
	ferr := fn(&ReadTx{tx: tx, rb: &db.rb, cx: ctx})
	rerr := tx.Rollback() // read-only: nothing to keep
	if errors.Is(rerr, sql.ErrTxDone) {
		rerr = nil
	}
	if ferr != nil {
		return ferr
	}
	if rerr != nil {
		return fmt.Errorf("sqlreactor: end read: %w", rerr)
	}
	return nil
}
