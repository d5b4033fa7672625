package replay_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/replay"
)

var quiet = slog.New(slog.DiscardHandler)

// Stream is a journaled child that records what it is given, with the
// handler's clock and randomness, and tells /total.
type Stream struct {
	Seen  []int
	Stamp []int64
	Luck  []int
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

// Total is a journaled top-level service fed by the streams' sends.
type Total struct {
	N    int
	Seen map[string]int
}

func (t *Total) Note(_ *reactor.Ctx, id string) (int, error) {
	if t.Seen == nil {
		t.Seen = map[string]int{}
	}
	t.Seen[id]++
	t.N++
	return t.N, nil
}

// Flaky depends on a global counter: replaying it twice gives two states.
type Flaky struct{ Last int64 }

var flakyGlobal atomic.Int64

func (f *Flaky) Bump(*reactor.Ctx, struct{}) (int64, error) {
	f.Last = flakyGlobal.Add(1)
	return f.Last, nil
}

var (
	streamPut = reactor.Method("replaytest.stream.put", (*Stream).Put)
	totalNote = reactor.Method("replaytest.total.note", (*Total).Note)
	flakyBump = reactor.Method("replaytest.flaky.bump", (*Flaky).Bump)
)

func registerStreams(rt *reactor.Runtime) error {
	total, err := reactor.Register(rt, "/total", &Total{}, reactor.Journaled())
	if err != nil {
		return err
	}
	return reactor.RegisterChildren(rt, "/streams", func(string) *Stream { return &Stream{total: total} }, reactor.Journaled())
}

// serve opens a journal and checkpoints in dir, a runtime set up by
// register, runs work on it, and closes everything. With crash set, it
// first copies dir as a crash would leave it (every answered call in the
// journal, no checkpoint written since the start) and returns the copy.
func serve(t *testing.T, dir string, register func(*reactor.Runtime) error, crash bool, work func(*reactor.Runtime)) string {
	t.Helper()
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: quiet, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := register(rt); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	work(rt)
	out := dir
	if crash {
		// The runtime is idle (every call answered, no checkpoint due):
		// the files do not change while they are copied.
		out = t.TempDir()
		testutil.CopyDir(t, filepath.Join(dir, "journal"), filepath.Join(out, "journal"), nil)
		testutil.CopyDir(t, filepath.Join(dir, "checkpoints"), filepath.Join(out, "checkpoints"), nil)
	}
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	put := func(from, to int) func(*reactor.Runtime) {
		return func(rt *reactor.Runtime) {
			for i := from; i < to; i++ {
				if _, err := streamPut.Call(ctx, rt.Ref("/streams/s"+string(rune('a'+i%4))), i); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// A graceful stop (checkpoints), then a crash with a journal tail.
	serve(t, dir, registerStreams, false, put(0, 20))
	crashed := serve(t, dir, registerStreams, true, put(20, 50))
	a, b, err := replay.Check(ctx, filepath.Join(crashed, "journal"), filepath.Join(crashed, "checkpoints"), registerStreams)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("deterministic services replayed to different states: %x vs %x", a, b)
	}
	// The originals are not modified: a second check gives the same digest.
	if c, _, err := replay.Check(ctx, filepath.Join(crashed, "journal"), filepath.Join(crashed, "checkpoints"), registerStreams); err != nil || c != a {
		t.Fatalf("second check: %x, %v; first %x", c, err, a)
	}
}

func TestCheckCatchesNondeterminism(t *testing.T) {
	ctx := context.Background()
	register := func(rt *reactor.Runtime) error {
		_, err := reactor.Register(rt, "/flaky", &Flaky{}, reactor.Journaled())
		return err
	}
	crashed := serve(t, t.TempDir(), register, true, func(rt *reactor.Runtime) {
		for range 5 {
			if _, err := flakyBump.Call(ctx, rt.Ref("/flaky"), struct{}{}); err != nil {
				t.Fatal(err)
			}
		}
	})
	a, b, err := replay.Check(ctx, filepath.Join(crashed, "journal"), filepath.Join(crashed, "checkpoints"), register)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("a handler reading a global counter replayed to the same state twice: the check found nothing")
	}
}

func TestCheckMissingJournal(t *testing.T) {
	dir := t.TempDir()
	_, _, err := replay.Check(context.Background(), filepath.Join(dir, "nope"), filepath.Join(dir, "checkpoints"), registerStreams)
	if err == nil {
		t.Fatal("a missing journal directory was checked")
	}
}
