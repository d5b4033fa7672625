package journal_test

import (
	"bytes"
	"testing"

	"github.com/reactorgo/reactor/journal"
)

const fuzzSalt = 0x5eed5a17

func FuzzDecodeRecord(f *testing.F) {
	r := rec(3)
	r.Seq = 42
	f.Add(journal.EncodeRecord(nil, fuzzSalt, r))
	f.Add(journal.EncodeRecord(nil, fuzzSalt, &journal.Record{Seq: 1}))
	f.Add(journal.EncodeSkip(nil, fuzzSalt, 5, 9))
	f.Add(journal.EncodeRecord(nil, fuzzSalt+1, r)) // wrong salt
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, n, skip, skipTo, err := journal.DecodeRecord(b, fuzzSalt)
		if err != nil {
			return
		}
		if n < journal.RecHeaderSize || n > len(b) {
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
