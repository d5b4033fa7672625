//go:build linux

package journal_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor/journal"
)

// benchDir is a temp dir on the working disk (not /tmp, which may be tmpfs).
func benchDir(b *testing.B) string {
	b.Helper()
	base := os.Getenv("JOURNAL_BENCH_DIR")
	if base == "" {
		base = "."
	}
	dir, err := os.MkdirTemp(base, "journal-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// rawWriteFdatasync is the baseline: one write() of batch*100 bytes and one
// fdatasync per iteration, on a fresh file appended to. It returns the mean
// time per write+fdatasync.
func rawWriteFdatasync(b *testing.B, dir string, batch, iters int) time.Duration {
	f, err := os.Create(dir + "/raw-" + strconv.Itoa(batch))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, batch*100)
	t0 := time.Now()
	for i := 0; i < iters; i++ {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0) / time.Duration(iters)
}

func BenchmarkRawWriteFdatasync(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			dir := benchDir(b)
			b.SetBytes(int64(batch * 100))
			b.ResetTimer()
			d := rawWriteFdatasync(b, dir, batch, b.N)
			b.ReportMetric(float64(batch)/d.Seconds(), "msgs/s")
		})
	}
}

// payload100 makes records of 100 bytes on disk.
func payload100() *journal.Record {
	r := &journal.Record{Service: "/rooms/42", Method: "room.join", Time: 1, Seed: 2}
	r.Payload = make([]byte, 100-journal.RecHeaderSize-len(r.Service)-len(r.Method))
	return r
}

func BenchmarkJournalSync(b *testing.B) {
	const producers, inflight = 64, 64
	b.Run(fmt.Sprintf("producers=%d,inflight=%d", producers, inflight), func(b *testing.B) {
		dir := benchDir(b)
		j := open(b, journal.Options{Dir: dir})
		r := payload100()
		var wg sync.WaitGroup
		per := (b.N + producers - 1) / producers
		b.SetBytes(100)
		b.ResetTimer()
		t0 := time.Now()
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem := make(chan struct{}, inflight)
				release := func(uint64, error) { <-sem }
				for i := 0; i < per; i++ {
					sem <- struct{}{}
					if _, err := j.Append(context.Background(), r, release); err != nil {
						b.Error(err)
						return
					}
				}
				for i := 0; i < inflight; i++ {
					sem <- struct{}{}
				}
			}()
		}
		wg.Wait()
		el := time.Since(t0)
		b.StopTimer()
		st := j.Stats()
		j.Close()
		msgs := float64(producers*per) / el.Seconds()
		b.ReportMetric(msgs, "msgs/s")
		b.ReportMetric(st.AvgBatch(), "avg-batch")
		b.ReportMetric(float64(st.MaxBatch), "max-batch")
		// The raw baseline at the batch size the journal achieved.
		batch := max(1, int(st.AvgBatch()+0.5))
		raw := rawWriteFdatasync(b, dir, batch, 300)
		rawMsgs := float64(batch) / raw.Seconds()
		b.ReportMetric(rawMsgs, "raw-msgs/s")
		b.ReportMetric(100*msgs/rawMsgs, "%-of-raw")
		// Where the gap is: the journal's own fdatasync latency under load
		// against the raw write+fdatasync of the same size, run alone.
		if st.Fsyncs > 0 {
			b.ReportMetric(float64(st.TotalFsync.Microseconds())/float64(st.Fsyncs), "µs/fsync")
		}
		b.ReportMetric(float64(raw.Microseconds()), "raw-µs/write+fsync")
	})
}

func BenchmarkJournalSequential(b *testing.B) {
	dir := benchDir(b)
	j := open(b, journal.Options{Dir: dir})
	r := payload100()
	done := make(chan error, 1)
	cb := func(_ uint64, err error) { done <- err }
	b.SetBytes(100)
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := j.Append(context.Background(), r, cb); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	lat := time.Since(t0) / time.Duration(b.N)
	b.StopTimer()
	j.Close()
	raw := rawWriteFdatasync(b, dir, 1, max(200, min(b.N, 2000)))
	b.ReportMetric(float64(lat.Microseconds()), "µs/append")
	b.ReportMetric(float64(raw.Microseconds()), "raw-µs/fdatasync")
	b.ReportMetric(float64(lat)/float64(raw), "x-raw")
}

// fillJournal writes n 100-byte records with None durability (fast).
func fillJournal(b *testing.B, dir string, n int) {
	j := open(b, journal.Options{Dir: dir, Durability: journal.None()})
	r := payload100()
	for i := 0; i < n; i++ {
		if _, err := j.Append(context.Background(), r, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkReplay(b *testing.B) {
	const n = 1_000_000
	dir := benchDir(b)
	fillJournal(b, dir, n)
	j := open(b, journal.Options{Dir: dir})
	defer j.Close()
	b.SetBytes(100 * n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cnt := 0
		if err := j.Replay(context.Background(), 0, func(*journal.Record) error { cnt++; return nil }); err != nil {
			b.Fatal(err)
		}
		if cnt != n {
			b.Fatalf("%d records", cnt)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRecover10M measures Open (full verification scan) of a
// 10M-record journal. Opt-in: JOURNAL_BENCH_10M=1.
func BenchmarkRecover10M(b *testing.B) {
	if os.Getenv("JOURNAL_BENCH_10M") == "" {
		b.Skip("set JOURNAL_BENCH_10M=1")
	}
	const n = 10_000_000
	dir := benchDir(b)
	fillJournal(b, dir, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		j := open(b, journal.Options{Dir: dir})
		open := time.Since(t0)
		cnt := 0
		if err := j.Replay(context.Background(), 0, func(*journal.Record) error { cnt++; return nil }); err != nil {
			b.Fatal(err)
		}
		total := time.Since(t0)
		j.Close()
		b.ReportMetric(open.Seconds(), "s-open")
		b.ReportMetric(total.Seconds(), "s-open+replay")
	}
}
