package journal

// Exports for the external test package.

// EncodeRecord encodes rec under salt.
func EncodeRecord(dst []byte, salt uint64, rec *Record) []byte {
	return appendRecord(dst, saltCRC(salt), rec, 0)
}

// EncodeSkip encodes a skip record for seqs from..to under salt.
func EncodeSkip(dst []byte, salt uint64, from, to uint64) []byte {
	return appendSkip(dst, saltCRC(salt), from, to)
}

// DecodeRecord decodes the record at the start of b. skip reports a skip
// record (rec.Seq..skipTo).
func DecodeRecord(b []byte, salt uint64) (rec Record, n int, skip bool, skipTo uint64, err error) {
	var f frame
	if err = decodeFrame(b, saltCRC(salt), &f); err != nil {
		return rec, 0, false, 0, err
	}
	rec = Record{Seq: f.seq, Time: f.time, Seed: f.seed, Service: string(f.service),
		Method: string(f.method), Key: string(f.key), Payload: f.payload}
	return rec, f.n, f.flags == flagSkip, f.skipTo, nil
}

const (
	SegHeaderSize = segHeaderSize
	RecHeaderSize = recHeaderSize
)
