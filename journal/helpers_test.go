package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
)

// logBuf captures log output safely across goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func open(t testing.TB, opts journal.Options) *journal.Journal {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	j, err := journal.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

func rec(i int) *journal.Record {
	return &journal.Record{
		Time:    int64(1_700_000_000_000_000_000 + i),
		Seed:    uint64(i) * 0x9E3779B97F4A7C15,
		Service: fmt.Sprintf("/rooms/%d", i%7),
		Method:  "room.join",
		Key:     fmt.Sprintf("k%d", i),
		Payload: []byte(fmt.Sprintf("payload-%06d", i)),
	}
}

// checkRec verifies that r is rec(i) with seq.
func checkRec(t testing.TB, r *journal.Record, i int, seq uint64) {
	t.Helper()
	w := rec(i)
	if r.Seq != seq || r.Time != w.Time || r.Seed != w.Seed || r.Service != w.Service ||
		r.Method != w.Method || r.Key != w.Key || !bytes.Equal(r.Payload, w.Payload) {
		t.Fatalf("record seq %d: got %+v, want %+v (seq %d)", r.Seq, r, w, seq)
	}
}

// appendWait appends records rec(from..to-1) and waits for every done;
// it returns the done errors indexed like the records.
func appendWait(t testing.TB, j *journal.Journal, from, to int) []error {
	t.Helper()
	errs := make([]error, to-from)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		wg.Add(1)
		_, err := j.Append(context.Background(), rec(i), func(_ uint64, err error) {
			errs[i-from] = err
			wg.Done()
		})
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	wg.Wait()
	return errs
}

// replayAll returns copies of all records after seq.
func replayAll(t testing.TB, j *journal.Journal, after uint64) []journal.Record {
	t.Helper()
	var out []journal.Record
	err := j.Replay(context.Background(), after, func(r *journal.Record) error {
		c := *r
		c.Payload = append([]byte(nil), r.Payload...)
		out = append(out, c)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return out
}

// segments lists the segment files in dir, sorted.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// copyDir copies the journal in src into a new temp dir, the last segment
// transformed by edit.
func copyDir(t testing.TB, src string, edit func([]byte) []byte) string {
	t.Helper()
	segs := segments(t, src)
	last := filepath.Base(segs[len(segs)-1])
	dst := t.TempDir()
	testutil.CopyDir(t, src, dst, func(name string, b []byte) []byte {
		if name == last && edit != nil {
			return edit(b)
		}
		return b
	})
	return dst
}

// recordSize is the encoded size of rec(i).
func recordSize(i int) int { return len(journal.EncodeRecord(nil, 1, rec(i))) }

// recordOffset is the offset of the k-th record (0-based, rec(0..)) in a
// single-segment journal written with rec(0..n-1).
func recordOffset(k int) int64 {
	off := int64(journal.SegHeaderSize)
	for i := 0; i < k; i++ {
		off += int64(recordSize(i))
	}
	return off
}

var _ = strings.Contains
