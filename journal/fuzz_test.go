package journal_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

const fuzzSalt = 0x5eed5a17

func FuzzDecodeRecord(f *testing.F) {
	r := rec(3)
	r.Seq = 42
	good := journal.EncodeRecord(nil, fuzzSalt, r)
	f.Add(good)
	f.Add(journal.EncodeRecord(nil, fuzzSalt, &journal.Record{Seq: 1}))
	f.Add(journal.EncodeSkip(nil, fuzzSalt, 5, 9))
	f.Add(journal.EncodeRecord(nil, fuzzSalt+1, r)) // wrong salt
	f.Add(journal.EncodeRecordV1(nil, fuzzSalt, r, 42))
	badTrailer := bytes.Clone(good)
	badTrailer[len(badTrailer)-1] ^= 1
	f.Add(badTrailer)
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, skip, skipTo, err := journal.DecodeRecord(b, fuzzSalt)
		if err != nil {
			return
		}
		if n < journal.RecHeaderSize+journal.RecTrailerSize || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		var re []byte
		if skip {
			if skipTo < got.Seq {
				t.Fatalf("skip record %d..%d accepted", got.Seq, skipTo)
			}
			re = journal.EncodeSkip(nil, fuzzSalt, got.Seq, skipTo)
		} else {
			re = journal.EncodeRecord(nil, fuzzSalt, &got)
		}
		if !bytes.Equal(re, b[:n]) {
			t.Fatalf("accepted record does not re-encode identically:\n in %x\nout %x", b[:n], re)
		}
	})
}

func FuzzDecodeRecordV1(f *testing.F) {
	r := rec(3)
	f.Add(journal.EncodeRecordV1(nil, fuzzSalt, r, 42))
	f.Add(journal.EncodeRecord(nil, fuzzSalt, r))
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, skip, _, err := journal.DecodeRecordV1(b, fuzzSalt)
		if err != nil {
			return
		}
		if n < journal.RecHeaderSize || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		if !skip {
			if re := journal.EncodeRecordV1(nil, fuzzSalt, &got, got.Seq); !bytes.Equal(re, b[:n]) {
				t.Fatalf("accepted v1 record does not re-encode identically:\n in %x\nout %x", b[:n], re)
			}
		}
	})
}

// FuzzScanTail appends arbitrary bytes to a sound segment of three records
// and scans it: no panic; either ErrCorrupt, or a report that recovery
// agrees with (it opens, replays the same records, the first three intact).
func FuzzScanTail(f *testing.F) {
	base := journal.EncodeSegHeader(nil, fuzzSalt, 1)
	for i := 0; i < 3; i++ {
		base = journal.EncodeRecordSeq(base, fuzzSalt, rec(i), uint64(i+1))
	}
	r3 := journal.EncodeRecordSeq(nil, fuzzSalt, rec(3), 4)
	f.Add([]byte{})
	f.Add(r3[:10])
	f.Add(r3[:len(r3)-1])
	f.Add(r3)
	flipped := bytes.Clone(r3)
	flipped[journal.RecHeaderSize+3] ^= 8
	f.Add(flipped)
	trailer := bytes.Clone(r3)
	trailer[len(trailer)-2] ^= 8
	f.Add(trailer)
	f.Add(append(bytes.Clone(r3), make([]byte, 30)...))
	f.Add(make([]byte, 50))
	f.Add(journal.EncodeSkip(nil, fuzzSalt, 4, 6))
	f.Fuzz(func(t *testing.T, tail []byte) {
		ctx := context.Background()
		fsys := faultfs.New()
		if err := fsys.MkdirAll("/j", 0o755); err != nil {
			t.Fatal(err)
		}
		fsys.WriteFile("/j/00000000000000000001.wal", append(bytes.Clone(base), tail...))
		rep, err := journal.Inspect(ctx, fsys, "/j", nil)
		if err != nil {
			if !errors.Is(err, journal.ErrCorrupt) {
				t.Fatalf("Inspect: %v", err)
			}
			return
		}
		if rep.Records < 3 {
			t.Fatalf("%d records", rep.Records)
		}
		j, err := journal.Open(ctx, journal.Options{Dir: "/j", FS: fsys, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("Inspect found %d records, Open: %v", rep.Records, err)
		}
		defer j.Close()
		got := replayAll(t, j, 0)
		if len(got) != rep.Records {
			t.Fatalf("replayed %d, Inspect counted %d", len(got), rep.Records)
		}
		for k := 0; k < 3; k++ {
			checkRec(t, &got[k], k, uint64(k+1))
		}
		if rep2, err := journal.Inspect(ctx, fsys, "/j", nil); err != nil || rep2.TornTail != nil || rep2.Records != rep.Records {
			t.Fatalf("after recovery: %+v %v", rep2, err)
		}
	})
}
