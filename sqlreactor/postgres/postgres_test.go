package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/postgres"
	"github.com/reactorgo/reactor/sqlreactor/sqlreactortest"
)

// schema creates a schema unique to t on the test server and drops it when
// t ends.
func schema(t *testing.T, dsn string) string {
	t.Helper()
	name := fmt.Sprintf("sqlr_%s_%x", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), rand.Uint32())
	if len(name) > 60 {
		name = name[len(name)-60:]
		name = "s" + name
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + name + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
		admin.Close()
	})
	return name
}

func TestContract(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	var mu sync.Mutex
	schemas := map[*testing.T]string{}
	sqlreactortest.Run(t, func(t *testing.T, cacheSize int) *sqlreactor.DB {
		mu.Lock()
		s, ok := schemas[t]
		if !ok {
			s = schema(t, dsn)
			schemas[t] = s
		}
		mu.Unlock()
		db, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn, SearchPath: s, CacheSize: cacheSize, Schema: sqlreactortest.Schema})
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}
