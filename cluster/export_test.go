package cluster

import (
	"hash/fnv"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/journal"
)

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

// NewPartitionStore is the checkpoint store a node gives partition p's
// runtime: s under p's prefix, refusing writes once l is not valid.
func NewPartitionStore(s *Checkpoints, p Partition, l *Lease) checkpoint.Store {
	return &partitionStore{s: s, prefix: p.Token() + ":", lease: l}
}

// PlacementOrder is the order in which n takes free partitions.
func PlacementOrder(n *Node) []Partition {
	h := fnv.New32a()
	h.Write([]byte(n.cfg.Node))
	start := int(h.Sum32() % uint32(len(n.all)))
	out := make([]Partition, len(n.all))
	for i := range n.all {
		out[i] = n.all[(start+i)%len(n.all)]
	}
	return out
}
