package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal"
)

type noop struct {
	I int `json:"i"`
}

// benchRec is the recorder of the run in progress: a kind is defined once
// per process, its handler finds the run through this.
var benchRec = func(int) {}

var noopKind = jobs.Define("bench.noop", func(_ context.Context, j *jobs.Job[noop]) error {
	benchRec(j.Args.I)
	return nil
}, jobs.Queue("bench"))

func runReactor(ctx context.Context, o options, rec *recorder) (result, error) {
	dir := filepath.Join(o.dir, "reactor")
	store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
	if err != nil {
		return result{}, fmt.Errorf("checkpoints: %w", err)
	}
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal"), Logger: o.log})
	if err != nil {
		return result{}, fmt.Errorf("journal: %w", err)
	}
	defer j.Close()
	rt, err := reactor.New(reactor.Config{Store: store, Journal: j, Logger: o.log})
	if err != nil {
		return result{}, fmt.Errorf("runtime: %w", err)
	}
	qs, err := jobs.New(rt, jobs.Config{Logger: o.log, Queues: map[string]jobs.QueueConfig{
		"bench": {Workers: o.workers, MaxDepth: o.n + 1, InboxSize: 4 * o.producers},
	}})
	if err != nil {
		return result{}, err
	}
	if err := rt.Start(ctx); err != nil {
		return result{}, fmt.Errorf("start: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = qs.Close(cctx)
		_ = rt.Close(cctx)
	}()
	benchRec = rec.ranJob
	defer func() { benchRec = func(int) {} }()
	if err := qs.Start(ctx); err != nil {
		return result{}, err
	}
	began := time.Now()
	err = produce(ctx, o, rec, func(ctx context.Context, i int) error {
		_, err := noopKind.Enqueue(ctx, qs, noop{I: i})
		return err
	})
	if err != nil {
		return result{}, err
	}
	err = waitCompleted(ctx, o.n, 20*time.Millisecond, func(ctx context.Context) (int, error) {
		st, err := qs.Stats(ctx)
		if err != nil || len(st) == 0 {
			return 0, err
		}
		return int(st[0].Completed), nil
	})
	if err != nil {
		return result{}, err
	}
	return result{Elapsed: time.Since(began), Note: "journal fdatasync per group commit, queue state in memory"}, nil
}
