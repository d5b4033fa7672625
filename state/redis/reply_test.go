package redis

import (
	"encoding/binary"
	"testing"
)

// FuzzParseReply: whatever a server (or a proxy) answers, parseReply
// returns a well-formed reply or errReply, never panics, and never
// returns data that is not the last element.
func FuzzParseReply(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 3, 'a', 'b', 'c'})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, in []byte) {
		var arr []any
		for len(in) > 0 && len(arr) < 5 {
			switch in[0] % 4 {
			case 0:
				if len(in) < 9 {
					in = nil
					continue
				}
				arr = append(arr, int64(binary.LittleEndian.Uint64(in[1:9])))
				in = in[9:]
			case 1:
				if len(in) < 2 {
					in = nil
					continue
				}
				n := min(int(in[1]), len(in)-2)
				arr = append(arr, string(in[2:2+n]))
				in = in[2+n:]
			case 2:
				arr = append(arr, nil)
				in = in[1:]
			case 3:
				arr = append(arr, []any{})
				in = in[1:]
			}
		}
		r, err := parseReply(arr)
		if err != nil {
			if err != errReply {
				t.Fatalf("error %v is not errReply", err)
			}
			return
		}
		n := len(r.fields)
		if r.hasData {
			n++
			if _, ok := arr[len(arr)-1].(string); !ok || len(r.fields) == 0 {
				t.Fatalf("data not from a trailing string after integers: %#v", arr)
			}
		}
		if n != len(arr) {
			t.Fatalf("parsed %d of %d elements", n, len(arr))
		}
		for i, x := range r.fields {
			if v := arr[i].(int64); v < 0 || uint64(v) != x {
				t.Fatalf("field %d = %d from %d", i, x, v)
			}
		}
	})
	_, err := parseReply("not an array")
	if err != errReply {
		f.Fatal("a non-array reply parsed")
	}
}
