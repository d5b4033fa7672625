package poker

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeWireEvent: whatever a shared stream holds, decodeWireEvent
// returns an event with a type and valid JSON data, or an error.
func FuzzDecodeWireEvent(f *testing.F) {
	f.Add([]byte(`{"t":"vote_cast","d":{"member":"x"}}`))
	f.Add([]byte(`{"t":"rejected","to":"m1","d":{"error":"not_voting"}}`))
	f.Add([]byte(`{"t":"","d":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeWireEvent(b)
		if err != nil {
			return
		}
		if w.Type == "" || !json.Valid(w.Data) {
			t.Fatalf("accepted %q: %+v", b, w)
		}
	})
}
