package split_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor/examples/bank/split"
	"github.com/reactorgo/reactor/internal/testenv"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/postgres"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

const (
	nUsers, nTourneys = 20, 5
	funds             = 1_000_000
	nTransfers        = 2400
)

func user(i int) string    { return fmt.Sprintf("u%02d", i%nUsers) }
func tourney(i int) string { return fmt.Sprintf("t%d", i%nTourneys) }

// plan is transfer i: even ones enter a tournament, odd ones pay a prize.
func plan(i int) (enter bool, t split.Transfer) {
	x := fmt.Sprintf("x%05d", i)
	if i%2 == 0 {
		return true, split.Transfer{Xid: x, Src: user(i), Dst: tourney(i), Amount: int64(100 + i)}
	}
	return false, split.Transfer{Xid: x, Src: tourney(i), Dst: user(i), Amount: int64(50 + i)}
}

// env describes where the two databases are, for the child process.
type env map[string]string

func openBoth(t testing.TB, e env) (users, tourneys *sqlreactor.DB) {
	ctx := context.Background()
	var err error
	switch e["SPLIT_BACKEND"] {
	case "sqlite":
		if users, err = sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(e["SPLIT_DIR"], "users.db"), Schema: split.Schema}); err != nil {
			t.Fatal(err)
		}
		if tourneys, err = sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(e["SPLIT_DIR"], "tourneys.db"), Schema: split.Schema}); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		if users, err = postgres.Open(ctx, postgres.Options{DSN: e["SPLIT_DSN"], SearchPath: e["SPLIT_USERS"], Schema: split.Schema}); err != nil {
			t.Fatal(err)
		}
		if tourneys, err = postgres.Open(ctx, postgres.Options{DSN: e["SPLIT_DSN"], SearchPath: e["SPLIT_TOURNEYS"], Schema: split.Schema}); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown backend %q", e["SPLIT_BACKEND"])
	}
	return users, tourneys
}

// TestCrashChild is the process the crash tests kill: it (re)submits every
// planned transfer and waits for the relays to deliver them all.
func TestCrashChild(t *testing.T) {
	if os.Getenv("SPLIT_CHILD") != "1" {
		t.Skip("run by TestCrash*")
	}
	e := env{}
	for _, k := range []string{"SPLIT_BACKEND", "SPLIT_DIR", "SPLIT_DSN", "SPLIT_USERS", "SPLIT_TOURNEYS"} {
		e[k] = os.Getenv(k)
	}
	users, tourneys := openBoth(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sys, err := split.Start(ctx, users, tourneys, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Progress marker for the parent: present only while transfers are
	// still being submitted or delivered, so a kill that finds it landed
	// mid-run.
	marker := os.Getenv("SPLIT_MARKER")
	if err := os.WriteFile(marker, []byte("running"), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < nTransfers; i += 8 {
				enter, tr := plan(i)
				var err error
				if enter {
					err = sys.Enter(ctx, tr.Xid, tr.Src, tr.Dst, tr.Amount)
				} else {
					err = sys.Payout(ctx, tr.Xid, tr.Src, tr.Dst, tr.Amount)
				}
				if err != nil {
					t.Errorf("transfer %s: %v", tr.Xid, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for ctx.Err() == nil {
		pu, err1 := split.Pending(ctx, users, 1)
		pt, err2 := split.Pending(ctx, tourneys, 1)
		if err1 == nil && err2 == nil && len(pu) == 0 && len(pt) == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	os.Remove(marker)
	if err := sys.Close(ctx); err != nil {
		t.Error(err)
	}
	users.Close()
	tourneys.Close()
}

func runCrash(t *testing.T, e env) {
	// Setup money, once, before any child runs.
	users, tourneys := openBoth(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sys, err := split.Start(ctx, users, tourneys, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nUsers {
		if _, err := split.Fund.Call(ctx, sys.UsersRef, split.Transfer{Dst: user(i), Amount: funds}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nTourneys {
		if _, err := split.Fund.Call(ctx, sys.TourneysRef, split.Transfer{Dst: tourney(i), Amount: funds}); err != nil {
			t.Fatal(err)
		}
	}
	sys.Close(ctx)
	users.Close()
	tourneys.Close()

	marker := filepath.Join(t.TempDir(), "running")
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SPLIT_CHILD=1", "SPLIT_MARKER="+marker)
		for k, v := range e {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		return cmd
	}
	// At least 30 kills, at least 10 of them while transfers are in flight
	// (a kill that lands before the child got going teaches nothing; how
	// many do depends on the machine's speed, so keep going, bounded).
	const minKills, minMidRun, maxCycles = 30, 10, 120
	budget := 90 * time.Second
	start := time.Now()
	killed, midRun := 0, 0
	for c := 0; (killed < minKills || midRun < minMidRun) && c < maxCycles && time.Since(start) < budget; c++ {
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
			killed++
		}
		_ = cmd.Wait()
		if _, err := os.Stat(marker); err == nil {
			midRun++
			os.Remove(marker)
		}
	}
	if killed < minKills {
		t.Fatalf("only %d kill cycles in %s", killed, budget)
	}
	out, err := child().CombinedOutput()
	if err != nil {
		t.Fatalf("final run after %d kills: %v\n%s", killed, err, out)
	}
	t.Logf("%d kill -9 cycles (%d in the middle of transfers), then a clean run, in %s", killed, midRun, time.Since(start).Round(time.Millisecond))
	if midRun < minMidRun {
		t.Errorf("only %d of %d kills landed while transfers were in flight", midRun, killed)
	}

	users, tourneys = openBoth(t, e)
	defer users.Close()
	defer tourneys.Close()
	au, err := split.Inspect(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	at, err := split.Inspect(ctx, tourneys)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i := range nUsers {
		want[user(i)] = funds
	}
	for i := range nTourneys {
		want[tourney(i)] = funds
	}
	for i := range nTransfers {
		enter, tr := plan(i)
		want[tr.Src] -= tr.Amount
		want[tr.Dst] += tr.Amount
		sender, receiver := au, at
		if !enter {
			sender, receiver = at, au
		}
		if got, ok := sender.Sent[tr.Xid]; !ok || got != tr {
			t.Errorf("%s: outbox has %+v (present %v), want %+v", tr.Xid, got, ok, tr)
		}
		if amt, ok := receiver.Received[tr.Xid]; !ok || amt != tr.Amount {
			t.Errorf("%s: received %d (present %v), want %d exactly once", tr.Xid, amt, ok, tr.Amount)
		}
	}
	if au.Undone+at.Undone != 0 {
		t.Errorf("%d outbox rows never acknowledged", au.Undone+at.Undone)
	}
	if n := len(au.Sent) + len(at.Sent); n != nTransfers {
		t.Errorf("%d transfers in the outboxes, want %d", n, nTransfers)
	}
	for id, w := range want {
		got := au.Wallets[id] + at.Wallets[id]
		if got != w {
			t.Errorf("wallet %s = %d, want %d (a transfer applied twice or lost)", id, got, w)
		}
	}
	if total := au.Total + at.Total; total != (nUsers+nTourneys)*funds {
		t.Errorf("money across both databases = %d, want %d", total, (nUsers+nTourneys)*funds)
	}
}

func TestCrashSQLite(t *testing.T) {
	runCrash(t, env{"SPLIT_BACKEND": "sqlite", "SPLIT_DIR": t.TempDir()})
}

func TestCrashPostgres(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	id := rand.Uint32()
	e := env{"SPLIT_BACKEND": "postgres", "SPLIT_DSN": dsn,
		"SPLIT_USERS": fmt.Sprintf("split_users_%x", id), "SPLIT_TOURNEYS": fmt.Sprintf("split_tourneys_%x", id)}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, s := range []string{e["SPLIT_USERS"], e["SPLIT_TOURNEYS"]} {
		if _, err := admin.Exec(`CREATE SCHEMA ` + s); err != nil {
			t.Fatal(err)
		}
		defer admin.Exec(`DROP SCHEMA ` + s + ` CASCADE`)
	}
	runCrash(t, e)
}
