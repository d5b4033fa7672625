package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

type riverArgs struct {
	I int `json:"i"`
}

func (riverArgs) Kind() string { return "bench_noop" }

type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	rec *recorder
}

func (w *riverWorker) Work(_ context.Context, j *river.Job[riverArgs]) error {
	w.rec.ranJob(j.Args.I)
	return nil
}

const riverSchema = "jobsbench"

func runRiverPG(ctx context.Context, o options, rec *recorder) (result, error) {
	pool, err := pgxpool.New(ctx, o.pg)
	if err != nil {
		return result{}, fmt.Errorf("connect: %w", err)
	}
	defer pool.Close()
	// Tables in a schema of their own, emptied first: the database may be
	// shared with other work.
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+riverSchema+" CASCADE; CREATE SCHEMA "+riverSchema); err != nil {
		return result{}, fmt.Errorf("schema: %w", err)
	}
	defer func() { _, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+riverSchema+" CASCADE") }()
	var syncCommit, fsync string
	_ = pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit)
	_ = pool.QueryRow(ctx, "SHOW fsync").Scan(&fsync)
	driver := riverpgxv5.New(pool)
	res, err := runRiver(ctx, o, rec, driver, riverSchema, func(ctx context.Context) (int, error) {
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM "+riverSchema+".river_job WHERE state = 'completed'").Scan(&n)
		return n, err
	})
	res.Note = fmt.Sprintf("PostgreSQL fsync=%s synchronous_commit=%s, FetchCooldown %s", fsync, syncCommit, cooldown(o))
	return res, err
}

func runRiverSQLite(ctx context.Context, o options, rec *recorder) (result, error) {
	path := filepath.Join(o.dir, "river.sqlite")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return result{}, fmt.Errorf("open: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // riversqlite's advice: SQLite runs one operation at a time
	driver := riversqlite.New(db)
	res, err := runRiver(ctx, o, rec, driver, "", func(ctx context.Context) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM river_job WHERE state = 'completed'").Scan(&n)
		return n, err
	})
	res.Note = "SQLite (modernc.org/sqlite) WAL, synchronous=FULL, one connection, FetchCooldown " + cooldown(o)
	return res, err
}

func cooldown(o options) string {
	if o.riverCooldown == 0 {
		return "100ms (default)"
	}
	return o.riverCooldown.String()
}

func runRiver[TTx any](ctx context.Context, o options, rec *recorder, driver riverdriver.Driver[TTx], schema string, completed func(context.Context) (int, error)) (result, error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: o.log})
	if err != nil {
		return result{}, fmt.Errorf("migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return result{}, fmt.Errorf("migrate: %w", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{rec: rec})
	client, err := river.NewClient(driver, &river.Config{
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.workers}},
		Workers:       workers,
		Schema:        schema,
		Logger:        o.log,
		FetchCooldown: o.riverCooldown,
	})
	if err != nil {
		return result{}, fmt.Errorf("client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return result{}, fmt.Errorf("start: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()
	began := time.Now()
	err = produce(ctx, o, rec, func(ctx context.Context, i int) error {
		_, err := client.Insert(ctx, riverArgs{I: i}, nil) // its own transaction, committed before it returns
		return err
	})
	if err != nil {
		return result{}, err
	}
	if err := waitCompleted(ctx, o.n, 20*time.Millisecond, completed); err != nil {
		return result{}, err
	}
	return result{Elapsed: time.Since(began)}, nil
}
