// Command bank runs the ledger example of the DB server reactor over HTTP:
//
//	go run ./examples/bank                      # SQLite file under ./data
//	go run ./examples/bank -db postgres://postgres@127.0.0.1:5432/test
//
// See package bank for the API.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/examples/bank/bank"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/postgres"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	dsn := flag.String("db", "data/bank.db", "SQLite file, or a postgres:// DSN")
	replica := flag.String("replica", "", "read-only replica DSN for statements (PostgreSQL)")
	flag.IntVar(&pageSize, "page-size", 0, "page size of a new SQLite file (0: SQLite's 4096; see docs/SQLREACTOR.md, Data design)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *dsn, *replica, log); err != nil {
		log.Error("bank", "err", err)
		os.Exit(1)
	}
}

var pageSize int

func openDB(ctx context.Context, dsn, replica string, log *slog.Logger) (*sqlreactor.DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(ctx, postgres.Options{DSN: dsn, ReadDSN: replica, Schema: bank.PostgresSchema, Logger: log})
	}
	if err := os.MkdirAll(filepath.Dir(dsn), 0o755); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, sqlite.Options{Path: dsn, Schema: bank.Schema, Logger: log, PageSize: pageSize})
}

func run(addr, dsn, replica string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := openDB(ctx, dsn, replica, log)
	if err != nil {
		return err
	}
	defer db.Close()
	rt, err := reactor.New(reactor.Config{Logger: log})
	if err != nil {
		return err
	}
	ref, err := bank.Register(rt, "/bank", db)
	if err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: bank.Handler(db, ref, 10*time.Second), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("bank listening", "addr", addr, "db", db.Dialect().Name())
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, srv.Shutdown(sctx), rt.Close(sctx))
}
