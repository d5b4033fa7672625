package redis

import "testing"

// FuzzDecodeEntry: whatever a stream entry looks like, decodeEntry returns
// an event with an ID > 0 taken from a "0-<n>" entry ID, or errEntry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("0-1", "payload", true)
	f.Add("1700000000000-0", "x", true)
	f.Add("0-0", "", true)
	f.Add("0-18446744073709551616", "x", false)
	f.Fuzz(func(t *testing.T, id, data string, has bool) {
		values := map[string]any{}
		if has {
			values["e"] = data
		}
		e, err := decodeEntry(id, values)
		if err != nil {
			return
		}
		if e.ID == 0 || string(e.Data) != data || !has {
			t.Fatalf("decodeEntry(%q) = %+v", id, e)
		}
	})
}
