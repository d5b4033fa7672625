package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/reactortest"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

var counterSchema = []string{
	`CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`,
	`INSERT INTO counter (id, n) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`,
}

// add is deliberately not idempotent: applied twice, it counts twice.
var add = sqlreactor.Method("sqlitetest.add", func(tx *sqlreactor.Tx, n int64) (int64, error) {
	return n, tx.Write(`UPDATE counter SET n = n + ? WHERE id = 1`, n)
})

func counter(t *testing.T, db *sqlreactor.DB) int64 {
	t.Helper()
	var n int64
	if err := db.View(context.Background(), func(r *sqlreactor.ReadTx) error {
		return r.QueryRow(`SELECT n FROM counter WHERE id = 1`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJournaledReplaySkipsApplied: a journaled DB reactor "crashes" (its
// runtime is abandoned without a checkpoint), the journal is replayed at
// the next start, and the requests whose batch committed are skipped by
// their sequence number while the ones that never committed are applied.
func TestJournaledReplaySkipsApplied(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "j.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot := func() (*reactor.Runtime, *journal.Journal, *sqlreactor.DB, reactor.Ref) {
		t.Helper()
		db, err := sqlite.Open(ctx, sqlite.Options{Path: path, Schema: counterSchema})
		if err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal")})
		if err != nil {
			t.Fatal(err)
		}
		store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := reactor.New(reactor.Config{Journal: j, Store: store, CheckpointInterval: time.Hour, CheckShared: reactortest.NoAliasing(t)})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reactor.Register(rt, "/db", db, reactor.Journaled())
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return rt, j, db, ref
	}

	_, j, db, ref := boot()
	const n = 20
	for i := range n {
		if _, err := add.Call(ctx, ref, int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	want := int64(n * (n + 1) / 2)
	if got := counter(t, db); got != want {
		t.Fatalf("counter = %d, want %d", got, want)
	}
	// Crash: no checkpoint, the journal keeps every request. Pretend the
	// last two requests' batches never committed: roll their effect and
	// the recorded sequence number back by hand.
	db.Close()
	j.Close()
	raw, err := sql.Open(sqlite.DefaultDriver, sqlite.DSN(sqlite.DefaultDriver, path, time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE counter SET n = n - ? WHERE id = 1`, n+(n-1)); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE sqlreactor_applied SET seq = seq - 2 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	rt2, j2, db2, ref2 := boot() // replays the journal
	defer func() { rt2.Close(ctx); j2.Close(); db2.Close() }()
	if got := counter(t, db2); got != want {
		t.Fatalf("after replay counter = %d, want %d (each request exactly once)", got, want)
	}
	if st := db2.Stats(); st.Skipped != n-2 {
		t.Errorf("skipped %d replayed requests, want %d", st.Skipped, n-2)
	}
	if _, err := add.Call(ctx, ref2, 1000); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, db2); got != want+1000 {
		t.Fatalf("after a new request counter = %d, want %d", got, want+1000)
	}
}
