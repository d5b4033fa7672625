package cluster_test

import (
	"bytes"
	"testing"

	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/journal"
)

// FuzzDecodeRecord: the decoder never panics, and whatever it accepts
// re-encodes to the same bytes (no two encodings of one record, nothing
// ignored).
func FuzzDecodeRecord(f *testing.F) {
	for _, tc := range []struct {
		fence bool
		rec   journal.Record
	}{
		{false, journal.Record{Time: 1, Seed: 2, Service: "/rooms/42", Method: "room.join", Key: "k1", Payload: []byte(`{"player":"ann"}`)}},
		{false, journal.Record{}},
		{true, journal.Record{Time: 1 << 60}},
	} {
		b, err := cluster.EncodeFrame("rooms_0123456789abcdef_3", 7, 99, tc.fence, &tc.rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("RCJ1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := cluster.DecodeFrame(b)
		if err != nil {
			return
		}
		again, err := cluster.EncodeFrame(fr.Token, fr.Epoch, fr.Seq, fr.Fence, &fr.Rec)
		if err != nil {
			t.Fatalf("decoded frame does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func TestRecordRoundTripAndEveryBitFlip(t *testing.T) {
	rec := journal.Record{Time: 5, Seed: 6, Service: "/rooms/42", Method: "room.join", Key: "k", Payload: []byte("payload")}
	b, err := cluster.EncodeFrame("tok", 3, 10, false, &rec)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := cluster.DecodeFrame(b)
	if err != nil || fr.Epoch != 3 || fr.Seq != 10 || fr.Token != "tok" || fr.Fence || fr.Rec.Service != rec.Service || fr.Rec.Method != rec.Method || fr.Rec.Key != rec.Key || string(fr.Rec.Payload) != "payload" || fr.Rec.Time != 5 || fr.Rec.Seed != 6 {
		t.Fatalf("round trip: %+v, %v", fr, err)
	}
	for i := range len(b) * 8 {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if _, err := cluster.DecodeFrame(c); err == nil {
			t.Fatalf("bit %d flipped: accepted", i)
		}
	}
}
