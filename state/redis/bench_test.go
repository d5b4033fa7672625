package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/state/redis"
)

// The benchmarks of docs/BENCHMARKS.md ("External state on Redis"). They
// report throughput as custom metrics; each compares with a baseline run
// in the same benchmark, against the same Redis. Run them on a quiet
// machine only (see the doc for the command).

// BenchmarkHotKey: one key, 8 concurrent writers. "reactor" spreads them
// over 4 runtimes (2 writers each, as 4 stateless nodes behind a load
// balancer) and counts an update when its call returns; "watch-multi" is
// the plain go-redis optimistic loop (WATCH, GET, MULTI SET EXEC, again on
// TxFailedErr) from 8 goroutines. b.N is the number of committed updates.
func BenchmarkHotKey(b *testing.B) {
	const writers, nodes = 8, 4
	b.Run("reactor", func(b *testing.B) {
		c := client(b)
		store := redis.New(c, redis.Options{Prefix: prefix(b, c)})
		var rts []*reactor.Runtime
		for range nodes {
			rts = append(rts, node(b, store, reactor.Config{StateAttempts: 1000}))
		}
		ctx := context.Background()
		var busy atomic.Int64
		b.ResetTimer()
		runWriters(b, writers, func(w, n int) {
			ref := rts[w%nodes].Ref("/counters/hot")
			for range n {
				for {
					_, err := add.Call(ctx, ref, 1)
					if err == nil {
						break
					}
					if !errors.Is(err, reactor.ErrBusy) {
						b.Error(err)
						return
					}
					busy.Add(1)
				}
			}
		})
		b.StopTimer()
		var conflicts, saves uint64
		for _, rt := range rts {
			conflicts += stats(rt).Conflicts
			saves += stats(rt).Saves
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		b.ReportMetric(float64(saves)/b.Elapsed().Seconds(), "writes/s")
		b.ReportMetric(float64(conflicts)/float64(max(saves+conflicts, 1))*100, "%conflicts")
		b.ReportMetric(float64(busy.Load()), "503s")
	})
	b.Run("watch-multi", func(b *testing.B) {
		c := client(b)
		key := prefix(b, c) + "hot"
		ctx := context.Background()
		var conflicts, commits atomic.Int64
		b.ResetTimer()
		runWriters(b, writers, func(_, n int) {
			for range n {
				for {
					err := c.Watch(ctx, func(tx *goredis.Tx) error {
						v, err := tx.Get(ctx, key).Int64()
						if err != nil && !errors.Is(err, goredis.Nil) {
							return err
						}
						_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
							p.Set(ctx, key, v+1, 0)
							return nil
						})
						return err
					}, key)
					if err == nil {
						commits.Add(1)
						break
					}
					if !errors.Is(err, goredis.TxFailedErr) {
						b.Error(err)
						return
					}
					conflicts.Add(1)
				}
			}
		})
		b.StopTimer()
		if got, _ := c.Get(ctx, key).Int64(); got != int64(b.N) {
			b.Fatalf("counter %d after %d updates", got, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		b.ReportMetric(float64(commits.Load())/b.Elapsed().Seconds(), "writes/s")
		b.ReportMetric(float64(conflicts.Load())/float64(max(commits.Load()+conflicts.Load(), 1))*100, "%conflicts")
	})
}

// BenchmarkSpreadKeys: 64 concurrent callers, each on its own key out of
// 1,000, through one runtime, in the three placements of the same
// service: External on Redis, journaled (fsynced group commit to a temp
// directory) and memory only. b.N is the number of commands.
func BenchmarkSpreadKeys(b *testing.B) {
	const callers, keys = 64, 1000
	run := func(b *testing.B, rt *reactor.Runtime) {
		ctx := context.Background()
		b.ResetTimer()
		runWriters(b, callers, func(w, n int) {
			for i := range n {
				ref := rt.Ref("/counters/" + strconv.Itoa((w*131+i)%keys))
				if _, err := add.Call(ctx, ref, 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
	}
	b.Run("redis", func(b *testing.B) {
		c := client(b)
		run(b, node(b, redis.New(c, redis.Options{Prefix: prefix(b, c)}), reactor.Config{}))
	})
	b.Run("journal", func(b *testing.B) {
		dir := b.TempDir()
		j, err := journal.Open(context.Background(), journal.Options{Dir: filepath.Join(dir, "journal"), Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { j.Close() })
		cps, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
		if err != nil {
			b.Fatal(err)
		}
		run(b, placed(b, reactor.Config{Journal: j, Store: cps}, reactor.Journaled()))
	})
	b.Run("memory", func(b *testing.B) {
		run(b, placed(b, reactor.Config{}, reactor.InMemory()))
	})
}

// runWriters runs b.N units of work split over n goroutines; fn(w, k) does
// k units as writer w.
func runWriters(b *testing.B, n int, fn func(w, k int)) {
	var wg sync.WaitGroup
	for w := range n {
		k := b.N / n
		if w < b.N%n {
			k++
		}
		wg.Add(1)
		go func() { defer wg.Done(); fn(w, k) }()
	}
	wg.Wait()
}

// placed is node for the placements without a StateStore.
func placed(b *testing.B, cfg reactor.Config, place reactor.Option) *reactor.Runtime {
	b.Helper()
	cfg.Logger = quiet()
	rt, err := reactor.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(rt, "/counters", func(string) *Counter { return &Counter{} }, place); err != nil {
		b.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
