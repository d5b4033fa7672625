package replay_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/replay"
)

// Ledger is a journaled child that folds every entry, with the handler's
// clock and randomness, into its state and reports it to /audit.
type Ledger struct {
	Sum   int
	Trace []int64 // per entry: Ctx.Now ^ Ctx.Rand, which replay must see again
	audit reactor.Ref
}

func (l *Ledger) Post(c *reactor.Ctx, n int) (int, error) {
	l.Sum += n
	l.Trace = append(l.Trace, c.Now().UnixNano()^c.Rand().Int64())
	return l.Sum, auditNote.Send(c, l.audit, n)
}

// Audit is a journaled top-level service fed by the ledgers' sends.
type Audit struct{ Entries, Sum int }

func (a *Audit) Note(_ *reactor.Ctx, n int) (int, error) {
	a.Entries++
	a.Sum += n
	return a.Entries, nil
}

// Flaky depends on a global counter: replaying it twice gives two states.
type Flaky struct{ Last int64 }

var flakyGlobal atomic.Int64

func (f *Flaky) Bump(*reactor.Ctx, struct{}) (int64, error) {
	f.Last = flakyGlobal.Add(1)
	return f.Last, nil
}

var (
	ledgerPost = reactor.Method("replaytest.ledger.post", (*Ledger).Post)
	auditNote  = reactor.Method("replaytest.audit.note", (*Audit).Note)
	flakyBump  = reactor.Method("replaytest.flaky.bump", (*Flaky).Bump)
)

func registerLedgers(rt *reactor.Runtime) error {
	audit, err := reactor.Register(rt, "/audit", &Audit{}, reactor.Journaled())
	if err != nil {
		return err
	}
	_, err = reactor.RegisterChildren(rt, "/ledgers", func(string) *Ledger { return &Ledger{audit: audit} }, reactor.Journaled())
	return err
}

// serve opens a journal and checkpoints in dir, a runtime set up by
// register, runs work on it, and closes everything. With crash set, it
// first copies dir as a crash would leave it (every answered call in the
// journal, no checkpoint written since the start) and returns the copy.
func serve(t *testing.T, dir string, register func(*reactor.Runtime) error, crash bool, work func(*reactor.Runtime)) string {
	t.Helper()
	ctx := context.Background()
	rt, j := testutil.OpenDurable(t, dir, reactor.Config{CheckpointInterval: time.Hour}, register)
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
				if _, err := ledgerPost.Call(ctx, rt.Ref(fmt.Sprintf("/ledgers/%d", i%4)), i); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// A graceful stop (checkpoints), then a crash with a journal tail.
	serve(t, dir, registerLedgers, false, put(0, 20))
	crashed := serve(t, dir, registerLedgers, true, put(20, 50))
	a, b, err := replay.Check(ctx, filepath.Join(crashed, "journal"), filepath.Join(crashed, "checkpoints"), registerLedgers)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("deterministic services replayed to different states: %x vs %x", a, b)
	}
	// The originals are not modified: a second check gives the same digest.
	if c, _, err := replay.Check(ctx, filepath.Join(crashed, "journal"), filepath.Join(crashed, "checkpoints"), registerLedgers); err != nil || c != a {
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
	_, _, err := replay.Check(context.Background(), filepath.Join(dir, "nope"), filepath.Join(dir, "checkpoints"), registerLedgers)
	if err == nil {
		t.Fatal("a missing journal directory was checked")
	}
}
