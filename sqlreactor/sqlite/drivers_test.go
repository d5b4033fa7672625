package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
	"github.com/reactorgo/reactor/sqlreactor/sqlreactortest"
)

// TestContractPureGo runs the contract on the driver that is not the
// default under cgo, so both drivers are covered.
func TestContractPureGo(t *testing.T) {
	var mu sync.Mutex
	paths := map[*testing.T]string{}
	sqlreactortest.Run(t, func(t *testing.T, cacheSize int) *sqlreactor.DB {
		mu.Lock()
		path, ok := paths[t]
		if !ok {
			path = filepath.Join(t.TempDir(), "contract.db")
			paths[t] = path
		}
		mu.Unlock()
		db, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, Driver: "sqlite", CacheSize: cacheSize, Schema: sqlreactortest.Schema})
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}
