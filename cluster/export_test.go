package cluster

import "github.com/reactorgo/reactor/journal"

// EncodeFrame and DecodeFrame expose the record framing to the tests.
func EncodeFrame(token string, epoch, seq uint64, fence bool, rec *journal.Record) ([]byte, error) {
	return encodeFrame(token, epoch, seq, fence, rec)
}

type Frame struct {
	Fence bool
	Epoch uint64
	Seq   uint64
	Token string
	Rec   journal.Record
}

func DecodeFrame(b []byte) (Frame, error) {
	f, err := decodeFrame(b)
	return Frame{Fence: f.fence, Epoch: f.epoch, Seq: f.seq, Token: f.token, Rec: f.rec}, err
}

// PauseRenewals makes l skip its renewals, as if its process were paused.
func PauseRenewals(l *Lease) {
	l.mu.Lock()
	l.paused = true
	l.mu.Unlock()
}

// IgnoreLease makes j append whatever its lease says: a stale owner whose
// clock lies, so that only the stream fence can stop it.
func IgnoreLease(j *Journal) { j.ignoreLease = true }
