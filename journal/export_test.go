package journal

import (
	"encoding/binary"
	"hash/crc32"
)

// Exports for the external test package.

// EncodeRecord encodes rec under salt.
func EncodeRecord(dst []byte, salt uint64, rec *Record) []byte {
	return appendRecord(dst, saltCRC(salt), rec, 0)
}

// EncodeRecordSeq encodes rec with seq under salt.
func EncodeRecordSeq(dst []byte, salt uint64, rec *Record, seq uint64) []byte {
	return appendRecordSeq(dst, saltCRC(salt), rec, seq)
}

// EncodeSkip encodes a skip record for seqs from..to under salt.
func EncodeSkip(dst []byte, salt uint64, from, to uint64) []byte {
	return appendSkip(dst, saltCRC(salt), from, to)
}

// EncodeRecordV1 encodes rec with seq in the version 1 format (no trailer).
func EncodeRecordV1(dst []byte, salt uint64, rec *Record, seq uint64) []byte {
	b := appendRecordSeq(nil, saltCRC(salt), rec, seq)
	b = b[:len(b)-recTrailerSize]
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b, crc32.Update(saltCRC(salt), castagnoli, b[4:]))
	return append(dst, b...)
}

// EncodeSegHeaderV1 encodes a version 1 segment header.
func EncodeSegHeaderV1(dst []byte, salt, firstSeq uint64) []byte {
	return appendSegHeader(dst, segHeader{salt: salt, firstSeq: firstSeq, version: 1})
}

// EncodeSegHeader encodes a segment header of the current version.
func EncodeSegHeader(dst []byte, salt, firstSeq uint64) []byte {
	return appendSegHeader(dst, segHeader{salt: salt, firstSeq: firstSeq})
}

// DecodeRecord decodes the record at the start of b (current format). skip
// reports a skip record (rec.Seq..skipTo).
func DecodeRecord(b []byte, salt uint64) (rec Record, n int, skip bool, skipTo uint64, err error) {
	return decodeRecord(b, salt, recTrailerSize)
}

// DecodeRecordV1 is DecodeRecord for the version 1 format.
func DecodeRecordV1(b []byte, salt uint64) (rec Record, n int, skip bool, skipTo uint64, err error) {
	return decodeRecord(b, salt, 0)
}

func decodeRecord(b []byte, salt uint64, trailer int) (rec Record, n int, skip bool, skipTo uint64, err error) {
	var f frame
	if err = decodeFrame(b, saltCRC(salt), trailer, &f); err != nil {
		return rec, 0, false, 0, err
	}
	rec = Record{Seq: f.seq, Time: f.time, Seed: f.seed, Service: string(f.service),
		Method: string(f.method), Key: string(f.key), Payload: f.payload}
	return rec, f.n, f.flags == flagSkip, f.skipTo, nil
}

const (
	SegHeaderSize  = segHeaderSize
	RecHeaderSize  = recHeaderSize
	RecTrailerSize = recTrailerSize
)
