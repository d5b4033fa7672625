package journal_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

const lockHelperEnv = "JOURNAL_TEST_LOCK_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		// Child process of TestLockOtherProcess.
		_, err := journal.Open(context.Background(), journal.Options{Dir: dir, Logger: quietLogger()})
		switch {
		case errors.Is(err, journal.ErrLocked):
			os.Exit(3)
		case err != nil:
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRoundTripConcurrent(t *testing.T) {
	dir := t.TempDir()
	j := open(t, journal.Options{Dir: dir, SegmentSize: 64 << 10})
	const producers, per = 8, 400
	var (
		mu      sync.Mutex
		doneSeq []uint64
		byIdx   = make(map[int]uint64) // record index -> seq
		wg      sync.WaitGroup
		calls   atomic.Int64
	)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < per; k++ {
				i := p*per + k
				var once atomic.Bool
				seq, err := j.Append(context.Background(), rec(i), func(seq uint64, err error) {
					if once.Swap(true) {
						t.Errorf("done called twice for seq %d", seq)
					}
					if err != nil {
						t.Errorf("done seq %d: %v", seq, err)
					}
					doneSeq = append(doneSeq, seq) // writer goroutine only
					calls.Add(1)
				})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				byIdx[i] = seq
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	testutil.WaitFor(t, func() bool { return calls.Load() == producers*per })
	for k, s := range doneSeq {
		if s != uint64(k+1) {
			t.Fatalf("done #%d has seq %d: not in seq order", k, s)
		}
	}
	check := func(j *journal.Journal, after uint64) {
		got := replayAll(t, j, after)
		if len(got) != producers*per-int(after) {
			t.Fatalf("replay after %d: %d records", after, len(got))
		}
		bySeq := map[uint64]int{}
		for i, s := range byIdx {
			bySeq[s] = i
		}
		for k := range got {
			checkRec(t, &got[k], bySeq[got[k].Seq], after+uint64(k)+1)
		}
	}
	check(j, 0)
	if st := j.Stats(); st.Acked != producers*per || st.Segments < 2 || st.Fsyncs == 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := j.Append(context.Background(), rec(0), nil); !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	j = open(t, journal.Options{Dir: dir, SegmentSize: 64 << 10})
	defer j.Close()
	if got := j.LastSeq(); got != producers*per {
		t.Fatalf("LastSeq after reopen = %d", got)
	}
	check(j, 0)
	check(j, 1234)
	seq, err := j.Append(context.Background(), rec(0), nil)
	if err != nil || seq != producers*per+1 {
		t.Fatalf("Append after reopen: seq %d err %v", seq, err)
	}
}

// blockSyncs returns a hook that blocks every segment fsync until release is closed.
func blockSyncs(started chan<- struct{}, release <-chan struct{}) func(faultfs.Op, string) error {
	var once sync.Once
	return func(op faultfs.Op, name string) error {
		if op == faultfs.OpSync && strings.HasSuffix(name, ".wal") {
			once.Do(func() { close(started) })
			<-release
		}
		return nil
	}
}

func TestNoAckBeforeFsync(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys})
	defer j.Close()
	started, release := make(chan struct{}), make(chan struct{})
	fsys.SetHook(blockSyncs(started, release))
	var fired atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		if _, err := j.Append(context.Background(), rec(i), func(_ uint64, err error) {
			if err != nil {
				t.Errorf("done: %v", err)
			}
			fired.Add(1)
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	time.Sleep(50 * time.Millisecond)
	if n := fired.Load(); n != 0 {
		t.Fatalf("%d done callbacks fired while the fsync was blocked", n)
	}
	close(release)
	wg.Wait()
}

func TestInterval(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys, Durability: journal.Interval(20 * time.Millisecond)})
	defer j.Close()
	syncs := fsys.Count(faultfs.OpSync)
	appendWait(t, j, 0, 10) // acknowledged without waiting for fsync
	testutil.WaitFor(t, func() bool { return fsys.Count(faultfs.OpSync) > syncs })
}

func TestNoneAcksWithoutFsync(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys, Durability: journal.None()})
	syncs := fsys.Count(faultfs.OpSync)
	for _, err := range appendWait(t, j, 0, 100) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := fsys.Count(faultfs.OpSync); n != syncs {
		t.Fatalf("None mode fsynced %d times", n-syncs)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if fsys.Count(faultfs.OpSync) == syncs {
		t.Fatal("Close did not fsync")
	}
	fsys.Crash() // Close fsynced: nothing lost
	j = open(t, journal.Options{Dir: "/j", FS: fsys})
	defer j.Close()
	if got := replayAll(t, j, 0); len(got) != 100 {
		t.Fatalf("%d records after crash", len(got))
	}
}

func TestFsyncEIOFailStop(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys})
	defer j.Close()
	appendWait(t, j, 0, 5)
	// The next fsync blocks until all of 5..19 are queued, then fails with
	// EIO (deterministic: no Append can see the fail-stop early).
	var once sync.Once
	release := make(chan struct{})
	fsys.SetHook(func(op faultfs.Op, name string) error {
		fail := false
		if op == faultfs.OpSync && strings.HasSuffix(name, ".wal") {
			once.Do(func() { <-release; fail = true })
		}
		if fail {
			return syscall.EIO
		}
		return nil
	})
	errs := make([]error, 15)
	var wg sync.WaitGroup
	for i := 5; i < 20; i++ {
		wg.Add(1)
		if _, err := j.Append(context.Background(), rec(i), func(_ uint64, err error) {
			errs[i-5] = err
			wg.Done()
		}); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		// The first batch hit EIO; anything queued behind it failed too.
		if !errors.Is(err, journal.ErrFailed) {
			t.Fatalf("record %d: done err %v, want ErrFailed", i+5, err)
		}
	}
	if !errors.Is(errs[0], syscall.EIO) {
		t.Fatalf("first failed record: %v, want EIO", errs[0])
	}
	if _, err := j.Append(context.Background(), rec(99), nil); !errors.Is(err, journal.ErrFailed) {
		t.Fatalf("Append after fail-stop: %v", err)
	}
	if st := j.Stats(); st.Err == nil || st.Acked != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPowerLoss(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			fsys := faultfs.New()
			opts := journal.Options{Dir: "/j", FS: fsys, SegmentSize: 8 << 10}
			j := open(t, opts)
			var mu sync.Mutex
			acked := map[uint64]int{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for p := 0; p < 4; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; ; k++ {
						select {
						case <-stop:
							return
						default:
						}
						i := p*1_000_000 + k
						if _, err := j.Append(context.Background(), rec(i), func(seq uint64, err error) {
							if err == nil {
								mu.Lock()
								acked[seq] = i
								mu.Unlock()
							}
						}); err != nil {
							return // fail-stopped after the crash
						}
					}
				}()
			}
			time.Sleep(time.Duration(1+rng.IntN(20)) * time.Millisecond)
			mu.Lock()
			fsys.CrashTorn(rng) // power loss; acked snapshot taken at the same instant
			snapshot := make(map[uint64]int, len(acked))
			for k, v := range acked {
				snapshot[k] = v
			}
			mu.Unlock()
			close(stop)
			wg.Wait()
			j.Close() // the old process is gone; its handles are stale

			j = open(t, opts)
			defer j.Close()
			got := replayAll(t, j, 0)
			for k, r := range got {
				if r.Seq != uint64(k+1) {
					t.Fatalf("replay position %d has seq %d", k, r.Seq)
				}
				if i, ok := snapshot[r.Seq]; ok {
					checkRec(t, &r, i, r.Seq)
				}
			}
			for seq := range snapshot {
				if seq > uint64(len(got)) {
					t.Fatalf("acknowledged seq %d lost (only %d records recovered)", seq, len(got))
				}
			}
			if len(snapshot) == 0 {
				t.Log("nothing acknowledged before the crash")
			}
			// The journal continues after recovery.
			for _, err := range appendWait(t, j, 0, 3) {
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// writeJournal writes rec(0..n-1) in dir and closes it.
func writeJournal(t testing.TB, dir string, n int) {
	t.Helper()
	recs := make([]*journal.Record, n)
	for i := range recs {
		recs[i] = rec(i)
	}
	testutil.WriteJournal(t, journal.Options{Dir: dir}, recs...)
}

// reopenAndCheck opens dir, expects records rec(0..want-1), appends one more,
// and checks it survives another reopen.
func reopenAndCheck(t *testing.T, dir string, want int, wantWarn bool) {
	t.Helper()
	var logs logBuf
	j := open(t, journal.Options{Dir: dir, Logger: logs.logger()})
	if wantWarn != strings.Contains(logs.String(), "torn tail") {
		t.Fatalf("warning logged = %v, want %v: %q", !wantWarn, wantWarn, logs.String())
	}
	got := replayAll(t, j, 0)
	if len(got) != want {
		t.Fatalf("recovered %d records, want %d", len(got), want)
	}
	for k := range got {
		checkRec(t, &got[k], k, uint64(k+1))
	}
	if seq, err := j.Append(context.Background(), rec(want), nil); err != nil || seq != uint64(want+1) {
		t.Fatalf("append after recovery: seq %d err %v", seq, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, journal.Options{Dir: dir})
	defer j.Close()
	got = replayAll(t, j, 0)
	if len(got) != want+1 {
		t.Fatalf("after second reopen: %d records, want %d", len(got), want+1)
	}
	checkRec(t, &got[want], want, uint64(want+1))
}

func TestTornFinalRecordEveryOffset(t *testing.T) {
	const n = 5
	src := t.TempDir()
	writeJournal(t, src, n)
	last := recordOffset(n - 1)
	end := recordOffset(n)
	for cut := last; cut < end; cut++ {
		t.Run(fmt.Sprint(cut-last), func(t *testing.T) {
			dir := copyDir(t, src, func(b []byte) []byte { return b[:cut] })
			reopenAndCheck(t, dir, n-1, cut > last)
		})
	}
	t.Run("zero-tail", func(t *testing.T) {
		dir := copyDir(t, src, func(b []byte) []byte { return append(b, make([]byte, 4096)...) })
		reopenAndCheck(t, dir, n, true)
	})
	t.Run("zeroed-last-record", func(t *testing.T) {
		dir := copyDir(t, src, func(b []byte) []byte { clear(b[last:]); return b })
		reopenAndCheck(t, dir, n-1, true)
	})
	t.Run("torn-last-record-zero-filled", func(t *testing.T) {
		dir := copyDir(t, src, func(b []byte) []byte { clear(b[last+10:]); return b })
		reopenAndCheck(t, dir, n-1, true)
	})
}

func TestGarbageTailNeverReplayed(t *testing.T) {
	const n = 5
	src := t.TempDir()
	writeJournal(t, src, n)
	for seed := uint64(0); seed < 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		size := 1 + rng.IntN(3000)
		garbage := make([]byte, size)
		for i := range garbage {
			garbage[i] = byte(rng.UintN(256))
		}
		if seed%2 == 0 && size >= 8 {
			// A plausible length field, to exercise the partial-record path.
			binary.LittleEndian.PutUint32(garbage[4:], uint32(40+rng.IntN(size)))
		}
		dir := copyDir(t, src, func(b []byte) []byte { return append(b, garbage...) })
		reopenAndCheck(t, dir, n, true)
	}
}

func wantCorrupt(t *testing.T, dir, seg string, off int64) {
	t.Helper()
	_, err := journal.Open(context.Background(), journal.Options{Dir: dir, Logger: quietLogger()})
	if !errors.Is(err, journal.ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	var ce *journal.CorruptError
	if !errors.As(err, &ce) || ce.Segment != seg || ce.Offset != off {
		t.Fatalf("Open: %v, want segment %s offset %d", err, seg, off)
	}
	if !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", off)) {
		t.Fatalf("error text %q does not name segment and offset", err)
	}
	// Inspect (the CLI's verify) reports the same damage.
	if _, err := journal.Inspect(context.Background(), nil, dir, nil); !errors.As(err, &ce) || ce.Offset != off {
		t.Fatalf("Inspect: %v", err)
	}
}

func TestBitFlipInMiddleRecord(t *testing.T) {
	const n = 5
	src := t.TempDir()
	writeJournal(t, src, n)
	seg := filepath.Base(segments(t, src)[0])
	start, end := recordOffset(2), recordOffset(3)
	for p := start; p < end; p++ {
		for _, bit := range []byte{0x01, 0x80} {
			dir := copyDir(t, src, func(b []byte) []byte { b[p] ^= bit; return b })
			wantCorrupt(t, dir, seg, start)
		}
	}
}

func TestBitFlipInSegmentHeader(t *testing.T) {
	src := t.TempDir()
	writeJournal(t, src, 3)
	seg := filepath.Base(segments(t, src)[0])
	for p := 0; p < journal.SegHeaderSize-4; p++ { // the last 4 bytes are reserved
		dir := copyDir(t, src, func(b []byte) []byte { b[p] ^= 0x10; return b })
		wantCorrupt(t, dir, seg, 0)
	}
}

func TestDamageInNonFinalSegment(t *testing.T) {
	_, segs := multiSegment(t, 200, 3)
	b, _ := os.ReadFile(segs[0])
	// Cut the end of the first segment: its last record is torn, but it is
	// not the final segment, so this is corruption, not a torn tail.
	dir := t.TempDir()
	for i, s := range segs {
		c, _ := os.ReadFile(s)
		if i == 0 {
			c = b[:len(b)-5]
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(s)), c, 0o644)
	}
	_, err := journal.Open(context.Background(), journal.Options{Dir: dir, Logger: quietLogger()})
	var ce *journal.CorruptError
	if !errors.As(err, &ce) || ce.Segment != filepath.Base(segs[0]) {
		t.Fatalf("Open: %v", err)
	}
	// A missing middle segment is a gap.
	dir = t.TempDir()
	for i, s := range segs {
		if i == 1 {
			continue
		}
		c, _ := os.ReadFile(s)
		os.WriteFile(filepath.Join(dir, filepath.Base(s)), c, 0o644)
	}
	if _, err := journal.Open(context.Background(), journal.Options{Dir: dir, Logger: quietLogger()}); !errors.As(err, &ce) || ce.Segment != filepath.Base(segs[2]) {
		t.Fatalf("Open with a missing segment: %v", err)
	}
}

func TestForeignAndDuplicateRecords(t *testing.T) {
	const n = 5
	a, b := t.TempDir(), t.TempDir()
	writeJournal(t, a, n)
	writeJournal(t, b, n) // same records, different salt
	segA := filepath.Base(segments(t, a)[0])
	bBytes, _ := os.ReadFile(segments(t, b)[0])
	start, end := recordOffset(2), recordOffset(3)
	foreign := bBytes[start:end] // CRC-valid under b's salt, same seq and content

	t.Run("foreign-in-middle", func(t *testing.T) {
		dir := copyDir(t, a, func(x []byte) []byte { copy(x[start:], foreign); return x })
		wantCorrupt(t, dir, segA, start)
	})
	t.Run("foreign-at-tail", func(t *testing.T) {
		lastB := bBytes[recordOffset(n-1):recordOffset(n)]
		// Even if its seq would be the next one, the salt differs.
		r, _, _, _, err := journal.DecodeRecord(lastB, 0)
		_ = r
		if err == nil {
			t.Fatal("decoded under the wrong salt")
		}
		dir := copyDir(t, a, func(x []byte) []byte { return append(x, lastB...) })
		reopenAndCheck(t, dir, n, true)
	})
	t.Run("duplicate-at-tail", func(t *testing.T) {
		dir := copyDir(t, a, func(x []byte) []byte { return append(x, x[recordOffset(n-1):recordOffset(n)]...) })
		wantCorrupt(t, dir, segA, recordOffset(n))
	})
	t.Run("duplicate-in-middle", func(t *testing.T) {
		dir := copyDir(t, a, func(x []byte) []byte {
			dup := append([]byte(nil), x[start:end]...)
			return append(x[:end:end], append(dup, x[end:]...)...)
		})
		wantCorrupt(t, dir, segA, end)
	})
	t.Run("from-other-segment-same-journal", func(t *testing.T) {
		src := t.TempDir()
		j := open(t, journal.Options{Dir: src, SegmentSize: 4096})
		appendWait(t, j, 0, 100)
		j.Close()
		segs := segments(t, src)
		first, _ := os.ReadFile(segs[0])
		// The first record of segment 0, appended to the last segment.
		r0 := first[journal.SegHeaderSize : journal.SegHeaderSize+recordSize(0)]
		dir := copyDir(t, src, func(x []byte) []byte { return append(x, r0...) })
		j = open(t, journal.Options{Dir: dir})
		defer j.Close()
		if got := replayAll(t, j, 0); len(got) != 100 {
			t.Fatalf("%d records", len(got))
		}
	})
}

func testDiskFull(t *testing.T, op faultfs.Op) {
	fsys := faultfs.New()
	opts := journal.Options{Dir: "/j", FS: fsys}
	j := open(t, opts)
	appendWait(t, j, 0, 10)
	fsys.FailNth(op, 1, syscall.ENOSPC)
	errs := appendWait(t, j, 10, 20)
	if !errors.Is(errs[0], syscall.ENOSPC) {
		t.Fatalf("first record after disk full: %v", errs[0])
	}
	failed := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			if errors.Is(err, journal.ErrFailed) {
				t.Fatalf("disk full fail-stopped the journal: %v", err)
			}
			failed[uint64(i+11)] = true
		}
	}
	// Space is back: appends work again.
	for _, err := range appendWait(t, j, 20, 30) {
		if err != nil {
			t.Fatalf("after space returned: %v", err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	fsys.Crash()
	j = open(t, opts)
	defer j.Close()
	got := replayAll(t, j, 0)
	if len(got) != 30-len(failed) {
		t.Fatalf("recovered %d records, %d failed", len(got), len(failed))
	}
	for _, r := range got {
		if failed[r.Seq] {
			t.Fatalf("failed seq %d was replayed", r.Seq)
		}
		checkRec(t, &r, int(r.Seq-1), r.Seq)
	}
	if seq, err := j.Append(context.Background(), rec(0), nil); err != nil || seq != 31 {
		t.Fatalf("append after reopen: %d %v", seq, err)
	}
}

func TestDiskFullOnWrite(t *testing.T) { testDiskFull(t, faultfs.OpWrite) }
func TestDiskFullOnFsync(t *testing.T) { testDiskFull(t, faultfs.OpSync) }

func TestDiskFullOnRoll(t *testing.T) {
	fsys := faultfs.New()
	opts := journal.Options{Dir: "/j", FS: fsys, SegmentSize: 4096}
	j := open(t, opts)
	defer j.Close()
	fsys.FailNth(faultfs.OpSyncDir, 1, syscall.ENOSPC) // the next segment creation
	var nfail int
	for i := 0; i < 100; i++ {
		if errs := appendWait(t, j, i, i+1); errs[0] != nil {
			if errors.Is(errs[0], journal.ErrFailed) {
				t.Fatal(errs[0])
			}
			nfail++
		}
	}
	if nfail != 1 {
		t.Fatalf("%d failures", nfail)
	}
	j.Close()
	j2 := open(t, opts)
	defer j2.Close()
	if got := replayAll(t, j2, 0); len(got) != 99 {
		t.Fatalf("%d records", len(got))
	}
}

func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	j := open(t, journal.Options{Dir: dir})
	defer j.Close()
	if _, err := journal.Open(context.Background(), journal.Options{Dir: dir}); !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
}

func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	j := open(t, journal.Options{Dir: dir})
	run := func() int {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("helper: %v %s", err, out)
		}
		return 0
	}
	if code := run(); code != 3 {
		t.Fatalf("other process: exit %d, want 3 (ErrLocked)", code)
	}
	j.Close()
	if code := run(); code != 0 {
		t.Fatalf("other process after Close: exit %d", code)
	}
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	opts := journal.Options{Dir: dir, SegmentSize: 4096}
	j := open(t, opts)
	appendWait(t, j, 0, 300)
	segs := segments(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	firstSeqs := make([]uint64, len(segs))
	for i, s := range segs {
		fmt.Sscanf(filepath.Base(s), "%d", &firstSeqs[i])
	}
	// Releasing up to just before the end of segment 1 deletes only segment 0.
	upTo := firstSeqs[2] - 2
	if err := j.Release(upTo); err != nil {
		t.Fatal(err)
	}
	if now := segments(t, dir); len(now) != len(segs)-1 || now[0] != segs[1] {
		t.Fatalf("after Release(%d): %v", upTo, now)
	}
	if err := j.Release(upTo + 1); err != nil { // now segment 1 is fully released
		t.Fatal(err)
	}
	if now := segments(t, dir); len(now) != len(segs)-2 || now[0] != segs[2] {
		t.Fatalf("after Release(%d): %v", upTo+1, now)
	}
	got := replayAll(t, j, upTo+1)
	if len(got) != 300-int(upTo+1) {
		t.Fatalf("replay after release: %d", len(got))
	}
	for k := range got {
		checkRec(t, &got[k], int(upTo)+1+k, upTo+2+uint64(k))
	}
	// Releasing everything never deletes the active segment.
	if err := j.Release(j.LastSeq()); err != nil {
		t.Fatal(err)
	}
	if now := segments(t, dir); len(now) != 1 || now[0] != segs[len(segs)-1] {
		t.Fatalf("after releasing all: %v", now)
	}
	if st := j.Stats(); st.Segments != 1 {
		t.Fatalf("stats segments %d", st.Segments)
	}
	j.Close()
	j = open(t, opts)
	defer j.Close()
	if j.LastSeq() != 300 {
		t.Fatalf("LastSeq %d", j.LastSeq())
	}
	last := firstSeqs[len(firstSeqs)-1]
	got = replayAll(t, j, 0)
	if len(got) == 0 || got[0].Seq != last || got[len(got)-1].Seq != 300 {
		t.Fatalf("replay after reopen: %d records", len(got))
	}
	appendWait(t, j, 300, 310)
}

func TestMaxPendingHonoursContext(t *testing.T) {
	fsys := faultfs.New()
	j := open(t, journal.Options{Dir: "/j", FS: fsys, MaxPending: 4})
	started, release := make(chan struct{}), make(chan struct{})
	fsys.SetHook(blockSyncs(started, release))
	for i := 0; i < 4; i++ {
		if _, err := j.Append(context.Background(), rec(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := j.Append(ctx, rec(4), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append on a full queue: %v", err)
	}
	close(release)
	if _, err := j.Append(context.Background(), rec(4), nil); err != nil {
		t.Fatal(err)
	}
	j.Close()
}

func TestTooLarge(t *testing.T) {
	j := open(t, journal.Options{Dir: t.TempDir(), SegmentSize: 4096})
	defer j.Close()
	if _, err := j.Append(context.Background(), &journal.Record{Payload: make([]byte, 4096)}, nil); !errors.Is(err, journal.ErrTooLarge) {
		t.Fatalf("Append: %v", err)
	}
	// The largest record that fits goes into a segment of its own.
	big := &journal.Record{Payload: make([]byte, 4096-journal.SegHeaderSize-journal.RecHeaderSize-journal.RecTrailerSize)}
	for i := 0; i < 3; i++ {
		done := make(chan error, 1)
		if _, err := j.Append(context.Background(), big, func(_ uint64, err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := replayAll(t, j, 0); len(got) != 3 || !bytes.Equal(got[2].Payload, big.Payload) {
		t.Fatalf("replay: %d", len(got))
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []journal.Options{
		{},
		{Dir: "x", SegmentSize: 10},
		{Dir: "x", MaxPending: -1},
		{Dir: "x", Durability: journal.Interval(0)},
	} {
		if err := o.Validate(); !errors.Is(err, journal.ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := (journal.Options{Dir: "x"}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// multiSegment writes records 0..n-1 to a journal of 4 KiB segments and
// returns its directory and segment files, at least minSegs of them.
func multiSegment(t *testing.T, n, minSegs int) (string, []string) {
	t.Helper()
	src := t.TempDir()
	j := open(t, journal.Options{Dir: src, SegmentSize: 4096})
	appendWait(t, j, 0, n)
	j.Close()
	segs := segments(t, src)
	if len(segs) < minSegs {
		t.Fatalf("%d segments", len(segs))
	}
	return src, segs
}
