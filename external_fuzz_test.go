package reactor

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeExternal: whatever a store returns, decodeExternal returns the
// state with a well-formed answer table, the value itself (no magic), or an
// error — never a panic.
func FuzzDecodeExternal(f *testing.F) {
	f.Add([]byte(`{"N":1}`))
	f.Add([]byte(extMagic + `{"state":"eyJOIjoxfQ==","replies":[{"k":"a:b","t":5,"r":"1","h":3}]}`))
	f.Add([]byte(extMagic + `{"replies":[null]}`))
	f.Add([]byte(extMagic + `{"replies":[{"k":"x","t":-9223372036854775808,"f":{"code":"busy"}}]}`))
	f.Add([]byte(extMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		state, table, err := decodeExternal(data, time.Minute)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(data, []byte(extMagic)) && !bytes.Equal(state, data) {
			t.Fatalf("a plain value came back changed")
		}
		if table != nil {
			for k, r := range table.m {
				if r == nil || r.Key != k {
					t.Fatalf("table entry %q = %+v", k, r)
				}
				_ = r.err()
			}
		}
	})
}
