package journal_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// Damage to the final record of the journal is not a torn write when the
// record was written completely (issue 8, item 10): recovery must refuse to
// start, naming segment, offset, seq and the case, and Inspect (journal
// verify) must report it, instead of truncating an acknowledged record.

// corruptAt opens dir, expects a *CorruptError at seg/off and returns it;
// Inspect must report the same damage.
func corruptAt(t *testing.T, dir, seg string, off int64) *journal.CorruptError {
	t.Helper()
	wantCorrupt(t, dir, seg, off)
	_, err := journal.Open(context.Background(), journal.Options{Dir: dir, Logger: quietLogger()})
	var ce *journal.CorruptError
	errors.As(err, &ce)
	return ce
}

// segSalt reads the salt from a segment's header.
func segSalt(b []byte) uint64 { return binary.LittleEndian.Uint64(b[8:]) }

func TestBitFlipInLastRecord(t *testing.T) {
	const n = 5
	src := t.TempDir()
	writeJournal(t, src, n)
	seg := filepath.Base(segments(t, src)[0])
	start, end := recordOffset(n-1), recordOffset(n)
	for p := start; p < end; p++ {
		for _, bit := range []byte{0x01, 0x80} {
			dir := copyDir(t, src, func(b []byte) []byte { b[p] ^= bit; return b })
			if p >= end-journal.RecTrailerSize {
				// Only the trailer: the checksum proves the record, which is
				// kept (its trailer rewritten), not dropped.
				reopenAndCheck(t, dir, n, true)
				continue
			}
			ce := corruptAt(t, dir, seg, start)
			if ce.Seq != n || !strings.Contains(ce.Reason, "complete") || !strings.Contains(ce.Error(), fmt.Sprintf("seq %d", n)) {
				t.Fatalf("flip at +%d: %v (seq %d): want the seq and the case named", p-start, ce, ce.Seq)
			}
		}
	}
}

// A damaged complete record followed by the torn remains of a later,
// unacknowledged batch is still damage to a complete record.
func TestBitFlipInLastRecordThenTornWrite(t *testing.T) {
	const n = 5
	src := t.TempDir()
	writeJournal(t, src, n)
	seg := filepath.Base(segments(t, src)[0])
	start, end := recordOffset(n-1), recordOffset(n)
	for _, p := range []int64{start + 1, start + 20, end - 9, end - 3, end - 1} {
		for cut := 1; cut < recordSize(n); cut += 7 {
			dir := copyDir(t, src, func(b []byte) []byte {
				next := journal.EncodeRecordSeq(nil, segSalt(b), rec(n), n+1)
				b[p] ^= 0x04
				return append(b, next[:cut]...)
			})
			if p >= end-journal.RecTrailerSize {
				reopenAndCheck(t, dir, n, true) // kept, trailer rewritten, torn write cut
				continue
			}
			if ce := corruptAt(t, dir, seg, start); ce.Seq != n {
				t.Fatalf("seq %d", ce.Seq)
			}
		}
	}
}

func TestBitFlipInLastRecordOfLaterSegment(t *testing.T) {
	src, segs := multiSegment(t, 120, 2)
	last := segs[len(segs)-1]
	var first uint64
	fmt.Sscanf(filepath.Base(last), "%d", &first)
	b, _ := os.ReadFile(last)
	// The last record of the last segment.
	off := int64(journal.SegHeaderSize)
	for i := int(first - 1); i < 119; i++ {
		off += int64(recordSize(i))
	}
	if off+int64(recordSize(119)) != int64(len(b)) {
		t.Fatalf("layout: last record at %d, file %d", off, len(b))
	}
	dir := copyDir(t, src, func(b []byte) []byte { b[len(b)-12] ^= 0x40; return b })
	if ce := corruptAt(t, dir, filepath.Base(last), off); ce.Seq != 120 {
		t.Fatalf("seq %d", ce.Seq)
	}
}

// Torn writes keep being truncated: a prefix of the next batch (cut at any
// byte, also exactly at a frame boundary), a file size that reached the disk
// while the data did not (zeros from any byte of the frame to the end), and
// garbage after the last complete frame.
func TestTornWritesAfterLastRecord(t *testing.T) {
	const n = 5
	src := t.TempDir()
	writeJournal(t, src, n)
	b0, _ := os.ReadFile(segments(t, src)[0])
	salt := segSalt(b0)
	r5 := journal.EncodeRecordSeq(nil, salt, rec(n), n+1)
	r6 := journal.EncodeRecordSeq(nil, salt, rec(n+1), n+2)
	batch := append(append([]byte(nil), r5...), r6...)

	t.Run("prefix", func(t *testing.T) {
		for cut := 1; cut < len(batch); cut++ {
			want := n
			if cut >= len(r5) {
				want = n + 1 // r5 was written completely: unacknowledged, but intact
			}
			dir := copyDir(t, src, func(b []byte) []byte { return append(b, batch[:cut]...) })
			reopenAndCheck(t, dir, want, cut != len(r5))
		}
	})
	// Zeros from a byte inside the trailer on leave the record's content
	// intact: it is kept (unacknowledged records may survive).
	t.Run("zero-filled", func(t *testing.T) {
		for from := 0; from < len(r5); from++ {
			dir := copyDir(t, src, func(b []byte) []byte {
				z := append([]byte(nil), r5...)
				clear(z[from:])
				return append(b, append(z, make([]byte, 100)...)...)
			})
			want := n
			if from >= len(r5)-journal.RecTrailerSize {
				want = n + 1
			}
			reopenAndCheck(t, dir, want, true)
		}
	})
	t.Run("zero-filled-second-record", func(t *testing.T) {
		for from := len(r5); from < len(batch); from += 3 {
			dir := copyDir(t, src, func(b []byte) []byte {
				z := append([]byte(nil), batch...)
				clear(z[from:])
				return append(b, append(z, make([]byte, 10)...)...)
			})
			want := n + 1
			if from >= len(batch)-journal.RecTrailerSize {
				want = n + 2
			}
			reopenAndCheck(t, dir, want, true)
		}
	})
	t.Run("frame-boundary-then-garbage", func(t *testing.T) {
		for seed := uint64(0); seed < 40; seed++ {
			rng := rand.New(rand.NewPCG(seed, 2))
			g := make([]byte, 1+rng.IntN(600))
			for i := range g {
				g[i] = byte(rng.UintN(256))
			}
			if len(g) >= 16 {
				// A header-shaped start: plausible length and the next seq.
				binary.LittleEndian.PutUint32(g[4:], uint32(journal.RecHeaderSize+rng.IntN(len(g))))
				binary.LittleEndian.PutUint64(g[8:], n+2)
			}
			dir := copyDir(t, src, func(b []byte) []byte { return append(append(b, r5...), g...) })
			reopenAndCheck(t, dir, n+1, true)
		}
	})
}

// A record from another journal (another salt) with a broken checksum at the
// tail is garbage, not a complete record of this journal.
func TestForeignDamagedRecordAtTail(t *testing.T) {
	const n = 5
	a, b := t.TempDir(), t.TempDir()
	writeJournal(t, a, n)
	writeJournal(t, b, n+1)
	bb, _ := os.ReadFile(segments(t, b)[0])
	foreign := append([]byte(nil), bb[recordOffset(n):recordOffset(n+1)]...)
	foreign[journal.RecHeaderSize] ^= 1
	dir := copyDir(t, a, func(x []byte) []byte { return append(x, foreign...) })
	reopenAndCheck(t, dir, n, true)
}

// Power cuts during the fsync of a batch, in a loop: every acknowledged
// record is recovered, recovery never refuses, and the journal goes on.
// Odd seeds keep a random prefix of the unsynced bytes (CrashTorn), even
// seeds also keep the file size with zeros for data that did not reach the
// disk (CrashZeroed).
func TestPowerCutDuringFsyncLoop(t *testing.T) {
	for seed := uint64(1); seed <= 150; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		fsys := faultfs.New()
		opts := journal.Options{Dir: "/j", FS: fsys, SegmentSize: 4096}
		j := open(t, opts)
		acked := 0
		for range rng.IntN(12) {
			k := 1 + rng.IntN(6)
			for i, err := range appendWait(t, j, acked, acked+k) {
				if err != nil {
					t.Fatalf("seed %d: record %d: %v", seed, acked+i, err)
				}
			}
			acked += k
		}
		last := acked + 1 + rng.IntN(8)
		crashRng := rand.New(rand.NewPCG(seed, 4)) // used only by the writer goroutine
		var once sync.Once
		fsys.SetHook(func(op faultfs.Op, name string) error {
			crashed := false
			if op == faultfs.OpSync && strings.HasSuffix(name, ".wal") {
				once.Do(func() {
					if seed%2 == 1 {
						fsys.CrashTorn(crashRng)
					} else {
						fsys.CrashZeroed(crashRng)
					}
					crashed = true
				})
			}
			if crashed {
				return syscall.EIO
			}
			return nil
		})
		// Append fails too once the journal fail-stopped; every done must fail.
		var wg sync.WaitGroup
		var ackedAfter atomic.Int64
		for i := acked; i < last; i++ {
			wg.Add(1)
			if _, err := j.Append(context.Background(), rec(i), func(_ uint64, err error) {
				if err == nil {
					ackedAfter.Add(1)
				}
				wg.Done()
			}); err != nil {
				if !errors.Is(err, journal.ErrFailed) {
					t.Fatalf("seed %d: Append: %v", seed, err)
				}
				wg.Done()
				break
			}
		}
		wg.Wait()
		if n := ackedAfter.Load(); n != 0 {
			t.Fatalf("seed %d: %d records of the crashed batch were acknowledged", seed, n)
		}
		j.Close()
		fsys.ClearFaults()

		j, err := journal.Open(context.Background(), journal.Options{Dir: "/j", FS: fsys, SegmentSize: 4096, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("seed %d: recovery refused after a power cut: %v", seed, err)
		}
		got := replayAll(t, j, 0)
		if len(got) < acked {
			t.Fatalf("seed %d: %d records recovered, %d acknowledged", seed, len(got), acked)
		}
		for k := range got {
			checkRec(t, &got[k], k, uint64(k+1))
		}
		if errs := appendWait(t, j, len(got), len(got)+2); errs[0] != nil || errs[1] != nil {
			t.Fatalf("seed %d: append after recovery: %v", seed, errs)
		}
		j.Close()
	}
}

// Segments of format version 1 (no record trailer) stay readable; new
// records go into a new version-2 segment.
func TestReadsVersion1Segments(t *testing.T) {
	const n = 7
	dir := t.TempDir()
	var b []byte
	b = journal.EncodeSegHeaderV1(b, 0xabcdef, 1)
	for i := 0; i < n; i++ {
		b = journal.EncodeRecordV1(b, 0xabcdef, rec(i), uint64(i+1))
	}
	name := filepath.Join(dir, "00000000000000000001.wal")
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := journal.Inspect(context.Background(), nil, dir, nil)
	if err != nil || rep.Records != n || rep.TornTail != nil {
		t.Fatalf("Inspect: %+v %v", rep, err)
	}
	reopenAndCheck(t, dir, n, false)
	if segs := segments(t, dir); len(segs) != 2 {
		t.Fatalf("segments %v: want the v1 segment and a new one", segs)
	}
	if c, _ := os.ReadFile(name); len(c) != len(b) {
		t.Fatalf("the v1 segment was modified: %d bytes, was %d", len(c), len(b))
	}

	// A torn v1 tail is still truncated (v1 cannot tell a damaged complete
	// record from a torn one; the v1 rule applies).
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "00000000000000000001.wal"), append(append([]byte(nil), b...), b[len(b)-30:]...), 0o644)
	reopenAndCheck(t, dir2, n, true)
}
