package jobs_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal"
)

// The kill -9 test runs the application in a child process (this test
// binary re-executed with killChildEnv set, running only
// TestKill9Child), kills it with SIGKILL at a random moment, and starts it
// again on the same directory, 20 times; then it recovers in this process,
// lets every job finish and checks the outcome against what the children
// wrote down (page cache survives a SIGKILL, so their plain appends are
// complete up to the kill, but for a torn last line).
const killChildEnv = "REACTOR_JOBS_KILL_CHILD"

// Effects is the side effect of the kill jobs, made idempotent the way a
// handler should: the effect records the job id with it, in the same
// journaled turn, and a second application of the same id changes
// nothing. (reactor.WithIdempotencyKey alone would not do here: the
// runtime remembers at most 64 answers per key scope and 1,024 per
// service, and this test runs thousands of jobs.) Calls counts every
// application, duplicates included, to show the at-least-once side.
type Effects struct {
	Applied map[string]int // job id → 1 once applied
	Calls   map[string]int
	Balance int // what the effect adds up to: one per distinct job
}

func (e *Effects) Apply(_ *reactor.Ctx, id string) (int, error) {
	if e.Applied == nil {
		e.Applied, e.Calls = map[string]int{}, map[string]int{}
	}
	e.Calls[id]++
	if e.Applied[id] == 0 {
		e.Applied[id] = 1
		e.Balance++
	}
	return e.Calls[id], nil
}

func (e *Effects) Dump(*reactor.Ctx, struct{}) (Effects, error) {
	return Effects{Applied: maps.Clone(e.Applied), Calls: maps.Clone(e.Calls), Balance: e.Balance}, nil
}

var (
	effectApply = reactor.Method("test.kill.effects.apply", (*Effects).Apply)
	effectDump  = reactor.Method("test.kill.effects.dump", (*Effects).Dump, reactor.ReadOnly())
)

// killState is what the kill job's handler needs: set by whoever opened
// the app in this process.
var killState struct {
	sync.Mutex
	rt   *reactor.Runtime
	runs *os.File
}

// killJob fails some attempts before its effect and some after it (so a
// completed job may have run its effect in an earlier attempt), and runs at
// most 4 times: some jobs end dead.
var killJob = jobs.Define("test.kill", func(ctx context.Context, j *jobs.Job[Note]) error {
	killState.Lock()
	rt, runs := killState.rt, killState.runs
	killState.Unlock()
	fmt.Fprintf(runs, "run %s\n", j.ID)
	time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
	if rand.IntN(5) == 0 {
		return errors.New("failed before the effect")
	}
	if _, err := effectApply.Call(ctx, rt.Ref("/effects"), j.ID); err != nil {
		return err
	}
	if rand.IntN(5) == 0 {
		return errors.New("failed after the effect")
	}
	return nil
}, jobs.Queue("kill"), jobs.MaxAttempts(4), jobs.Backoff(time.Millisecond, 10*time.Millisecond))

type killApp struct {
	rt *reactor.Runtime
	j  *journal.Journal
	qs *jobs.Queues
}

func openKillApp(t testing.TB, dir string) *killApp {
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: quiet, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := jobs.New(rt, jobs.Config{Logger: quiet, Queues: map[string]jobs.QueueConfig{"kill": {
		// MaxDepth keeps the load within what the workers drain (about
		// a hundred journaled jobs a second on a shared 2-core machine):
		// producers meet ErrBusy beyond it.
		MaxDepth: 150, Workers: 6, LeaseTime: 300 * time.Millisecond, PollInterval: 5 * time.Millisecond, TickInterval: 20 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.Register(rt, "/effects", &Effects{}, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	runs, err := os.OpenFile(filepath.Join(dir, "runs"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	killState.Lock()
	killState.rt, killState.runs = rt, runs
	killState.Unlock()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := qs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &killApp{rt: rt, j: j, qs: qs}
}

// TestKill9Child is the child: it enqueues from two producers, writing
// down every acknowledged id, and runs the workers, until it is killed.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("the child of TestKill9WithJobsInFlight")
	}
	a := openKillApp(t, dir)
	acked, err := os.OpenFile(filepath.Join(dir, "acked"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	for p := range 2 {
		go func() {
			for i := 0; ; i++ {
				id, err := killJob.Enqueue(context.Background(), a.qs, Note{fmt.Sprintf("p%d.%d", p, i)})
				if err != nil { // full (ErrBusy): back off a little
					time.Sleep(5 * time.Millisecond)
					continue
				}
				mu.Lock()
				fmt.Fprintf(acked, "ack %s\n", id)
				mu.Unlock()
			}
		}()
	}
	select {} // until SIGKILL
}

// readLines returns the complete "word id" lines of a file by word; a torn
// last line (cut by the kill) is ignored.
func readLines(t *testing.T, path, word string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), word+" "); ok && id != "" {
			out[id]++
		}
	}
	return out
}

// TestKill9WithJobsInFlight: 20 SIGKILLs of a real process under load,
// with jobs enqueued, running, failing and retrying at every kill. After
// recovery: no acknowledged job is lost; every job ends completed or dead;
// every completed job ran at least once (at-least-once), and its
// idempotent effect is applied exactly once; a dead job's at most once.
func TestKill9WithJobsInFlight(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	if raceEnabled {
		t.Skip("under -race: see race_test.go (the run without -race covers it)")
	}
	dir := t.TempDir()
	const cycles = 20
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(200+rand.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("cycle %d: kill: %v", cycle, err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("cycle %d: the child ended by itself: %v", cycle, err)
		}
	}
	acked := readLines(t, filepath.Join(dir, "acked"), "ack")
	if len(acked) < 100 {
		t.Fatalf("only %d enqueues acknowledged over %d cycles", len(acked), cycles)
	}

	a := openKillApp(t, dir)
	defer func() {
		ctx := context.Background()
		a.qs.Close(ctx)
		a.rt.Close(ctx)
		a.j.Close()
	}()
	ctx := context.Background()
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				st, _ := a.qs.Stats(ctx)
				buf := make([]byte, 1<<22)
				os.WriteFile("/tmp/kill-stacks.txt", buf[:runtime.Stack(buf, true)], 0o644)
				t.Fatalf("timed out waiting for %s: %+v", what, st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the queue to drain", func() bool {
		st, err := a.qs.Stats(ctx)
		return err == nil && st[0].Pending == 0 && st[0].Running == 0
	})
	eff, err := effectDump.Call(ctx, a.rt.Ref("/effects"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	effects := eff.Applied
	runs := readLines(t, filepath.Join(dir, "runs"), "run")
	states := map[jobs.State]int{}
	reruns, inFlight := 0, 0
	for id := range acked {
		info, err := a.qs.Get(ctx, "kill", id)
		if err != nil {
			t.Fatalf("acknowledged job %s lost: %v", id, err)
		}
		states[info.State]++
		for _, e := range info.Errors {
			if strings.HasPrefix(e.Error, "lease expired") { // running when a child was killed
				inFlight++
				break
			}
		}
		switch info.State {
		case jobs.Completed:
			if runs[id] < 1 {
				t.Fatalf("%s completed without a run", id)
			}
			if effects[id] != 1 {
				t.Fatalf("completed job %s: effect applied %d times", id, effects[id])
			}
		case jobs.Dead:
			if effects[id] > 1 {
				t.Fatalf("dead job %s: effect applied %d times", id, effects[id])
			}
		default:
			t.Fatalf("job %s ended %s", id, info.State)
		}
		if runs[id] > 1 {
			reruns++
		}
	}
	dup := 0
	for id := range effects {
		if _, err := a.qs.Get(ctx, "kill", id); err != nil {
			t.Fatalf("an effect for job %s, which does not exist: %v", id, err)
		}
		if eff.Calls[id] > 1 {
			dup++
		}
	}
	if eff.Balance != len(effects) {
		t.Fatalf("balance %d, but %d distinct jobs applied", eff.Balance, len(effects))
	}
	// The kills must have hit jobs in flight, or this tested only idle
	// restarts: a job running at a kill keeps its lease in the journal and
	// is reaped after the restart with a "lease expired" error.
	if inFlight == 0 {
		t.Fatalf("no job was running at any of the %d kills", cycles)
	}
	t.Logf("%d cycles: %d acknowledged jobs %v, %d running at a kill, %d ran more than once, %d effects (%d of them reached more than once, applied once)",
		cycles, len(acked), states, inFlight, reruns, len(effects), dup)
}
