package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reactorgo/reactor/internal/failpoint"
)

// Journal is an open write-ahead journal. Its methods are safe for concurrent use.
type Journal struct {
	opts    Options
	fs      FS
	log     *slog.Logger
	lock    io.Closer
	saltSum uint32 // of the active segment; writer-owned

	// mu guards the append queue, its encoded bytes and the lifecycle flags.
	mu         sync.Mutex
	seq        uint64 // last seq handed out
	queue      []entry
	qbuf       []byte        // queue's records, encoded under encSaltSum by Append
	encSaltSum uint32        // saltCRC of the active segment; set by the writer
	inflight   int           // appended, done not yet called
	spaceCh    chan struct{} // closed when inflight drops or on close; nil if nobody waits
	closed     bool
	failErr    error // non-nil after fail-stop

	wakeCh   chan struct{}
	closing  chan struct{}
	stopped  chan struct{}
	notes    chan note    // writer -> notifier: finished groups, in seq order
	freeQ    chan []entry // notifier -> writer: recycled queue slices
	closeMu  sync.Mutex
	closeErr error

	// segMu guards segs and activeEnd (read by Replay/Release, written by the writer).
	segMu     sync.Mutex
	segs      []segMeta // oldest first; the last one is active
	activeEnd int64

	// Writer-owned state.
	active    File
	activeOff int64 // data end of the active segment
	buf       []byte
	skipFrom  uint64 // seqs [skipFrom, skipTo] were failed and must be skipped (0 = none)
	skipTo    uint64
	dirty     bool // written but not synced (Interval/None)
	lastSync  time.Time

	st stats
}

type segMeta struct {
	name     string
	firstSeq uint64
}

// entry is a queued record; its encoding is in Journal.qbuf (Append
// encodes it there, so the writer only writes and syncs).
type entry struct {
	done func(seq uint64, err error)
	seq  uint64
	n    int // encoded size
}

// note is a finished group handed from the writer to the notifier goroutine,
// which calls its done callbacks. batch[from:to] is the group; the notifier
// recycles batch once it has handled its last group (to == len(batch)).
type note struct {
	batch    []entry
	from, to int
	err      error
}

type stats struct {
	appended, acked, failed   atomic.Uint64
	batches, fsyncs, bytes    atomic.Uint64
	maxBatch                  atomic.Uint64
	lastFsyncNs, totalFsyncNs atomic.Int64
	segments                  atomic.Int64
}

// Stats is a snapshot of the journal's counters.
type Stats struct {
	Appended   uint64        // records accepted by Append
	Acked      uint64        // records whose done got a nil error
	Failed     uint64        // records whose done got an error
	Batches    uint64        // group commits (one write() each)
	MaxBatch   uint64        // most records in one group commit
	Fsyncs     uint64        // fdatasync calls on segments
	Bytes      uint64        // bytes written to segments (records only)
	Segments   int           // segment files currently in the directory
	LastFsync  time.Duration // latency of the latest fdatasync
	TotalFsync time.Duration // summed fdatasync latency
	LastSeq    uint64
	Pending    int   // appended, done not called yet
	Err        error // non-nil once the journal fail-stopped
}

// AvgBatch is the mean number of records per group commit.
func (s Stats) AvgBatch() float64 {
	if s.Batches == 0 {
		return 0
	}
	return float64(s.Acked+s.Failed) / float64(s.Batches)
}

// Open opens (creating if needed) the journal in opts.Dir, takes its lock,
// verifies every segment and truncates a torn final write (logging a
// warning). It refuses to open, with an error wrapping ErrCorrupt, when
// damage is found that a torn final write cannot explain.
func Open(ctx context.Context, opts Options) (*Journal, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	j := &Journal{
		opts:    opts,
		fs:      opts.FS,
		log:     opts.Logger,
		wakeCh:  make(chan struct{}, 1),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
		notes:   make(chan note, 8),
		freeQ:   make(chan []entry, 2),
	}
	if err := j.fs.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: create dir: %w", err)
	}
	lock, err := j.fs.Lock(filepath.Join(opts.Dir, "LOCK"))
	if err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, opts.Dir)
		}
		return nil, fmt.Errorf("journal: lock: %w", err)
	}
	j.lock = lock
	if err := j.recover(ctx); err != nil {
		if j.active != nil {
			j.active.Close()
		}
		lock.Close()
		return nil, err
	}
	j.lastSync = time.Now()
	notified := make(chan struct{})
	go j.notify(notified)
	go j.run(notified)
	return j, nil
}

func (j *Journal) recover(ctx context.Context) error {
	dir := j.opts.Dir
	files, err := listSegments(j.fs, dir)
	if err != nil {
		return err
	}
	rep, err := scanAll(ctx, j.fs, dir, files, nil)
	if err != nil {
		return err
	}
	next := uint64(1) // first seq of a new segment if there is none
	if len(files) > 0 {
		next = files[len(files)-1].firstSeq
	}
	if t := rep.TornTail; t != nil {
		if t.fixTrailer != nil {
			j.log.Warn("journal: rewriting the trailer of the last record (torn or damaged; content intact) and truncating torn tail after it",
				"segment", t.Segment, "offset", t.Offset-int64(len(t.fixTrailer)), "size", t.Size, "reason", t.Reason)
		} else {
			j.log.Warn("journal: truncating torn tail (never acknowledged)",
				"segment", t.Segment, "offset", t.Offset, "size", t.Size, "reason", t.Reason)
		}
		p := filepath.Join(dir, t.Segment)
		if t.Header {
			if err := j.fs.Remove(p); err != nil {
				return fmt.Errorf("journal: remove torn segment: %w", err)
			}
			if err := j.fs.SyncDir(dir); err != nil {
				return fmt.Errorf("journal: sync dir: %w", err)
			}
		}
	}
	for _, s := range rep.Segments {
		j.segs = append(j.segs, segMeta{name: s.Name, firstSeq: s.FirstSeq})
	}
	if len(rep.Segments) == 0 {
		j.seq = next - 1
		return j.createSegment(next)
	}
	last := rep.Segments[len(rep.Segments)-1]
	j.seq = last.LastSeq
	f, err := j.fs.OpenFile(filepath.Join(dir, last.Name), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: open segment: %w", err)
	}
	j.active = f
	j.activeOff = last.DataEnd
	j.activeEnd = last.DataEnd
	j.saltSum = saltCRC(last.Salt)
	j.encSaltSum = j.saltSum
	if t := rep.TornTail; t != nil && t.fixTrailer != nil {
		if _, err := f.WriteAt(t.fixTrailer, last.DataEnd-int64(len(t.fixTrailer))); err != nil {
			return fmt.Errorf("journal: rewrite trailer: %w", err)
		}
	}
	if last.DataEnd != last.Size || (rep.TornTail != nil && rep.TornTail.fixTrailer != nil) {
		if err := f.Truncate(last.DataEnd); err != nil {
			return fmt.Errorf("journal: truncate torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("journal: sync after truncate: %w", err)
		}
	}
	j.st.segments.Store(int64(len(j.segs)))
	if last.Version != formatVersion {
		// An older format's segment is read, never appended to: new records
		// go into a new segment of the current format. (An empty one is
		// replaced by a new segment of the same name.)
		j.active = nil
		if err := f.Close(); err != nil {
			return fmt.Errorf("journal: close segment: %w", err)
		}
		return j.createSegment(last.LastSeq + 1)
	}
	return nil
}

// createSegment makes a new active segment starting at firstSeq: create,
// write the header, fsync the file and the directory.
func (j *Journal) createSegment(firstSeq uint64) error {
	name := segName(firstSeq)
	p := filepath.Join(j.opts.Dir, name)
	f, err := j.fs.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: create segment: %w", err)
	}
	salt := rand.Uint64()
	hdr := appendSegHeader(nil, segHeader{salt: salt, firstSeq: firstSeq})
	if _, err = f.WriteAt(hdr, 0); err == nil {
		if err = f.Sync(); err == nil {
			err = j.fs.SyncDir(j.opts.Dir)
		}
	}
	if err != nil {
		f.Close()
		j.fs.Remove(p) // best effort: a torn header is also handled by recovery
		return fmt.Errorf("journal: create segment %s: %w", name, err)
	}
	j.active = f
	j.activeOff = segHeaderSize
	j.saltSum = saltCRC(salt)
	// Records queued since the writer's last swap were encoded under the old
	// salt: re-checksum them, so that Append and the queue agree with the
	// active segment again.
	j.mu.Lock()
	if j.encSaltSum != j.saltSum {
		j.encSaltSum = j.saltSum
		recrc(j.qbuf, j.queue, j.saltSum)
	}
	j.mu.Unlock()
	j.segMu.Lock()
	if n := len(j.segs); n > 0 && j.segs[n-1].name == name {
		j.segs[n-1].firstSeq = firstSeq
	} else {
		j.segs = append(j.segs, segMeta{name: name, firstSeq: firstSeq})
	}
	j.activeEnd = segHeaderSize
	j.st.segments.Store(int64(len(j.segs)))
	j.segMu.Unlock()
	return nil
}

// Append assigns the next Seq to rec, encodes it into the queue for the
// writer goroutine and returns the Seq. done (may be nil) is called exactly
// once, in Seq order, from the journal's single notifier goroutine (so never
// concurrently with another done of the same journal), after the record is
// durable per the Durability mode (err == nil) or after its batch failed
// (err != nil: nothing in that batch is acknowledged). done must not block.
// rec and its Payload are not retained after Append returns. When MaxPending
// records are pending, Append waits for room or for ctx to end.
func (j *Journal) Append(ctx context.Context, rec *Record, done func(seq uint64, err error)) (uint64, error) {
	if len(rec.Service) > maxStringLen || len(rec.Method) > maxStringLen || len(rec.Key) > maxStringLen {
		return 0, fmt.Errorf("%w: service, method or key longer than %d bytes", ErrTooLarge, maxStringLen)
	}
	n := encodedSize(rec)
	if int64(n) > j.opts.SegmentSize-segHeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, segment size %d", ErrTooLarge, n, j.opts.SegmentSize)
	}
	j.mu.Lock()
	for {
		if j.closed {
			j.mu.Unlock()
			return 0, ErrClosed
		}
		if j.failErr != nil {
			err := j.failErr
			j.mu.Unlock()
			return 0, err
		}
		if j.inflight < j.opts.MaxPending {
			break
		}
		if j.spaceCh == nil {
			j.spaceCh = make(chan struct{})
		}
		ch := j.spaceCh
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("journal: wait for room: %w", ctx.Err())
		}
		j.mu.Lock()
	}
	j.seq++
	seq := j.seq
	j.inflight++
	// Encode here, under the lock (which fixes the byte order to the seq
	// order), so the writer's serial path is only write() + fdatasync.
	j.qbuf = appendRecordSeq(j.qbuf, j.encSaltSum, rec, seq)
	j.queue = append(j.queue, entry{done: done, seq: seq, n: n})
	wake := len(j.queue) == 1
	j.mu.Unlock()
	j.st.appended.Add(1)
	if wake {
		select {
		case j.wakeCh <- struct{}{}:
		default:
		}
	}
	return seq, nil
}

// run is the writer goroutine: it owns the active segment file. It swaps out
// the queue (entries and their encoded bytes; double-buffered with Append),
// writes and syncs it, and hands the finished groups to the notifier, so the
// callbacks of one batch run while the next one is written and synced.
func (j *Journal) run(notified <-chan struct{}) {
	defer close(j.stopped)
	var batch []entry
	var bbuf []byte
	var timer *time.Timer
	var timerC <-chan time.Time
	closing := false
	for {
		if !closing {
			select {
			case <-j.wakeCh:
			case <-timerC:
				timerC = nil
			case <-j.closing:
				closing = true
			}
		}
		for {
			var next []entry
			select {
			case next = <-j.freeQ:
			default:
			}
			j.mu.Lock()
			batch, j.queue = j.queue, next
			bbuf, j.qbuf = j.qbuf, bbuf[:0]
			salt := j.encSaltSum
			j.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			// The notifier owns batch from here on (it recycles it).
			j.commit(batch, bbuf, salt)
		}
		if closing {
			j.shutdown()
			close(j.notes)
			<-notified
			return
		}
		if j.dirty && j.opts.Durability.mode == modeInterval {
			if wait := time.Until(j.lastSync.Add(j.opts.Durability.interval)); wait <= 0 {
				j.syncDirty()
			} else if timerC == nil {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				timerC = timer.C
			}
		}
	}
}

// commit writes batch (encoded in buf under salt) as one or more group
// commits (one per segment it touches).
func (j *Journal) commit(batch []entry, buf []byte, salt uint32) {
	segSize := j.opts.SegmentSize
	off := 0 // offset in buf of batch[i]
	for i := 0; i < len(batch); {
		if err := j.failed(); err != nil {
			j.finish(batch, i, len(batch), err)
			return
		}
		skipLen := 0
		if j.skipFrom != 0 {
			skipLen = skipSize
		}
		start, startOff := i, off
		if j.activeOff+int64(skipLen+len(buf)-off) <= segSize {
			i, off = len(batch), len(buf) // the rest fits: the usual case
		} else {
			for i < len(batch) {
				n := batch[i].n
				// The first record of an empty segment always goes in (Append
				// refused records that cannot fit a segment on their own).
				if j.activeOff+int64(skipLen+off-startOff+n) > segSize && (i > start || j.activeOff > segHeaderSize) {
					break
				}
				off += n
				i++
			}
		}
		if i == start {
			// The next record does not fit: roll to a new segment that starts
			// with the first seq still to be written.
			first := batch[i].seq
			if j.skipFrom != 0 {
				first = j.skipFrom
			}
			if err := j.roll(first); err != nil {
				j.fail(batch, start, len(batch), err)
				return
			}
			continue
		}
		data := buf[startOff:off]
		if salt != j.saltSum {
			// Rolled within this batch: the rest was encoded for the old segment.
			recrc(data, batch[start:i], j.saltSum)
		}
		if j.skipFrom != 0 {
			j.buf = appendSkip(j.buf[:0], j.saltSum, j.skipFrom, j.skipTo)
			j.buf = append(j.buf, data...)
			data = j.buf
		}
		if err := j.write(data); err != nil {
			j.fail(batch, start, i, err)
			continue
		}
		j.skipFrom, j.skipTo = 0, 0
		if err := failpoint.Inject(failpoint.JournalSynced, j.opts.FS); err != nil {
			// The process "dies" between fsync and acknowledgement: the
			// records are durable, their callers hear a failure, and the
			// journal takes nothing more (no skip record may cover them).
			err = j.failStop(err)
			j.finish(batch, start, i, err)
			continue
		}
		j.finish(batch, start, i, nil)
	}
}

// write appends buf to the active segment and syncs it per the durability
// mode. On disk full it truncates back to the last good offset and returns the
// error (the journal stays usable); any other error fail-stops the journal.
func (j *Journal) write(buf []byte) error {
	off := j.activeOff
	if _, err := j.active.WriteAt(buf, off); err != nil {
		err = fmt.Errorf("journal: write %s: %w", j.activeName(), err)
		if errors.Is(err, syscall.ENOSPC) {
			// Part of the batch may be on disk: cut it off and make the cut
			// durable, or a power cut could bring back records whose
			// callers were told they failed.
			if terr := j.active.Truncate(off); terr != nil {
				return j.failStop(fmt.Errorf("%w (truncate after disk full: %v)", err, terr))
			}
			if serr := j.sync(); serr != nil {
				return j.failStop(fmt.Errorf("%w (sync after truncate: %v)", err, serr))
			}
			return err
		}
		j.active.Truncate(off) // best effort, so a reopen without a crash does not see the batch
		return j.failStop(err)
	}
	j.activeOff += int64(len(buf))
	j.st.bytes.Add(uint64(len(buf)))
	j.segMu.Lock()
	j.activeEnd = j.activeOff
	j.segMu.Unlock()
	if j.opts.Durability.mode != modeSync {
		j.dirty = true
		if j.opts.Durability.mode == modeInterval && time.Since(j.lastSync) >= j.opts.Durability.interval {
			return j.syncDirty()
		}
		return nil
	}
	if err := j.sync(); err != nil {
		err = fmt.Errorf("journal: fdatasync %s: %w", j.activeName(), err)
		if errors.Is(err, syscall.ENOSPC) {
			// Only this batch is unsynced (Sync mode): cut it off and make the
			// cut durable; then the journal is consistent and can go on.
			if terr := j.active.Truncate(off); terr == nil {
				if serr := j.sync(); serr == nil {
					j.activeOff = off
					j.segMu.Lock()
					j.activeEnd = off
					j.segMu.Unlock()
					return err
				}
			}
		}
		j.active.Truncate(off) // best effort, see above
		return j.failStop(err)
	}
	return nil
}

func (j *Journal) sync() error {
	t0 := time.Now()
	err := j.active.Sync()
	d := time.Since(t0)
	j.st.fsyncs.Add(1)
	j.st.lastFsyncNs.Store(int64(d))
	j.st.totalFsyncNs.Add(int64(d))
	if err == nil {
		j.lastSync = time.Now()
		j.dirty = false
	}
	return err
}

// syncDirty fsyncs data acknowledged without fsync (Interval/None). A failure
// fail-stops: acknowledged records may be lost.
func (j *Journal) syncDirty() error {
	if !j.dirty {
		return nil
	}
	if err := j.sync(); err != nil {
		return j.failStop(fmt.Errorf("journal: fdatasync %s: %w", j.activeName(), err))
	}
	return nil
}

// roll syncs and closes the active segment and creates the next one.
func (j *Journal) roll(firstSeq uint64) error {
	if err := j.syncDirty(); err != nil {
		return err
	}
	old := j.active
	if err := j.createSegment(firstSeq); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return err
		}
		return j.failStop(err)
	}
	if err := old.Close(); err != nil {
		j.log.Warn("journal: close segment", "err", err)
	}
	return nil
}

func (j *Journal) activeName() string {
	j.segMu.Lock()
	defer j.segMu.Unlock()
	return j.segs[len(j.segs)-1].name
}

func (j *Journal) failStop(err error) error {
	err = fmt.Errorf("%w: %w", ErrFailed, err)
	j.log.Error("journal: fail-stop, no further appends; reopen to recover", "err", err)
	j.mu.Lock()
	if j.failErr == nil {
		j.failErr = err
	}
	j.mu.Unlock()
	return err
}

func (j *Journal) failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failErr
}

// fail fails the group batch[from:to] whose write did not happen (or was cut
// off); its seqs are covered by a skip record before the next successful write.
func (j *Journal) fail(batch []entry, from, to int, err error) {
	if from < to {
		if j.skipFrom == 0 {
			j.skipFrom = batch[from].seq
		}
		j.skipTo = batch[to-1].seq
	}
	j.finish(batch, from, to, err)
}

// finish hands the group batch[from:to] to the notifier. The writer must not
// touch batch after handing over its last group (to == len(batch)).
func (j *Journal) finish(batch []entry, from, to int, err error) {
	j.notes <- note{batch: batch, from: from, to: to, err: err}
}

// notify is the notifier goroutine: it calls the done callbacks of finished
// groups in seq order (groups arrive in seq order and are handled one after
// another), then frees their room. It returns when notes is closed.
func (j *Journal) notify(notified chan<- struct{}) {
	defer close(notified)
	for nt := range j.notes {
		es := nt.batch[nt.from:nt.to]
		if n := uint64(len(es)); n > 0 {
			j.st.batches.Add(1)
			if nt.err == nil {
				j.st.acked.Add(n)
			} else {
				j.st.failed.Add(n)
			}
			if n > j.st.maxBatch.Load() {
				j.st.maxBatch.Store(n)
			}
			for i := range es {
				if d := es[i].done; d != nil {
					d(es[i].seq, nt.err)
				}
			}
			j.mu.Lock()
			j.inflight -= len(es)
			if j.spaceCh != nil {
				close(j.spaceCh)
				j.spaceCh = nil
			}
			j.mu.Unlock()
		}
		if nt.to == len(nt.batch) {
			clear(nt.batch) // drop the callbacks
			select {
			case j.freeQ <- nt.batch[:0]:
			default:
			}
		}
	}
}

// shutdown runs on the writer goroutine after the queue drained at Close.
func (j *Journal) shutdown() {
	var err error
	if j.failed() == nil {
		if j.skipFrom != 0 {
			// Record the failed seqs so they are not reused after reopening.
			j.buf = appendSkip(j.buf[:0], j.saltSum, j.skipFrom, j.skipTo)
			if werr := j.write(j.buf); werr == nil {
				j.skipFrom, j.skipTo = 0, 0
			}
		}
		if j.failed() == nil && j.dirty {
			if serr := j.sync(); serr != nil {
				err = fmt.Errorf("journal: fdatasync at close: %w", serr)
			}
		}
	}
	if cerr := j.active.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: close segment: %w", cerr)
	}
	j.closeErr = err
}

// Close stops accepting appends, waits for every queued record to be written
// and synced and for their done callbacks to return, closes the files and releases
// the lock. It is safe to call more than once; later calls return the first
// call's result.
func (j *Journal) Close() error {
	j.closeMu.Lock()
	defer j.closeMu.Unlock()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return j.closeErr
	}
	j.closed = true
	if j.spaceCh != nil {
		close(j.spaceCh)
		j.spaceCh = nil
	}
	j.mu.Unlock()
	close(j.closing)
	<-j.stopped
	if err := j.lock.Close(); err != nil && j.closeErr == nil {
		j.closeErr = fmt.Errorf("journal: unlock: %w", err)
	}
	return j.closeErr
}

// LastSeq returns the last seq handed out by Append (or recovered by Open).
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq
}

// Stats returns a snapshot of the counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	pending, lastSeq, ferr := j.inflight, j.seq, j.failErr
	j.mu.Unlock()
	return Stats{
		Appended:   j.st.appended.Load(),
		Acked:      j.st.acked.Load(),
		Failed:     j.st.failed.Load(),
		Batches:    j.st.batches.Load(),
		MaxBatch:   j.st.maxBatch.Load(),
		Fsyncs:     j.st.fsyncs.Load(),
		Bytes:      j.st.bytes.Load(),
		Segments:   int(j.st.segments.Load()),
		LastFsync:  time.Duration(j.st.lastFsyncNs.Load()),
		TotalFsync: time.Duration(j.st.totalFsyncNs.Load()),
		LastSeq:    lastSeq,
		Pending:    pending,
		Err:        ferr,
	}
}

// Replay calls fn for every record with Seq > after, in Seq order, as far
// as it was written when Replay started. The Record and its Payload are valid
// only during fn (the strings are safe to keep). It is meant for startup,
// before the first Append, but is safe to run concurrently with appends.
// A non-nil error from fn stops the replay and is returned.
func (j *Journal) Replay(ctx context.Context, after uint64, fn func(*Record) error) error {
	j.mu.Lock()
	closed := j.closed
	j.mu.Unlock()
	if closed {
		return ErrClosed
	}
	j.segMu.Lock()
	segs := append([]segMeta(nil), j.segs...)
	end := j.activeEnd
	j.segMu.Unlock()
	var sc scanner
	sc.fn = func(r *Record) error {
		if r.Seq <= after {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(r)
	}
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].firstSeq-1 <= after {
			continue // every record in s is <= after
		}
		if err := sc.replaySegment(j.fs, j.opts.Dir, s, i == len(segs)-1, end); err != nil {
			return err
		}
	}
	return nil
}

// replaySegment reads one already-verified segment up to limit (for the active one).
func (sc *scanner) replaySegment(fsys FS, dir string, s segMeta, active bool, limit int64) error {
	f, err := fsys.OpenFile(filepath.Join(dir, s.name), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("journal: replay: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("journal: replay: %w", err)
	}
	size := st.Size()
	if active && limit < size {
		size = limit
	}
	var hb [segHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return fmt.Errorf("journal: replay %s: %w", s.name, err)
	}
	h, err := decodeSegHeader(hb[:])
	if err != nil {
		return &CorruptError{Segment: s.name, Reason: err.Error()}
	}
	saltSum := saltCRC(h.salt)
	trailer := trailerSize(h.version)
	off := int64(segHeaderSize)
	sc.r.reset(f, size, off)
	var fr frame
	for off < size {
		w, err := sc.r.peek(recHeaderSize)
		if err != nil {
			return fmt.Errorf("journal: replay %s: %w", s.name, err)
		}
		if len(w) >= recHeaderSize {
			if l := int(uint32(w[4]) | uint32(w[5])<<8 | uint32(w[6])<<16 | uint32(w[7])<<24); l > len(w) {
				if w, err = sc.r.peek(l); err != nil {
					return fmt.Errorf("journal: replay %s: %w", s.name, err)
				}
			}
		}
		if err := decodeFrame(w, saltSum, trailer, &fr); err != nil {
			if allZeroFrom(w) {
				break // zero tail
			}
			return &CorruptError{Segment: s.name, Offset: off, Reason: err.Error()}
		}
		if fr.flags == 0 {
			sc.fill(&fr)
			if err := sc.fn(&sc.rec); err != nil {
				return err
			}
		}
		off += int64(fr.n)
		sc.r.advance(fr.n)
	}
	return nil
}

func allZeroFrom(w []byte) bool { return len(w) >= 8 && allZero(w[:8]) }

// Release tells the journal that no record with Seq <= upTo is needed any
// more (every service has checkpointed past it). Segments whose records are
// all <= upTo are deleted, oldest first; the active segment never is.
func (j *Journal) Release(upTo uint64) error {
	j.segMu.Lock()
	defer j.segMu.Unlock()
	n := 0
	var err error
	for n+1 < len(j.segs) && j.segs[n+1].firstSeq-1 <= upTo {
		if err = j.fs.Remove(filepath.Join(j.opts.Dir, j.segs[n].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("journal: release segment %s: %w", j.segs[n].name, err)
			break
		}
		// Make each removal durable before the next, so a power loss can
		// never leave a gap (an old segment kept, a newer one removed).
		if err = j.fs.SyncDir(j.opts.Dir); err != nil {
			err = fmt.Errorf("journal: release: sync dir: %w", err)
			n++
			break
		}
		n++
	}
	if n > 0 {
		j.segs = append(j.segs[:0], j.segs[n:]...)
		j.st.segments.Store(int64(len(j.segs)))
	}
	return err
}
