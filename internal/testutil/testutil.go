// Package testutil holds the helpers the module's tests share, so that each
// exists once instead of as a copy per test file: polling for a condition,
// copying a data directory, writing a journal, opening a durable runtime,
// a clock moved by hand.
package testutil

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/reactortest"
)

// WaitTimeout is how long WaitFor waits before failing the test.
const WaitTimeout = 10 * time.Second

// WaitFor polls cond every millisecond until it holds, and fails t when it
// still does not after WaitTimeout.
func WaitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", WaitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// CopyDir copies the regular files of src (one level) into dst, creating
// it. edit, when not nil, is given each file's base name and content and
// returns what to write instead (it may modify data in place). It fails t
// on any error, including a missing src.
func CopyDir(t testing.TB, src, dst string, edit func(name string, data []byte) []byte) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatalf("copy dir: %v", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatalf("copy dir: %v", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatalf("copy dir: %v", err)
		}
		if edit != nil {
			b = edit(e.Name(), b)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatalf("copy dir: %v", err)
		}
	}
}

// WriteJournal opens the journal opts describes (Logger defaults to a
// discarding one), appends recs in order, waits until every one is
// durable, and closes it. It fails t on any error.
func WriteJournal(t testing.TB, opts journal.Options, recs ...*journal.Record) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, opts)
	if err != nil {
		t.Fatalf("write journal: open: %v", err)
	}
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i, r := range recs {
		wg.Add(1)
		if _, err := j.Append(ctx, r, func(_ uint64, err error) { errs[i] = err; wg.Done() }); err != nil {
			t.Fatalf("write journal: append %d: %v", i, err)
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write journal: record %d: %v", i, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatalf("write journal: close: %v", err)
	}
}

// OpenDurable opens a journal in dir/journal and a file checkpoint store in
// dir/checkpoints, a runtime on them configured by cfg (its Journal and
// Store are set; Logger defaults to a discarding one), calls register and
// starts the runtime. It fails t on any error. Closing is left to the
// caller, who may instead drop the journal as a crash would.
func OpenDurable(t testing.TB, dir string, cfg reactor.Config, register func(*reactor.Runtime) error) (*reactor.Runtime, *journal.Journal) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckShared == nil {
		cfg.CheckShared = reactortest.NoAliasing(t)
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal"), Logger: cfg.Logger})
	if err != nil {
		t.Fatalf("open durable: %v", err)
	}
	store, err := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
	if err != nil {
		j.Close()
		t.Fatalf("open durable: %v", err)
	}
	cfg.Journal, cfg.Store = j, store
	rt, err := reactor.New(cfg)
	if err != nil {
		j.Close()
		t.Fatalf("open durable: %v", err)
	}
	if err := register(rt); err != nil {
		j.Close()
		t.Fatalf("open durable: register: %v", err)
	}
	if err := rt.Start(ctx); err != nil {
		j.Close()
		t.Fatalf("open durable: start: %v", err)
	}
	return rt, j
}

// Clock is a clock the test moves by hand, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at 2026-01-02 03:04:05 UTC.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
