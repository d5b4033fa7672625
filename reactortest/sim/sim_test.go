package sim_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/reactortest/sim"
)

var (
	seed  = flag.Uint64("sim.seed", 0, "run only this seed")
	seeds = flag.Int("sim.seeds", 40, "how many seeds TestSeeds sweeps")
	trace = flag.Bool("sim.log", false, "log the runtime's and the journal's warnings to stderr")
)

// TestSeeds sweeps seeds through the simulation: every run must keep every
// acknowledged operation, apply nothing twice and agree with the model
// after every crash, power cut and full disk. It also requires the sweep to
// have reached the rare states it exists for.
func TestSeeds(t *testing.T) {
	first, n := uint64(1), *seeds
	if *seed != 0 {
		first, n = *seed, 1
	}
	if testing.Short() && *seed == 0 {
		n = 10
	}
	reached := map[string]int{}
	began := time.Now()
	for s := first; s < first+uint64(n); s++ {
		cfg := sim.Config{Seed: s}
		if *trace {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		res, err := sim.Run(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%v\n%s", err, res)
		}
		for k, v := range res.Reached {
			reached[k] += v
		}

		if *seed != 0 {
			t.Log(res)
		}
	}
	t.Logf("%d seeds in %v; reached %v", n, time.Since(began).Round(time.Millisecond), reached)
	if *seed == 0 {
		for _, state := range []string{"crash", "crash with ops in flight", "torn tail", "disk full failed an op", "unknown op resolved by its retry"} {
			if reached[state] == 0 {
				t.Errorf("the sweep never reached %q: the simulation lost its teeth", state)
			}
		}
	}
}

// TestFindsAPlantedBug: with a journal that acknowledges before fsync (the
// planted bug), the same sweep must find a lost acknowledged operation.
func TestFindsAPlantedBug(t *testing.T) {
	for s := uint64(1); s <= 40; s++ {
		_, err := sim.Run(context.Background(), sim.Config{Seed: s, Durability: journal.None()})
		if err != nil {
			t.Logf("found at seed %d: %v", s, err)
			return
		}
	}
	t.Fatal("40 seeds did not find a journal that acknowledges before fsync")
}
