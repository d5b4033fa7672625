package sim

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// A database/sql driver wrapper that injects SQL failures into a real
// driver (SQLite underneath, nothing mocked): the simulation arms a fault,
// and the next statement it matches fails — before it runs (the database
// never saw it) or after (it took effect and the process "died" before
// hearing so). sqlreactor needs no seam for this: its Config takes any
// *sql.DB, and sql.OpenDB takes a connector.

var (
	// errInjected is a statement failure the simulation injected.
	errInjected = errors.New("sim: injected SQL failure")
	// errDead: the simulated process died; its connection answers nothing.
	errDead = errors.New("sim: the process died (SQL connection gone)")
)

// sqlFault is one armed failure: the next statement whose text starts with
// prefix (after skip more such statements) fails; with after, it runs
// first, then the process dies (a crash between the statement, e.g.
// COMMIT, and the acknowledgement).
type sqlFault struct {
	prefix string
	skip   int
	after  bool // run, then die
	die    bool // the failure kills the process (every later statement fails)
	name   string
}

// sqlFaults is the shared state of the wrapped connections of one
// simulated process.
type sqlFaults struct {
	mu    sync.Mutex
	armed *sqlFault
	dead  bool
	fired []string // names of the faults that fired
	stmts int      // statements seen (all connections)
}

func (f *sqlFaults) arm(x *sqlFault) {
	f.mu.Lock()
	f.armed = x
	f.mu.Unlock()
}

// take returns what to do with query: fail before, run and then fail, or
// run.
func (f *sqlFaults) before(query string) (fail error, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stmts++
	if f.dead {
		return errDead, false
	}
	x := f.armed
	if x == nil || !strings.HasPrefix(strings.TrimSpace(query), x.prefix) {
		return nil, false
	}
	if x.skip > 0 {
		x.skip--
		return nil, false
	}
	f.armed = nil
	f.fired = append(f.fired, x.name)
	if x.after {
		f.dead = true
		return nil, true
	}
	if x.die {
		f.dead = true
		return fmt.Errorf("%w: %s (the process died)", errDead, x.name), false
	}
	return fmt.Errorf("%w: %s on %.40q", errInjected, x.name, query), false
}

func (f *sqlFaults) isDead() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead
}

func (f *sqlFaults) takeFired() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.fired
	f.fired = nil
	return x
}

// faultConnector opens connections of the inner driver, wrapped.
type faultConnector struct {
	dsn   string
	inner driver.Driver
	f     *sqlFaults
}

func (c *faultConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.inner.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &faultConn{Conn: conn, f: c.f}, nil
}

func (c *faultConnector) Driver() driver.Driver { return c.inner }

// openFaultDB opens a *sql.DB on driverName (a registered real driver)
// whose every statement passes through f.
func openFaultDB(driverName, dsn string, f *sqlFaults) (*sql.DB, error) {
	probe, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("sim: open driver %s: %w", driverName, err)
	}
	inner := probe.Driver()
	probe.Close()
	return sql.OpenDB(&faultConnector{dsn: dsn, inner: inner, f: f}), nil
}

type faultConn struct {
	driver.Conn
	f *sqlFaults
}

var (
	_ driver.ExecerContext      = (*faultConn)(nil)
	_ driver.QueryerContext     = (*faultConn)(nil)
	_ driver.ConnPrepareContext = (*faultConn)(nil)
	_ driver.ConnBeginTx        = (*faultConn)(nil)
)

func (c *faultConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	fail, after := c.f.before(query)
	if fail != nil {
		return nil, fail
	}
	ex, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares and executes instead
	}
	res, err := ex.ExecContext(ctx, query, args)
	if after && err == nil {
		return nil, fmt.Errorf("%w: after %.40q took effect", errDead, query)
	}
	return res, err
}

func (c *faultConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	fail, after := c.f.before(query)
	if fail != nil {
		return nil, fail
	}
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if after && err == nil {
		rows.Close()
		return nil, fmt.Errorf("%w: after %.40q took effect", errDead, query)
	}
	return rows, err
}

func (c *faultConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &faultStmt{Stmt: st, query: query, f: c.f}, nil
}

func (c *faultConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *faultConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if fail, _ := c.f.before("BEGIN"); fail != nil {
		return nil, fail
	}
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.Conn.Begin() //nolint:staticcheck // the inner driver's only way
}

// ResetSession and IsValid pass through, so that database/sql keeps
// pooling the inner driver's connections as it would without the wrapper.
func (c *faultConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *faultConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

type faultStmt struct {
	driver.Stmt
	query string
	f     *sqlFaults
}

func (s *faultStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	fail, after := s.f.before(s.query)
	if fail != nil {
		return nil, fail
	}
	var res driver.Result
	var err error
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		res, err = s.Stmt.Exec(values(args)) //nolint:staticcheck // the inner driver's only way
	}
	if after && err == nil {
		return nil, fmt.Errorf("%w: after %.40q took effect", errDead, s.query)
	}
	return res, err
}

func (s *faultStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	fail, _ := s.f.before(s.query)
	if fail != nil {
		return nil, fail
	}
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	return s.Stmt.Query(values(args)) //nolint:staticcheck // the inner driver's only way
}

func values(args []driver.NamedValue) []driver.Value {
	v := make([]driver.Value, len(args))
	for i, a := range args {
		v[i] = a.Value
	}
	return v
}
