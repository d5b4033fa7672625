package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const segSuffix = ".wal"

func segName(firstSeq uint64) string { return fmt.Sprintf("%020d%s", firstSeq, segSuffix) }

// segFile is a segment found in the directory.
type segFile struct {
	name     string
	firstSeq uint64 // from the name
}

func listSegments(fsys FS, dir string) ([]segFile, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: list segments: %w", err)
	}
	var segs []segFile
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, segSuffix) || len(n) != 20+len(segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(n, segSuffix), 10, 64)
		if err != nil || seq == 0 {
			continue
		}
		segs = append(segs, segFile{name: n, firstSeq: seq})
	}
	slices.SortFunc(segs, func(a, b segFile) int { return cmpU64(a.firstSeq, b.firstSeq) })
	return segs, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Name     string // base file name, e.g. 00000000000000000001.wal
	Size     int64  // file size
	DataEnd  int64  // offset after the last valid record
	FirstSeq uint64 // from the header
	LastSeq  uint64 // last seq accounted for (FirstSeq-1 when empty)
	Salt     uint64 // the segment's random epoch
	Records  int    // input records (skip records not counted)
	Version  uint32 // on-disk format version of the segment (1 or 2)
}

// TornTail describes the damaged end of the last segment that recovery
// truncates: a partial or garbage final write that was never acknowledged.
type TornTail struct {
	Segment string
	Offset  int64 // where the valid data ends; the file is truncated here
	Size    int64 // file size before truncation
	Reason  string
	// Header is true when the segment's own header is torn (the segment was
	// being created); recovery removes the file.
	Header bool

	// fixTrailer, when set, is the trailer recovery writes at Offset-8: the
	// last record is intact but for its trailer (torn or damaged).
	fixTrailer []byte
}

// TrailerRewrite reports whether recovery keeps the last record, whose
// checksum proves its content, and rewrites its torn or damaged trailer
// (the 8 bytes before Offset) instead of dropping it.
func (t *TornTail) TrailerRewrite() bool { return t.fixTrailer != nil }

// Report is the result of Inspect.
type Report struct {
	Segments []SegmentInfo
	Records  int   // input records in all segments
	Bytes    int64 // valid bytes in all segments (headers included)
	FirstSeq uint64
	LastSeq  uint64
	TornTail *TornTail // non-nil when Open would truncate a torn tail
}

// Inspect scans the journal in dir read-only, verifying every header and
// record checksum, and calls fn (if not nil) for every input record in seq
// order. It takes no lock: run it on a closed journal (on a live one the
// final write may be reported as a torn tail). Damage that recovery would
// refuse is returned as an error wrapping ErrCorrupt.
func Inspect(ctx context.Context, fsys FS, dir string, fn func(*Record) error) (*Report, error) {
	if fsys == nil {
		fsys = OS
	}
	segs, err := listSegments(fsys, dir)
	if err != nil {
		return nil, err
	}
	return scanAll(ctx, fsys, dir, segs, fn)
}

func scanAll(ctx context.Context, fsys FS, dir string, segs []segFile, fn func(*Record) error) (*Report, error) {
	rep := &Report{}
	var sc scanner
	sc.fn = fn
	var prevLast uint64
	for i, sf := range segs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		isLast := i == len(segs)-1
		info, torn, err := sc.scanSegment(fsys, dir, sf, i > 0, prevLast, isLast)
		if err != nil {
			return nil, err
		}
		rep.TornTail = torn
		if torn != nil && torn.Header {
			continue
		}
		rep.Segments = append(rep.Segments, info)
		rep.Records += info.Records
		rep.Bytes += info.DataEnd
		prevLast = info.LastSeq
	}
	if len(rep.Segments) > 0 {
		rep.FirstSeq = rep.Segments[0].FirstSeq
		rep.LastSeq = rep.Segments[len(rep.Segments)-1].LastSeq
	}
	return rep, nil
}

type scanner struct {
	r   segReader
	rec Record
	fn  func(*Record) error
	in  interner
}

// scanSegment verifies one segment. When checkPrev, its first seq must be
// prevLast+1.
func (sc *scanner) scanSegment(fsys FS, dir string, sf segFile, checkPrev bool, prevLast uint64, isLast bool) (SegmentInfo, *TornTail, error) {
	info := SegmentInfo{Name: sf.name}
	f, err := fsys.OpenFile(filepath.Join(dir, sf.name), os.O_RDONLY, 0)
	if err != nil {
		return info, nil, fmt.Errorf("journal: open segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return info, nil, fmt.Errorf("journal: stat segment: %w", err)
	}
	info.Size = st.Size()
	corrupt := func(off int64, format string, args ...any) error {
		return &CorruptError{Segment: sf.name, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	corruptSeq := func(off int64, seq uint64, reason string) error {
		return &CorruptError{Segment: sf.name, Offset: off, Seq: seq, Reason: reason}
	}

	var hb [segHeaderSize]byte
	n, err := f.ReadAt(hb[:], 0)
	if err != nil && err != io.EOF {
		return info, nil, fmt.Errorf("journal: read segment %s: %w", sf.name, err)
	}
	h, herr := decodeSegHeader(hb[:n])
	if herr != nil {
		if isLast {
			rest, err := readRange(f, segHeaderSize, info.Size)
			if err != nil {
				return info, nil, err
			}
			if allZero(rest) {
				// Crash while the segment was being created: nothing in it
				// was ever acknowledged (records are written only after the
				// header is fsynced).
				return info, &TornTail{Segment: sf.name, Size: info.Size, Reason: "torn segment header", Header: true}, nil
			}
		}
		return info, nil, corrupt(0, "%v", herr)
	}
	if h.firstSeq != sf.firstSeq {
		return info, nil, corrupt(0, "header first seq %d does not match file name", h.firstSeq)
	}
	if checkPrev && h.firstSeq != prevLast+1 {
		return info, nil, corrupt(0, "first seq %d does not follow last seq %d of the previous segment (missing records)", h.firstSeq, prevLast)
	}
	info.FirstSeq, info.Salt, info.Version = h.firstSeq, h.salt, h.version
	saltSum := saltCRC(h.salt)
	trailer := trailerSize(h.version)
	expect := h.firstSeq
	off := int64(segHeaderSize)
	sc.r.reset(f, info.Size, off)
	var fr frame
	var ferr error
	var fix []byte // the trailer to rewrite before off, see below
	for {
		w, err := sc.r.peek(recHeaderSize)
		if err != nil {
			return info, nil, fmt.Errorf("journal: read segment %s: %w", sf.name, err)
		}
		if len(w) == 0 {
			break // clean end
		}
		if len(w) >= recHeaderSize {
			if l := int64(binary.LittleEndian.Uint32(w[4:])); l > recHeaderSize && l <= info.Size-off {
				if w, err = sc.r.peek(int(l)); err != nil {
					return info, nil, fmt.Errorf("journal: read segment %s: %w", sf.name, err)
				}
			}
		}
		if ferr = decodeFrame(w, saltSum, trailer, &fr); ferr != nil && ferr != errBadTrailer {
			break
		}
		if fr.seq != expect {
			return info, nil, corruptSeq(off, expect, fmt.Sprintf("record seq %d out of sequence (expected %d)", fr.seq, expect))
		}
		if ferr == errBadTrailer {
			// The checksum proves the record's content: only its trailer is
			// torn or damaged. At the end of the last segment it is kept and
			// recovery rewrites the trailer (dropping a record whose data is
			// intact could drop an acknowledged one); anywhere else it is
			// damage like any other.
			if !isLast {
				return info, nil, corruptSeq(off, expect, "record with a valid checksum but a damaged trailer, in a non-final segment")
			}
			rest, err := readRange(f, off, info.Size)
			if err != nil {
				return info, nil, err
			}
			if p := findValidRecord(rest, saltSum, trailer, expect); p >= 0 {
				return info, nil, corruptSeq(off, expect, fmt.Sprintf("record with a valid checksum but a damaged trailer, followed by a valid record at offset %d", off+int64(p)))
			}
			fix = binary.LittleEndian.AppendUint32(nil, uint32(fr.n))
			fix = binary.LittleEndian.AppendUint32(fix, trailerCRC(saltSum, fix, binary.LittleEndian.AppendUint64(nil, fr.seq)))
		}
		if fr.flags == 0 {
			info.Records++
			if sc.fn != nil {
				sc.fill(&fr)
				if err := sc.fn(&sc.rec); err != nil {
					return info, nil, err
				}
			}
		}
		expect = fr.lastSeq() + 1
		off += int64(fr.n)
		sc.r.advance(fr.n)
		if fix != nil {
			ferr = errBadTrailer
			break
		}
	}
	info.DataEnd = off
	info.LastSeq = expect - 1
	if fix != nil {
		return info, &TornTail{Segment: sf.name, Offset: off, Size: info.Size, fixTrailer: fix,
			Reason: "the last record's trailer is torn or damaged; its checksum proves its content, so it is kept and its trailer rewritten"}, nil
	}
	if off == info.Size {
		return info, nil, nil
	}
	// Something that is not a valid record starts at off.
	rest, err := readRange(f, off, info.Size)
	if err != nil {
		return info, nil, err
	}
	if allZero(rest) {
		if isLast {
			return info, &TornTail{Segment: sf.name, Offset: off, Size: info.Size, Reason: "zero-filled tail"}, nil
		}
		return info, nil, nil // zeros after the data; continuity with the next segment is checked
	}
	if !isLast {
		return info, nil, corrupt(off, "%v in a non-final segment", ferr)
	}
	if p := findValidRecord(rest, saltSum, trailer, info.LastSeq); p >= 0 {
		return info, nil, corruptSeq(off, expect, fmt.Sprintf("%v, followed by a valid record at offset %d", ferr, off+int64(p)))
	}
	if trailer > 0 {
		if reason := damagedComplete(rest, saltSum, expect, ferr); reason != "" {
			return info, nil, corruptSeq(off, expect, reason)
		}
	}
	return info, &TornTail{Segment: sf.name, Offset: off, Size: info.Size, Reason: "torn write: " + ferr.Error()}, nil
}

// damagedComplete decides the invalid bytes b that end the last segment
// (nothing valid follows them; they are not all zeros) for a segment with
// record trailers. It returns why they are a damaged complete record, the
// expected seq's frame, or "" when they can be a torn write. A torn write
// (the batch's write did not finish before the crash) leaves a prefix of its
// bytes, possibly followed by zeros where the file size reached the disk but
// the data did not; it never leaves the frame's trailer, its last 8 bytes,
// behind without the rest. So:
//
//	checksum  trailer for this seq ending a frame at b[0]  decision
//	bad       found (anywhere up to EOF)                   corrupt: complete frame, bad checksum
//	bad       none                                         torn (frame incomplete, or garbage)
//
// (A frame whose checksum is valid but whose trailer is not never gets here:
// its content is proven, so the scan keeps it and has its trailer rewritten.)
//
// The trailer is searched for at every end, not only where the (untrusted)
// length field points, so a damaged length or seq in the header is found too.
func damagedComplete(b []byte, saltSum uint32, seq uint64, ferr error) string {
	if e := findTrailer(b, saltSum, seq); e > 0 {
		return fmt.Sprintf("corrupt, not torn: complete frame of %d bytes (its trailer is intact) fails its check: %v "+
			"(damage to a record that may have been acknowledged; a torn write cannot leave the trailer without the rest)", e, ferr)
	}
	return ""
}

// findValidRecord returns the first position p > 0 in b where a valid record
// (under this segment's salt, seq after lastSeq) starts, or -1.
func findValidRecord(b []byte, saltSum uint32, trailer int, lastSeq uint64) int {
	var fr frame
	for p := 1; p+recHeaderSize <= len(b); p++ {
		w := b[p:]
		// Cheap filters before the CRC, so scanning random garbage is linear.
		l := binary.LittleEndian.Uint32(w[4:])
		if l < uint32(recHeaderSize+trailer) || uint64(l) > uint64(len(w)) {
			continue
		}
		seq := binary.LittleEndian.Uint64(w[8:])
		if seq <= lastSeq || seq-lastSeq > 1<<32 {
			continue
		}
		if decodeFrame(w, saltSum, trailer, &fr) == nil {
			return p
		}
	}
	return -1
}

func (sc *scanner) fill(fr *frame) {
	sc.rec = Record{
		Seq:     fr.seq,
		Time:    fr.time,
		Seed:    fr.seed,
		Service: sc.in.str(fr.service),
		Method:  sc.in.str(fr.method),
		Payload: fr.payload,
	}
	if len(fr.key) > 0 {
		sc.rec.Key = string(fr.key)
	}
}

func readRange(f File, from, to int64) ([]byte, error) {
	if to <= from {
		return nil, nil
	}
	b := make([]byte, to-from)
	n, err := f.ReadAt(b, from)
	if err != nil && !(err == io.EOF && n == len(b)) {
		return nil, fmt.Errorf("journal: read segment: %w", err)
	}
	return b, nil
}

func allZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// segReader reads a segment sequentially through a reusable window.
type segReader struct {
	f     File
	size  int64
	buf   []byte
	start int64 // file offset of buf[0]
	lo    int
	hi    int
}

const readChunk = 1 << 20

func (r *segReader) reset(f File, size, off int64) {
	r.f, r.size, r.start, r.lo, r.hi = f, size, off, 0, 0
	if r.buf == nil {
		r.buf = make([]byte, readChunk)
	}
}

// peek returns at least n bytes of the window, or fewer if the file ends.
func (r *segReader) peek(n int) ([]byte, error) {
	if r.hi-r.lo >= n {
		return r.buf[r.lo:r.hi], nil
	}
	copy(r.buf, r.buf[r.lo:r.hi])
	r.start += int64(r.lo)
	r.hi -= r.lo
	r.lo = 0
	if n > len(r.buf) {
		nb := make([]byte, n+readChunk)
		copy(nb, r.buf[:r.hi])
		r.buf = nb
	}
	for r.hi < len(r.buf) && r.start+int64(r.hi) < r.size {
		end := min(int64(len(r.buf)), r.size-r.start)
		m, err := r.f.ReadAt(r.buf[r.hi:end], r.start+int64(r.hi))
		r.hi += m
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if m == 0 {
			break
		}
	}
	return r.buf[r.lo:r.hi], nil
}

func (r *segReader) advance(n int) { r.lo += n }

// interner returns strings for repeated byte slices (service and method
// names) without allocating each time; it holds a bounded number of entries.
type interner struct{ m map[string]string }

const maxInterned = 4096

func (in *interner) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = make(map[string]string)
	}
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}
