package redis_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/state/redis"
	"github.com/reactorgo/reactor/state/statetest"
)

// client connects to the test Redis, or skips (fails with
// REACTOR_REQUIRE_SERVICES=1).
func client(t testing.TB) *goredis.Client { return testenv.Redis(t) }

// prefix returns a key prefix unique to this run and deletes its keys
// when the test ends.
func prefix(t testing.TB, c *goredis.Client) string {
	p := fmt.Sprintf("reactortest:%x:", rand.Uint64())
	testenv.DeleteRedisKeys(t, c, p)
	return p
}

func TestStoreContract(t *testing.T) {
	c := client(t)
	statetest.RunStoreTests(t, func(t *testing.T) reactor.StateStore {
		return redis.New(c, redis.Options{Prefix: prefix(t, c)})
	})
}

func TestScriptCacheFlushedAndTTL(t *testing.T) {
	c := client(t)
	p := prefix(t, c)
	s := redis.New(c, redis.Options{Prefix: p, TTL: time.Minute})
	ctx := context.Background()
	v, err := s.CompareAndSwap(ctx, "/a", []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	// A restarted (or failed-over) server has no scripts: EVALSHA falls
	// back to EVAL.
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	v2, err := s.CompareAndSwap(ctx, "/a", []byte("2"), v)
	if err != nil || v2 <= v {
		t.Fatalf("write after SCRIPT FLUSH = %d, %v", v2, err)
	}
	if ttl := c.PTTL(ctx, p+"/a").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL = %v, want ≤ 1m, set by the write", ttl)
	}
	// Versions grow across an expiry: a holder of an old version cannot
	// write over a recreated key.
	c.Del(ctx, p+"/a")
	v3, err := s.CompareAndSwap(ctx, "/a", []byte("3"), 0)
	if err != nil || v3 <= v2 {
		t.Fatalf("recreated key: version %d after %d (%v), want larger", v3, v2, err)
	}
	if _, err := s.CompareAndSwap(ctx, "/a", []byte("x"), v2); !errors.Is(err, reactor.ErrConflict) {
		t.Fatalf("write with the pre-expiry version = %v, want ErrConflict", err)
	}
	// The layout is documented: a hash with v and d.
	if got := c.HGet(ctx, p+"/a", "d").Val(); got != "3" {
		t.Fatalf("HGET d = %q", got)
	}
}

// Counter is the state of the integration tests' services.
type Counter struct{ N int }

func (c *Counter) Add(_ *reactor.Ctx, n int) (int, error)      { c.N += n; return c.N, nil }
func (c *Counter) Get(_ *reactor.Ctx, _ struct{}) (int, error) { return c.N, nil }

var (
	add = reactor.Method("redistest.counter.add", (*Counter).Add)
	get = reactor.Method("redistest.counter.get", (*Counter).Get, reactor.ReadOnly())
)

func node(t testing.TB, store reactor.StateStore, cfg reactor.Config) *reactor.Runtime {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rt, err := reactor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.RegisterChildren(rt, "/counters", func(string) *Counter { return &Counter{} }, reactor.External(store)); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func stats(rt *reactor.Runtime) reactor.ServiceStats {
	for _, st := range rt.Stats() {
		if st.Addr == "/counters" {
			return st
		}
	}
	return reactor.ServiceStats{}
}

// increment adds 1 to key through rt, retrying on ErrBusy as an HTTP
// client retries a 503. It returns the number of 503s.
func increment(ctx context.Context, rt *reactor.Runtime, key string) (busy int, err error) {
	for {
		_, err := add.Call(ctx, rt.Ref("/counters/"+key), 1)
		if !errors.Is(err, reactor.ErrBusy) {
			return busy, err
		}
		busy++
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
	}
}

// TestRuntimesShareKeys: four runtimes in this process (four nodes) make
// concurrent increments over shared keys through one Redis: every total is
// exact, and the conflicts that sharing causes are reported.
func TestRuntimesShareKeys(t *testing.T) {
	c := client(t)
	store := redis.New(c, redis.Options{Prefix: prefix(t, c)})
	const nodes, keys, each, clients = 4, 20, 1000, 8
	var rts []*reactor.Runtime
	for range nodes {
		rts = append(rts, node(t, store, reactor.Config{}))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var busy atomic.Int64
	for i, rt := range rts {
		for g := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := g; j < each; j += clients {
					b, err := increment(ctx, rt, strconv.Itoa((i*7+j)%keys))
					busy.Add(int64(b))
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	total := 0
	for k := range keys {
		n, err := get.Call(ctx, rts[k%nodes].Ref("/counters/"+strconv.Itoa(k)), struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	var conflicts, retries, commits uint64
	for _, rt := range rts {
		st := stats(rt)
		conflicts, retries, commits = conflicts+st.Conflicts, retries+st.Retries, commits+st.Saves
	}
	t.Logf("%d increments in %d commits; %d conflicts, %d re-runs, %d 503s", total, commits, conflicts, retries, busy.Load())
	if total != nodes*each {
		t.Fatalf("total = %d, want %d", total, nodes*each)
	}
}

// TestHotKeyStormNoLivelock: 4 nodes × 8 writers on one key with few
// attempts allowed: callers get ErrBusy rather than waiting forever, the
// run ends, and the stored count equals the acknowledged increments.
func TestHotKeyStormNoLivelock(t *testing.T) {
	c := client(t)
	store := redis.New(c, redis.Options{Prefix: prefix(t, c)})
	var rts []*reactor.Runtime
	for range 4 {
		rts = append(rts, node(t, store, reactor.Config{StateAttempts: 2, BatchSize: 1}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ok, busy atomic.Int64
	var wg sync.WaitGroup
	for _, rt := range rts {
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					_, err := add.Call(ctx, rt.Ref("/counters/hot"), 1)
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, reactor.ErrBusy):
						busy.Add(1)
					default:
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("storm did not finish in 20s")
	}
	n, err := get.Call(context.Background(), rts[0].Ref("/counters/hot"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	var gaveUp, conflicts uint64
	for _, rt := range rts {
		gaveUp += stats(rt).GaveUp
		conflicts += stats(rt).Conflicts
	}
	t.Logf("%d acknowledged, %d ErrBusy (%d batches gave up), %d conflicts", ok.Load(), busy.Load(), gaveUp, conflicts)
	if int64(n) != ok.Load() {
		t.Fatalf("stored %d, acknowledged %d: a refused batch was applied or an acknowledged one lost", n, ok.Load())
	}
}

const childEnv = "REACTOR_REDIS_CHILD"

// TestMain lets the test binary be a node of TestProcessesShareKeys.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childNode(spec))
	}
	os.Exit(m.Run())
}

// childNode runs "prefix keys increments" and prints its stats as JSON.
func childNode(spec string) int {
	var p string
	var keys, n int
	if _, err := fmt.Sscan(spec, &p, &keys, &n); err != nil {
		fmt.Println("spec:", err)
		return 2
	}
	store, c, err := redis.Open(context.Background(), cmp.Or(os.Getenv("REACTOR_TEST_REDIS"), "redis://127.0.0.1:6379/0"), redis.Options{Prefix: p}) // the parent checked it
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer c.Close()
	rt := node(&nopTB{}, store, reactor.Config{})
	var wg sync.WaitGroup
	var busy atomic.Int64
	var failed atomic.Bool
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := g; j < n; j += 8 {
				b, err := increment(context.Background(), rt, strconv.Itoa(rand.IntN(keys)))
				busy.Add(int64(b))
				if err != nil {
					fmt.Println(err)
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := stats(rt)
	json.NewEncoder(os.Stdout).Encode(map[string]uint64{"conflicts": st.Conflicts, "retries": st.Retries, "commits": st.Saves, "busy": uint64(busy.Load())})
	rt.Close(context.Background())
	if failed.Load() {
		return 1
	}
	return 0
}

// TestProcessesShareKeys: 4 processes × 10,000 increments spread over 100
// keys, all concurrent, through one Redis: exact totals, conflicts
// reported (the test; REACTOR_REDIS_INCREMENTS overrides 10,000).
func TestProcessesShareKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes")
	}
	c := client(t)
	p := prefix(t, c)
	const procs, keys = 4, 100
	each := 10000
	if s := os.Getenv("REACTOR_REDIS_INCREMENTS"); s != "" {
		each, _ = strconv.Atoi(s)
	}
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", childEnv, p, keys, each))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var conflicts, busy uint64
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("node %d: %v\n%s", i, err, outs[i])
		}
		var st map[string]uint64
		sc := bufio.NewScanner(strings.NewReader(outs[i].String()))
		for sc.Scan() {
			json.Unmarshal(sc.Bytes(), &st)
		}
		conflicts += st["conflicts"]
		busy += st["busy"]
	}
	// Read the totals through a fifth node.
	rt := node(t, redis.New(c, redis.Options{Prefix: p}), reactor.Config{})
	total := 0
	for k := range keys {
		n, err := get.Call(context.Background(), rt.Ref("/counters/"+strconv.Itoa(k)), struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	t.Logf("%d processes × %d increments over %d keys: total %d, %d conflicts, %d 503s", procs, each, keys, total, conflicts, busy)
	if total != procs*each {
		t.Fatalf("total = %d, want %d", total, procs*each)
	}
}

// nopTB lets node run in a child process, outside a test.
type nopTB struct{ testing.TB }

func (nopTB) Helper()           {}
func (nopTB) Cleanup(func())    {}
func (nopTB) Fatal(args ...any) { fmt.Println(args...); os.Exit(2) }
