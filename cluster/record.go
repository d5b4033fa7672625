package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/reactorgo/reactor/journal"
)

// A journal message's data is one frame (all integers little-endian):
//
//	0  magic "RCJ1"
//	4  version uint8 (1)
//	5  flags uint8      0 = input record, 1 = fence record
//	6  reserved uint16  zero
//	8  epoch uint64     lease epoch of the writer
//	16 seq uint64       stream sequence the writer expected the frame to get
//	24 time int64
//	32 seed uint64
//	40 tokenLen uint16, serviceLen uint16, methodLen uint16, keyLen uint16
//	48 payloadLen uint32
//	52 token, service, method, key, payload
//	.. crc uint32       CRC-32C of every byte before it
//
// The CRC is ours, not JetStream's: Jepsen's NATS 2.12.1 analysis showed
// single-bit corruption that JetStream served as valid data. The partition
// token and the expected seq make a frame copied into another stream or to
// another position fail verification like a flipped bit would. A fence
// record carries no input: it is what a new owner appends at takeover so
// that every later conditional append of a stale owner fails.
const (
	frameMagic      = "RCJ1"
	frameVersion    = 1
	frameHeaderSize = 52
	frameCRCSize    = 4

	flagFence = 1

	// MaxRecordSize bounds an encoded frame; JetStream's default max
	// payload is 1 MiB and the frame must fit in one message.
	MaxRecordSize = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is a decoded journal message.
type frame struct {
	fence bool
	epoch uint64
	seq   uint64
	token string
	rec   journal.Record
}

func frameSize(token string, rec *journal.Record) int {
	return frameHeaderSize + len(token) + len(rec.Service) + len(rec.Method) + len(rec.Key) + len(rec.Payload) + frameCRCSize
}

// encodeFrame encodes rec as a frame for seq (rec.Seq is ignored).
func encodeFrame(token string, epoch, seq uint64, fence bool, rec *journal.Record) ([]byte, error) {
	for _, s := range []string{token, rec.Service, rec.Method, rec.Key} {
		if len(s) > math.MaxUint16 {
			return nil, fmt.Errorf("%w: string of %d bytes in record", ErrTooLarge, len(s))
		}
	}
	n := frameSize(token, rec)
	if n > MaxRecordSize {
		return nil, fmt.Errorf("%w: record of %d bytes (max %d)", ErrTooLarge, n, MaxRecordSize)
	}
	b := make([]byte, n)
	copy(b, frameMagic)
	b[4] = frameVersion
	if fence {
		b[5] = flagFence
	}
	le := binary.LittleEndian
	le.PutUint64(b[8:], epoch)
	le.PutUint64(b[16:], seq)
	le.PutUint64(b[24:], uint64(rec.Time))
	le.PutUint64(b[32:], rec.Seed)
	le.PutUint16(b[40:], uint16(len(token)))
	le.PutUint16(b[42:], uint16(len(rec.Service)))
	le.PutUint16(b[44:], uint16(len(rec.Method)))
	le.PutUint16(b[46:], uint16(len(rec.Key)))
	le.PutUint32(b[48:], uint32(len(rec.Payload)))
	off := frameHeaderSize
	off += copy(b[off:], token)
	off += copy(b[off:], rec.Service)
	off += copy(b[off:], rec.Method)
	off += copy(b[off:], rec.Key)
	off += copy(b[off:], rec.Payload)
	le.PutUint32(b[off:], crc32.Checksum(b[:off], castagnoli))
	return b, nil
}

var (
	errFrameShort   = errors.New("frame too short")
	errFrameMagic   = errors.New("bad magic")
	errFrameVersion = errors.New("unknown version")
	errFrameFlags   = errors.New("unknown flags")
	errFrameLength  = errors.New("lengths do not match the frame size")
	errFrameCRC     = errors.New("checksum mismatch")
)

// decodeFrame verifies and decodes b. The strings are copied; the payload
// aliases b. It never panics, whatever b holds.
func decodeFrame(b []byte) (frame, error) {
	var f frame
	if len(b) < frameHeaderSize+frameCRCSize {
		return f, errFrameShort
	}
	if string(b[:4]) != frameMagic {
		return f, errFrameMagic
	}
	le := binary.LittleEndian
	// The checksum first: nothing of a damaged frame is interpreted.
	body := b[:len(b)-frameCRCSize]
	if crc32.Checksum(body, castagnoli) != le.Uint32(b[len(body):]) {
		return f, errFrameCRC
	}
	if b[4] != frameVersion {
		return f, errFrameVersion
	}
	if b[5]&^flagFence != 0 || b[6] != 0 || b[7] != 0 {
		return f, errFrameFlags
	}
	tl, sl, ml, kl := int(le.Uint16(b[40:])), int(le.Uint16(b[42:])), int(le.Uint16(b[44:])), int(le.Uint16(b[46:]))
	pl := uint64(le.Uint32(b[48:]))
	if uint64(frameHeaderSize+tl+sl+ml+kl)+pl != uint64(len(body)) {
		return f, errFrameLength
	}
	f.fence = b[5]&flagFence != 0
	f.epoch = le.Uint64(b[8:])
	f.seq = le.Uint64(b[16:])
	f.rec.Seq = f.seq
	f.rec.Time = int64(le.Uint64(b[24:]))
	f.rec.Seed = le.Uint64(b[32:])
	off := frameHeaderSize
	next := func(n int) string { s := string(b[off : off+n]); off += n; return s }
	f.token = next(tl)
	f.rec.Service = next(sl)
	f.rec.Method = next(ml)
	f.rec.Key = next(kl)
	f.rec.Payload = body[off:len(body):len(body)]
	return f, nil
}
