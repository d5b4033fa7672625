package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// On-disk layout (all integers little-endian).
//
// Segment header, 32 bytes:
//
//	0  magic "RJNL"
//	4  version uint32 (2; 1 is still read)
//	8  salt uint64      random, chosen when the segment is created
//	16 firstSeq uint64  seq of the first record in the segment
//	24 crc uint32       CRC-32C of bytes 0..24
//	28 reserved uint32  zero
//
// Record (version 2), 40-byte header + body + 8-byte trailer:
//
//	0  crc uint32       CRC-32C of (salt as 8 bytes) ++ bytes 4..length-8
//	4  length uint32    total record length including header and trailer
//	8  seq uint64
//	16 time int64
//	24 seed uint64
//	32 serviceLen uint16
//	34 methodLen uint16
//	36 keyLen uint16
//	38 flags uint16     0 = input record, 1 = skip record (see below)
//	40 service, method, key, payload
//	length-8 trailer:   length uint32 (again), tcrc uint32
//
// tcrc is CRC-32C of (salt as 8 bytes) ++ length ++ seq (12 bytes): the
// trailer is checkable on its own, without trusting the header. It is the
// last thing of the frame, so in a torn write (a prefix of the bytes, or a
// prefix followed by zeros) it is missing whenever any byte of the frame is;
// a frame whose trailer is valid (right length pointing back to the frame's
// start, right seq and salt) was written completely, and a checksum failure
// in it is damage to a complete record, not a torn write. See classifyTail.
//
// Version 1 records are the same without the trailer (crc over bytes
// 4..length); recovery cannot tell a damaged complete v1 record from a torn
// one, so it keeps the v1 rule for them (see docs/JOURNAL.md).
//
// A skip record (flags=1, no strings, 8-byte payload holding the last skipped
// seq) marks seqs that Append handed out but whose batch failed (disk full),
// so that seq continuity (+1 per record) can be checked by recovery.
const (
	segHeaderSize  = 32
	recHeaderSize  = 40
	recTrailerSize = 8
	formatVersion  = 2
	segMagic       = "RJNL"

	flagSkip = 1

	// maxStringLen bounds Service, Method and Key.
	maxStringLen = math.MaxUint16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errShort      = errors.New("truncated record")
	errBadLength  = errors.New("bad record length")
	errBadCRC     = errors.New("checksum mismatch")
	errBadTrailer = errors.New("bad record trailer")
	errBadFlags   = errors.New("unknown record flags")
)

func saltCRC(salt uint64) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], salt)
	return crc32.Checksum(b[:], castagnoli)
}

// trailerSize is the size of a record trailer in a segment of the given
// format version.
func trailerSize(version uint32) int {
	if version == 1 {
		return 0
	}
	return recTrailerSize
}

// trailerCRC is the trailer checksum, CRC-32C(salt ‖ length ‖ seq), from the
// little-endian bytes of length (4) and seq (8). It takes slices (of the
// record itself on the hot path) so that it does not allocate.
func trailerCRC(saltSum uint32, lenLE, seqLE []byte) uint32 {
	return crc32.Update(crc32.Update(saltSum, castagnoli, lenLE[:4]), castagnoli, seqLE[:8])
}

// encodedSize is the size of rec on disk.
func encodedSize(rec *Record) int {
	return recHeaderSize + len(rec.Service) + len(rec.Method) + len(rec.Key) + len(rec.Payload) + recTrailerSize
}

// appendRecord encodes rec (with its Seq) at the end of dst. saltSum is
// saltCRC(segment salt). The caller has checked the string lengths.
func appendRecord(dst []byte, saltSum uint32, rec *Record, flags uint16) []byte {
	return encodeRecord(dst, saltSum, rec, rec.Seq, flags)
}

// appendRecordSeq is appendRecord for an input record with seq instead of rec.Seq.
func appendRecordSeq(dst []byte, saltSum uint32, rec *Record, seq uint64) []byte {
	return encodeRecord(dst, saltSum, rec, seq, 0)
}

func encodeRecord(dst []byte, saltSum uint32, rec *Record, seq uint64, flags uint16) []byte {
	n := encodedSize(rec)
	off := len(dst)
	if cap(dst)-off < n {
		nd := make([]byte, off, 2*cap(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	dst = dst[:off+n]
	b := dst[off:]
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(rec.Time))
	binary.LittleEndian.PutUint64(b[24:], rec.Seed)
	binary.LittleEndian.PutUint16(b[32:], uint16(len(rec.Service)))
	binary.LittleEndian.PutUint16(b[34:], uint16(len(rec.Method)))
	binary.LittleEndian.PutUint16(b[36:], uint16(len(rec.Key)))
	binary.LittleEndian.PutUint16(b[38:], flags)
	p := recHeaderSize
	p += copy(b[p:], rec.Service)
	p += copy(b[p:], rec.Method)
	p += copy(b[p:], rec.Key)
	copy(b[p:], rec.Payload)
	seal(b, saltSum)
	return dst
}

// seal writes the checksum and the trailer of the encoded record b (exactly
// one record, with its length and seq filled in) for the salt.
func seal(b []byte, saltSum uint32) {
	n := len(b)
	body := n - recTrailerSize
	binary.LittleEndian.PutUint32(b[body:], uint32(n))
	binary.LittleEndian.PutUint32(b[body+4:], trailerCRC(saltSum, b[body:], b[8:]))
	binary.LittleEndian.PutUint32(b[0:], crc32.Update(saltSum, castagnoli, b[4:body]))
}

// recrc recomputes, for a new segment salt, the checksums of the records
// encoded back to back in buf, whose sizes are es[i].n.
func recrc(buf []byte, es []entry, saltSum uint32) {
	off := 0
	for i := range es {
		seal(buf[off:off+es[i].n], saltSum)
		off += es[i].n
	}
}

// skipSize is the encoded size of a skip record.
const skipSize = recHeaderSize + 8 + recTrailerSize

// appendSkip encodes a skip record covering seqs from..to.
func appendSkip(dst []byte, saltSum uint32, from, to uint64) []byte {
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], to)
	return appendRecord(dst, saltSum, &Record{Seq: from, Payload: p[:]}, flagSkip)
}

// frame is a decoded record whose byte slices alias the input buffer.
type frame struct {
	n       int // encoded length
	seq     uint64
	time    int64
	seed    uint64
	service []byte
	method  []byte
	key     []byte
	payload []byte
	flags   uint16
	skipTo  uint64 // for skip records: last skipped seq
}

// decodeFrame decodes the record at the start of b, for a segment whose
// records carry trailer bytes of trailer (0 for version 1). It returns
// errShort when b ends before the record does (the length field may be
// garbage), and errBadTrailer only for a record that is valid but for its
// trailer (its checksum proves its content and length); f is filled in then.
func decodeFrame(b []byte, saltSum uint32, trailer int, f *frame) error {
	if len(b) < recHeaderSize {
		return errShort
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if uint64(n) < uint64(recHeaderSize+trailer) {
		return errBadLength
	}
	if uint64(n) > uint64(len(b)) {
		return errShort
	}
	b = b[:n]
	body := int(n) - trailer
	sl := int(binary.LittleEndian.Uint16(b[32:]))
	ml := int(binary.LittleEndian.Uint16(b[34:]))
	kl := int(binary.LittleEndian.Uint16(b[36:]))
	flags := binary.LittleEndian.Uint16(b[38:])
	if recHeaderSize+sl+ml+kl > body {
		return errBadLength
	}
	if crc32.Update(saltSum, castagnoli, b[4:body]) != binary.LittleEndian.Uint32(b) {
		return errBadCRC
	}
	f.seq = binary.LittleEndian.Uint64(b[8:])
	f.n = int(n)
	f.time = int64(binary.LittleEndian.Uint64(b[16:]))
	f.seed = binary.LittleEndian.Uint64(b[24:])
	p := recHeaderSize
	f.service = b[p : p+sl : p+sl]
	p += sl
	f.method = b[p : p+ml : p+ml]
	p += ml
	f.key = b[p : p+kl : p+kl]
	p += kl
	f.payload = b[p:body:body]
	f.flags = flags
	f.skipTo = 0
	switch flags {
	case 0:
	case flagSkip:
		if sl != 0 || ml != 0 || kl != 0 || len(f.payload) != 8 {
			return errBadLength
		}
		f.skipTo = binary.LittleEndian.Uint64(f.payload)
		if f.skipTo < f.seq {
			return errBadLength
		}
	default:
		return errBadFlags
	}
	if trailer > 0 && (binary.LittleEndian.Uint32(b[body:]) != n ||
		binary.LittleEndian.Uint32(b[body+4:]) != trailerCRC(saltSum, b[body:], b[8:])) {
		return errBadTrailer // f is filled in
	}
	return nil
}

// findTrailer returns the end e of the first frame for seq that starts at b[0]
// and whose trailer is valid (at b[e-8:e]: length e, checksum of salt, e and
// seq), or -1. The header is not trusted: this finds a frame whose header is
// damaged too. A torn write never leaves such a trailer behind, since the
// trailer is the frame's last bytes.
func findTrailer(b []byte, saltSum uint32, seq uint64) int {
	seqLE := binary.LittleEndian.AppendUint64(nil, seq)
	for e := recHeaderSize + recTrailerSize; e <= len(b); e++ {
		t := b[e-recTrailerSize : e]
		if binary.LittleEndian.Uint32(t) == uint32(e) && binary.LittleEndian.Uint32(t[4:]) == trailerCRC(saltSum, t, seqLE) {
			return e
		}
	}
	return -1
}

// lastSeq is the last seq the frame accounts for.
func (f *frame) lastSeq() uint64 {
	if f.flags == flagSkip {
		return f.skipTo
	}
	return f.seq
}

type segHeader struct {
	salt     uint64
	firstSeq uint64
	version  uint32 // formatVersion when written; 1 or 2 when read
}

func appendSegHeader(dst []byte, h segHeader) []byte {
	var b [segHeaderSize]byte
	copy(b[:], segMagic)
	v := h.version
	if v == 0 {
		v = formatVersion
	}
	binary.LittleEndian.PutUint32(b[4:], v)
	binary.LittleEndian.PutUint64(b[8:], h.salt)
	binary.LittleEndian.PutUint64(b[16:], h.firstSeq)
	binary.LittleEndian.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
	return append(dst, b[:]...)
}

var errBadHeader = errors.New("bad segment header")

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize || string(b[:4]) != segMagic ||
		crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return segHeader{}, errBadHeader
	}
	v := binary.LittleEndian.Uint32(b[4:])
	if v != 1 && v != formatVersion {
		return segHeader{}, fmt.Errorf("unsupported segment format version %d (this build reads 1 and %d)", v, formatVersion)
	}
	h := segHeader{salt: binary.LittleEndian.Uint64(b[8:]), firstSeq: binary.LittleEndian.Uint64(b[16:]), version: v}
	if h.firstSeq == 0 {
		return segHeader{}, errBadHeader
	}
	return h, nil
}
