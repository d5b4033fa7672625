package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// TestPageSize: Options.PageSize sets a new file's page size, on both
// drivers, in WAL mode; an existing file keeps its own; a bad size is
// refused.
func TestPageSize(t *testing.T) {
	ctx := context.Background()
	drivers := []string{"sqlite"}
	if sqlite.DefaultDriver != "sqlite" {
		drivers = append(drivers, sqlite.DefaultDriver) // cgo builds
	}
	for _, drv := range drivers {
		t.Run(drv, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.db")
			pageSize := func(size int) int {
				t.Helper()
				db, err := sqlite.Open(ctx, sqlite.Options{Path: path, Driver: drv, PageSize: size,
					Schema: []string{`CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY)`}})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				var n int
				var mode string
				if err := db.View(ctx, func(r *sqlreactor.ReadTx) error {
					if err := r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
						return err
					}
					return r.QueryRow(`PRAGMA page_size`).Scan(&n)
				}); err != nil {
					t.Fatal(err)
				}
				if mode != "wal" {
					t.Errorf("journal_mode %q, want wal", mode)
				}
				return n
			}
			if n := pageSize(1024); n != 1024 {
				t.Errorf("new file: page_size %d, want 1024", n)
			}
			if n := pageSize(8192); n != 1024 {
				t.Errorf("existing file reopened with 8192: page_size %d, want its own 1024", n)
			}
		})
	}
	if _, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "bad.db"), PageSize: 3000}); !errors.Is(err, sqlreactor.ErrConfig) {
		t.Errorf("page size 3000: %v, want ErrConfig", err)
	}
}

type localCounter struct{ n, loads int }

var bump = sqlreactor.Method("sqlitetest.local.bump", func(tx *sqlreactor.Tx, fail bool) (int, error) {
	c, err := sqlreactor.Local(tx, "counter", func(tx *sqlreactor.Tx) (*localCounter, error) {
		return &localCounter{loads: 1}, nil
	})
	if err != nil {
		return 0, err
	}
	c.n++
	if fail {
		return 0, errors.New("fail")
	}
	return c.n*100 + c.loads, nil
})

// TestLocal: a Local value is made once per DB, kept across batches, and
// not undone when a request that changed it fails.
func TestLocal(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "l.db"), CacheSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rt, err := reactor.New(reactor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reactor.Register(rt, "/db", db)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	for i, want := range []int{101, 201, -1, 401} {
		got, err := bump.Call(ctx, ref, want < 0)
		if want < 0 {
			if err == nil {
				t.Fatalf("call %d: no error", i)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("call %d: %d, %v; want %d", i, got, err, want)
		}
	}
}
