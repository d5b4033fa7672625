package main_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/reactorgo/reactor/internal/testenv"
)

// TestRedisNodeKill9: two server processes in Redis mode on one cluster
// name. Clients drive rooms through node A, which is killed with SIGKILL
// at random moments under that load, 10 times; after each kill node B —
// which never restarts — must show every request A answered 201/202 (and
// of the request in flight at the kill, either outcome), then A comes
// back and the load goes on. Nothing of an acknowledged request may live
// only in the dead process.
func TestRedisNodeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	url := testenv.RedisURL(t)
	rc := testenv.Redis(t)
	cluster := fmt.Sprintf("pokercrash-%x", rand.Uint64())
	testenv.DeleteRedisKeys(t, rc, cluster+":")
	flags := []string{"-redis", url, "-cluster", cluster}
	bin := buildPoker(t)
	b := startPoker(t, bin, t.TempDir(), flags...)
	dataA := t.TempDir()
	const cycles, workers = 10, 6
	rooms := make([]*model, workers)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	seq, acked := 0, 0
	for cycle := range cycles {
		a := startPoker(t, bin, dataA, flags...)
		loadUntilKill(a.url, rooms, rng, &seq, &acked, time.Duration(100+rng.IntN(300))*time.Millisecond, a.kill9)
		for _, m := range rooms {
			if m != nil {
				verify(t, b.url, m, cycle)
			}
		}
	}
	if acked < cycles*workers {
		t.Fatalf("only %d requests acknowledged in %d cycles: the load did not run", acked, cycles)
	}
	t.Logf("%d kills of node A under load; %d acknowledged requests checked through node B", cycles, acked)
}
