package server

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reactorgo/reactor/checkpoint"
)

// Sampling of the live charts of /status: one sample every sampleEvery,
// the last sampleKeep kept (10 minutes).
const (
	sampleEvery = 2 * time.Second
	sampleKeep  = 300
	// diskEvery is how often the data directory's size is measured: walking
	// a directory of many room checkpoints is not free.
	diskEvery = 30 * time.Second
)

// Sample is one point of the /status charts (GET /status.json). Rates and
// means are over the interval that ends at T.
type Sample struct {
	T int64 `json:"t"` // unix milliseconds
	// Requests and Busy are HTTP requests per second, all and those
	// answered 503 (back pressure, storage trouble, shutdown).
	Requests float64 `json:"requests"`
	Busy     float64 `json:"busy"`
	// CommandMs is the mean latency of the member commands and joins
	// answered in the interval, in milliseconds: the time from the request
	// to its answer, i.e. until the command was durable, applied and its
	// events published to the members' streams (NaN-free: 0 without any).
	CommandMs float64 `json:"commandMs"`
	// Inbox is the messages queued in all inboxes at T; InboxMax the
	// deepest single service (rooms: summed over resident rooms).
	Inbox int `json:"inbox"`
	// FsyncMs is the mean journal fdatasync latency in the interval (the
	// last one's when there was none).
	FsyncMs float64 `json:"fsyncMs"`
	// Rooms are the open rooms, Members the members with a live stream.
	Rooms   int `json:"rooms"`
	Members int `json:"members"`
}

// sampler keeps the samples in a ring buffer, owned by its goroutine
// (readers copy under mu).
type sampler struct {
	s    *Server
	mu   sync.Mutex
	ring []Sample
	next int
	full bool

	diskBytes atomic.Int64 // size of the data directory, measured every diskEvery
	diskAt    atomic.Int64 // unix nanoseconds of that measurement

	stop chan struct{}
	done chan struct{}

	// previous counters, for the rates (the goroutine's own)
	prevAt                     time.Time
	prevReq, prevBusy, prevCmd uint64
	prevCmdNanos, prevFsyncs   uint64
	prevFsyncTotal             time.Duration
	lastDisk                   time.Time
}

func newSampler(s *Server) *sampler {
	return &sampler{s: s, ring: make([]Sample, sampleKeep), stop: make(chan struct{}), done: make(chan struct{})}
}

// run samples until Close; Server.Close waits for it.
func (p *sampler) run() {
	defer close(p.done)
	p.take(time.Now())
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.take(now)
		}
	}
}

func (p *sampler) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *sampler) take(now time.Time) {
	s := p.s
	req, busy := s.http.total.Load(), s.http.unavailable.Load()
	cmd, cmdNanos := s.http.commands.Load(), s.http.commandNanos.Load()
	j := s.journal.Stats()
	c := s.rooms.Counters()
	inbox := 0
	for _, st := range s.rt.Stats() {
		inbox += st.InboxDepth
	}
	smp := Sample{T: now.UnixMilli(), Inbox: inbox, Rooms: c.Known, Members: c.Members,
		FsyncMs: float64(j.LastFsync) / 1e6}
	if !p.prevAt.IsZero() {
		secs := now.Sub(p.prevAt).Seconds()
		if secs > 0 {
			smp.Requests = float64(req-p.prevReq) / secs
			smp.Busy = float64(busy-p.prevBusy) / secs
		}
		if n := cmd - p.prevCmd; n > 0 {
			smp.CommandMs = float64(cmdNanos-p.prevCmdNanos) / float64(n) / 1e6
		}
		if n := j.Fsyncs - p.prevFsyncs; n > 0 {
			smp.FsyncMs = float64(j.TotalFsync-p.prevFsyncTotal) / float64(n) / 1e6
		}
	}
	p.prevAt, p.prevReq, p.prevBusy, p.prevCmd, p.prevCmdNanos = now, req, busy, cmd, cmdNanos
	p.prevFsyncs, p.prevFsyncTotal = j.Fsyncs, j.TotalFsync
	if p.prevAt.Sub(p.lastDisk) >= diskEvery {
		p.lastDisk = now
		p.diskBytes.Store(dirBytes(s.cfg.DataDir))
		p.diskAt.Store(now.UnixNano())
	}
	p.mu.Lock()
	p.ring[p.next] = smp
	p.next = (p.next + 1) % len(p.ring)
	if p.next == 0 {
		p.full = true
	}
	p.mu.Unlock()
}

// samples returns the kept samples, oldest first.
func (p *sampler) samples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.full {
		return append([]Sample(nil), p.ring[:p.next]...)
	}
	return append(append([]Sample(nil), p.ring[p.next:]...), p.ring[:p.next]...)
}

// dirBytes sums the sizes of the regular files under dir (0 on error:
// the status page is no place to fail).
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// journalDiskBytes sums the journal's segment files (a few files: cheap
// enough for every scrape).
func journalDiskBytes(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".wal" {
			continue
		}
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// trackedStore is the server's checkpoint store, noting when a save last
// succeeded and how many failed (for /status and /metrics). Every
// checkpoint round saves at least the journal floor, so the age of the last
// save is the age of the last checkpoint.
type trackedStore struct {
	checkpoint.Store
	last     atomic.Int64 // unix nanoseconds of the last successful Save
	saves    atomic.Uint64
	failures atomic.Uint64
}

var _ checkpoint.Store = (*trackedStore)(nil)

func (t *trackedStore) Save(ctx context.Context, key string, cp checkpoint.Checkpoint) error {
	err := t.Store.Save(ctx, key, cp)
	if err != nil {
		t.failures.Add(1)
		return err
	}
	t.saves.Add(1)
	t.last.Store(time.Now().UnixNano())
	return nil
}

// lastSave returns the time of the last successful save (zero: none yet).
func (t *trackedStore) lastSave() time.Time {
	if n := t.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// buildVersion describes the binary: module version, VCS revision (and
// "dirty" when built from a modified tree), from the build information.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v + " " + bi.GoVersion
}
