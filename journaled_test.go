package reactor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// Stream is a journaled child (/streams/{producer}) that records every
// sequence number it is given, and forwards a count to /total.
type Stream struct {
	Seen  []int
	Stamp []int64 // Ctx.Now of each message: replay must see the same
	Luck  []int   // Ctx.Rand of each message: replay must draw the same
	total reactor.Ref
}

func (s *Stream) Put(c *reactor.Ctx, n int) (int, error) {
	s.Seen = append(s.Seen, n)
	s.Stamp = append(s.Stamp, c.Now().UnixNano())
	s.Luck = append(s.Luck, c.Rand().IntN(1_000_000))
	if err := totalNote.Send(c, s.total, fmt.Sprintf("%s.%d", c.Key(), n)); err != nil {
		return 0, err
	}
	return len(s.Seen), nil
}

func (s *Stream) Dump(*reactor.Ctx, struct{}) (Stream, error) { return *s, nil }

// Total is a journaled top-level service fed by the streams' sends.
type Total struct {
	N    int
	Seen map[string]int
}

func (t *Total) Add(_ *reactor.Ctx, n int) (int, error) { t.N += n; return t.N, nil }

func (t *Total) Note(_ *reactor.Ctx, id string) (int, error) {
	if t.Seen == nil {
		t.Seen = map[string]int{}
	}
	t.Seen[id]++
	t.N++
	return t.N, nil
}

func (t *Total) Missing(_ *reactor.Ctx, want map[string]int) ([]string, error) {
	var out []string
	for id := range want {
		if t.Seen[id] != 1 {
			out = append(out, fmt.Sprintf("%s×%d", id, t.Seen[id]))
		}
	}
	return out, nil
}

func (t *Total) Get(*reactor.Ctx, struct{}) (int, error) { return t.N, nil }

var (
	streamPut  = reactor.Method("test.stream.put", (*Stream).Put)
	streamDump = reactor.Method("test.stream.dump", (*Stream).Dump, reactor.ReadOnly())
	totalAdd   = reactor.Method("test.total.add", (*Total).Add)
	totalGet   = reactor.Method("test.total.get", (*Total).Get, reactor.ReadOnly())
	totalNote  = reactor.Method("test.total.note", (*Total).Note)
	totalMiss  = reactor.Method("test.total.missing", (*Total).Missing, reactor.ReadOnly())
)

// durableApp opens a journal and a checkpoint store in dir (on fsys) and a
// runtime with the Stream children and the Total service, all journaled.
type durableApp struct {
	rt *reactor.Runtime
	j  *journal.Journal
}

func openDurable(t testing.TB, fsys journal.FS, dir string, cfg reactor.Config) (*durableApp, error) {
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal"), FS: fsys, SegmentSize: 64 << 10, Logger: discardLogger})
	if err != nil {
		return nil, err
	}
	store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints"), FS: fsys})
	if err != nil {
		j.Close()
		return nil, err
	}
	cfg.Journal, cfg.Store = j, store
	rt, err := reactor.New(cfg)
	if err != nil {
		return nil, err
	}
	total, err := reactor.Register(rt, "/total", &Total{}, reactor.Journaled())
	if err != nil {
		return nil, err
	}
	_, err = reactor.RegisterChildren(rt, "/streams", func(string) *Stream { return &Stream{total: total} },
		reactor.Journaled(), reactor.MaxChildren(3))
	if err != nil {
		return nil, err
	}
	if err := rt.Start(ctx); err != nil {
		j.Close()
		return nil, err
	}
	return &durableApp{rt: rt, j: j}, nil
}

func (a *durableApp) close(t testing.TB) {
	if err := a.rt.Close(context.Background()); err != nil {
		t.Errorf("close runtime: %v", err)
	}
	if err := a.j.Close(); err != nil {
		t.Errorf("close journal: %v", err)
	}
}

const crashChildEnv = "REACTOR_CRASH_CHILD"

// TestMain lets the test binary act as the crash test's child process.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

const producers = 6

// crashChild runs producers that each send increasing numbers to their own
// stream, printing "ack P N" once a call returned (= durable). With
// mode=dump it prints the final state instead.
func crashChild(dir string) {
	app, err := openDurable(nil, nil, dir, reactor.Config{CheckpointInterval: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	if os.Getenv("REACTOR_CRASH_MODE") == "dump" {
		state := map[string]any{}
		for p := range producers {
			s, err := streamDump.Call(ctx, app.rt.Ref("/streams/"+strconv.Itoa(p)), struct{}{})
			if err != nil {
				fmt.Println("dump:", err)
				os.Exit(3)
			}
			state[strconv.Itoa(p)] = s.Seen
		}
		n, err := totalGet.Call(ctx, app.rt.Ref("/total"), struct{}{})
		if err != nil {
			fmt.Println("dump total:", err)
			os.Exit(3)
		}
		state["total"] = n
		want := map[string]int{}
		for p := range producers {
			s, _ := streamDump.Call(ctx, app.rt.Ref("/streams/"+strconv.Itoa(p)), struct{}{})
			for _, v := range s.Seen {
				want[fmt.Sprintf("%d.%d", p, v)] = 1
			}
		}
		miss, _ := totalMiss.Call(ctx, app.rt.Ref("/total"), want)
		state["missing"] = miss
		json.NewEncoder(os.Stdout).Encode(state)
		app.rt.Close(ctx)
		app.j.Close()
		return
	}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := app.rt.Ref("/streams/" + strconv.Itoa(p))
			s, err := streamDump.Call(ctx, ref, struct{}{})
			if err != nil {
				fmt.Println("resume:", err)
				os.Exit(3)
			}
			next := len(s.Seen) + 1
			for ; ; next++ {
				if _, err := streamPut.Call(ctx, ref, next); err != nil {
					fmt.Println("put:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d\n", p, next)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func quietLogger() *slogLogger { return discardLogger }

// TestKill9UnderLoad kills a child process at random moments while six
// producers make durable calls, 50 times, then checks that every
// acknowledged message is present exactly once and in order, and that the
// messages the streams sent to /total arrived exactly once.
func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("crash cycles take ~20s")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	acked := make([]int, producers)
	const cycles = 50
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The kill comes at a random moment once the load is running (the
		// first acknowledgement), however long recovery took on this machine.
		var kill <-chan time.Time
		started := time.After(30 * time.Second)
		killed := false
		for !killed {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("cycle %d: child exited early: %v", cycle, cmd.Wait())
				}
				var p, n int
				if _, err := fmt.Sscanf(line, "ack %d %d", &p, &n); err != nil {
					t.Fatalf("cycle %d: child said %q", cycle, line)
				}
				acked[p] = max(acked[p], n)
				if kill == nil {
					kill = time.After(time.Duration(rng.IntN(150)) * time.Millisecond)
				}
			case <-started:
				if kill == nil {
					cmd.Process.Signal(syscall.SIGKILL)
					t.Fatalf("cycle %d: no acknowledgement within 30s of starting", cycle)
				}
			case <-kill:
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		for line := range lines { // acks printed before the kill still count
			var p, n int
			if _, err := fmt.Sscanf(line, "ack %d %d", &p, &n); err == nil {
				acked[p] = max(acked[p], n)
			}
		}
		cmd.Wait()
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "REACTOR_CRASH_MODE=dump")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dump: %v\n%s", err, out)
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(out, &state); err != nil {
		t.Fatalf("dump %q: %v", out, err)
	}
	sum := 0
	for p := range producers {
		var seen []int
		json.Unmarshal(state[strconv.Itoa(p)], &seen)
		for i, n := range seen {
			if n != i+1 {
				t.Fatalf("producer %d: position %d holds %d: a message was lost, duplicated or reordered", p, i, n)
			}
		}
		if len(seen) < acked[p] {
			t.Fatalf("producer %d: %d acknowledged but only %d present after recovery", p, acked[p], len(seen))
		}
		sum += len(seen)
		t.Logf("producer %d: %d acknowledged, %d present", p, acked[p], len(seen))
	}
	var total int
	json.Unmarshal(state["total"], &total)
	if total != sum {
		t.Logf("missing: %s", state["missing"])
		t.Fatalf("/total counted %d sends from %d handled messages: internal sends were lost or doubled", total, sum)
	}
	if sum < cycles {
		t.Fatalf("only %d messages in %d cycles: the load did not run", sum, cycles)
	}
}

// TestNoAckBeforeFsync blocks the journal's fsync and checks that neither
// the caller's acknowledgement nor the handler's effect leaks; a failing
// fsync fails the call and the state never sees the message.
func TestNoAckBeforeFsync(t *testing.T) {
	fsys := faultfs.New()
	app, err := openDurable(t, fsys, "/d", reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The journal fail-stopped: Close may report checkpoints it could
		// not take (when their outbound messages were in the failed batch).
		if err := app.rt.Close(context.Background()); err != nil {
			t.Logf("close after fail-stop: %v", err)
		}
		app.j.Close()
	}()
	ctx := context.Background()
	ref := app.rt.Ref("/streams/0")
	if _, err := streamPut.Call(ctx, ref, 1); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	fsys.SetHook(func(op faultfs.Op, name string) error {
		if op == faultfs.OpSync && strings.Contains(name, "journal") {
			<-release
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { _, err := streamPut.Call(ctx, ref, 2); done <- err }()
	sent := make(chan error, 1)
	go func() { sent <- streamPut.Send(ctx, ref, 3) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("call acknowledged before its fsync: %v", err)
	case err := <-sent:
		t.Fatalf("send acknowledged before its fsync: %v", err)
	default:
	}
	if s, _ := streamDump.Call(ctx, ref, struct{}{}); len(s.Seen) != 1 {
		t.Fatalf("handler saw a message before it was durable: %v", s.Seen)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	fsys.SetHook(nil)

	// A failing fsync: the call fails, nothing is applied, the journal fail-stops.
	fsys.FailNth(faultfs.OpSync, 1, syscall.EIO)
	if _, err := streamPut.Call(ctx, ref, 4); !errors.Is(err, journal.ErrFailed) && !errors.Is(err, syscall.EIO) {
		t.Fatalf("call over a failed fsync: %v", err)
	}
	s, _ := streamDump.Call(ctx, ref, struct{}{})
	if len(s.Seen) != 3 {
		t.Fatalf("state after failed fsync: %v", s.Seen)
	}
	if _, err := streamPut.Call(ctx, ref, 4); !errors.Is(err, journal.ErrFailed) {
		t.Fatalf("after fail-stop: %v", err)
	}
}

// TestPowerLossRecoversExactState crashes a simulated disk (dropping all
// unsynced data) and checks recovery reproduces the acknowledged state
// exactly — including the recorded times and random draws — twice.
func TestPowerLossRecoversExactState(t *testing.T) {
	fsys := faultfs.New()
	app, err := openDurable(t, fsys, "/d", reactor.Config{Logger: discardLogger, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 40 {
		if _, err := streamPut.Call(ctx, app.rt.Ref("/streams/"+strconv.Itoa(i%5)), i/5+1); err != nil {
			t.Fatal(err)
		}
	}
	before := dumpAll(t, app.rt, 5)
	fsys.Crash() // power loss: the old process's state is gone
	for round := range 2 {
		app2, err := openDurable(t, fsys, "/d", reactor.Config{Logger: discardLogger})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		after := dumpAll(t, app2.rt, 5)
		if before != after {
			t.Fatalf("round %d: state after replay differs:\nbefore %s\nafter  %s", round, before, after)
		}
		if round == 0 {
			fsys.Crash()
		} else {
			app2.close(t)
		}
	}
}

func dumpAll(t *testing.T, rt *reactor.Runtime, n int) string {
	var b strings.Builder
	for i := range n {
		s, err := streamDump.Call(context.Background(), rt.Ref("/streams/"+strconv.Itoa(i)), struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		s.total = reactor.Ref{}
		js, _ := json.Marshal(s)
		b.Write(js)
	}
	total, _ := totalGet.Call(context.Background(), rt.Ref("/total"), struct{}{})
	fmt.Fprintf(&b, "total=%d", total)
	return b.String()
}

func TestIdempotencyKeySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	app, err := openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := reactor.WithIdempotencyKey(context.Background(), "req-1")
	ref := app.rt.Ref("/streams/9")
	first, err := streamPut.Call(ctx, ref, 1)
	if err != nil || first != 1 {
		t.Fatalf("first: %d %v", first, err)
	}
	if again, err := streamPut.Call(ctx, ref, 1); err != nil || again != 1 {
		t.Fatalf("retry: %d %v", again, err)
	}
	app.close(t)
	app, err = openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer app.close(t)
	ref = app.rt.Ref("/streams/9")
	if again, err := streamPut.Call(ctx, ref, 1); err != nil || again != 1 {
		t.Fatalf("retry after restart: %d %v", again, err)
	}
	s, _ := streamDump.Call(context.Background(), ref, struct{}{})
	if len(s.Seen) != 1 {
		t.Fatalf("applied %d times", len(s.Seen))
	}
	if n, _ := streamPut.Call(reactor.WithIdempotencyKey(context.Background(), "req-2"), ref, 2); n != 2 {
		t.Fatalf("a new key: %d", n)
	}
}

func TestCorruptCheckpointRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	app, err := openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := totalAdd.Call(context.Background(), app.rt.Ref("/total"), 5); err != nil {
		t.Fatal(err)
	}
	app.close(t)
	files, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "*total*"))
	if len(files) != 1 {
		t.Fatalf("checkpoint files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 0x40
	os.WriteFile(files[0], b, 0o644)
	_, err = openDurable(t, nil, dir, reactor.Config{Logger: discardLogger})
	if !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("start over a corrupt checkpoint: %v", err)
	}
}

var _ io.Writer = (*strings.Builder)(nil)

// procFS is one process's view of a shared faultfs (faultfs.Process).
type procFS struct{ *faultfs.Process }

func newProcFS(fsys journal.FS) procFS { return procFS{faultfs.NewProcess(fsys)} }

func (p procFS) kill() { p.Kill() }

// TestDiskFullFailsTheBatchOnly: ENOSPC on the journal write fails the calls
// of that batch, applies nothing of them, keeps what was acknowledged before,
// and the service works again once space returns.
func TestDiskFullFailsTheBatchOnly(t *testing.T) {
	fsys := faultfs.New()
	app, err := openDurable(t, fsys, "/d", reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := app.rt.Ref("/streams/x")
	for i := 1; i <= 3; i++ {
		if _, err := streamPut.Call(ctx, ref, i); err != nil {
			t.Fatal(err)
		}
	}
	// Let the sends to /total land first, so the next journal write is the call's.
	testutil.WaitFor(t, func() bool { n, _ := totalGet.Call(ctx, app.rt.Ref("/total"), struct{}{}); return n == 3 })
	fsys.FailNth(faultfs.OpWrite, 1, syscall.ENOSPC)
	if _, err := streamPut.Call(ctx, ref, 4); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("call over a full disk: %v", err)
	}
	if n, err := streamPut.Call(ctx, ref, 4); err != nil || n != 4 {
		t.Fatalf("after space returned: %d %v", n, err)
	}
	s, _ := streamDump.Call(ctx, ref, struct{}{})
	if fmt.Sprint(s.Seen) != "[1 2 3 4]" {
		t.Fatalf("state %v", s.Seen)
	}
	app.close(t)
	app, err = openDurable(t, fsys, "/d", reactor.Config{Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer app.close(t)
	s, _ = streamDump.Call(ctx, app.rt.Ref("/streams/x"), struct{}{})
	if fmt.Sprint(s.Seen) != "[1 2 3 4]" {
		t.Fatalf("after restart %v", s.Seen)
	}
}
