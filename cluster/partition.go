package cluster

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// MaxPartitions bounds Partitioner counts: every partition of a group is a
// stream and a lease key, and more than this is a configuration mistake.
const MaxPartitions = 1 << 16

// Partitioner maps keyed children of a parent address to one of a fixed
// number of partitions. The count is chosen when the cluster is created and
// must never change afterwards: a different count moves keys to other
// partitions, i.e. to other journals and owners.
type Partitioner struct {
	n int
}

// NewPartitioner returns a Partitioner over n partitions (1..MaxPartitions).
func NewPartitioner(n int) (Partitioner, error) {
	if n < 1 || n > MaxPartitions {
		return Partitioner{}, fmt.Errorf("%w: partition count %d not in 1..%d", ErrInvalidConfig, n, MaxPartitions)
	}
	return Partitioner{n: n}, nil
}

// Count is the number of partitions per keyed parent.
func (p Partitioner) Count() int { return p.n }

// Child returns the partition of the keyed child key of parent (e.g. parent
// "/rooms", key "42"). The hash is FNV-1a 64 of the key: stable across
// processes, versions and architectures, which is what a persistent mapping
// needs (Go's map hash is not).
func (p Partitioner) Child(parent, key string) Partition {
	h := fnv.New64a()
	h.Write([]byte(key))
	return Partition{Group: parent, Index: int(h.Sum64() % uint64(p.n)), Count: p.n}
}

// Service returns the partition of a top-level service address: a partition
// of one, owned like any other.
func Service(addr string) Partition {
	return Partition{Group: addr, Index: 0, Count: 1}
}

// Partition identifies one unit of ownership: partition Index of Count of
// the group (a parent or service address).
type Partition struct {
	Group string
	Index int
	Count int
}

func (p Partition) String() string {
	return p.Group + "#" + strconv.Itoa(p.Index) + "/" + strconv.Itoa(p.Count)
}

// Token is the partition's name inside NATS: safe as a subject token, a
// stream name part and a KV key (only [A-Za-z0-9_-]). Addresses contain
// '/' and may contain anything, so the token is a readable sanitized prefix
// of the group (at most 32 bytes) plus the FNV-1a 64 hash of the whole group
// in hex, which keeps groups that sanitize alike apart, plus the index.
// The count is not part of it: it is fixed per cluster.
func (p Partition) Token() string {
	var b strings.Builder
	for i := 0; i < len(p.Group) && b.Len() < 32; i++ {
		c := p.Group[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '/' && i == 0:
			// the leading slash of every address carries nothing
		default:
			b.WriteByte('_')
		}
	}
	h := fnv.New64a()
	h.Write([]byte(p.Group))
	fmt.Fprintf(&b, "_%016x_%d", h.Sum64(), p.Index)
	return b.String()
}

// validName reports whether a cluster name is usable as a prefix of stream,
// bucket and subject names.
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: cluster name %q must be 1..64 bytes", ErrInvalidConfig, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: cluster name %q may only hold [A-Za-z0-9_-]", ErrInvalidConfig, name)
		}
	}
	return nil
}

// Names of what a cluster creates in NATS; all are prefixed by the cluster
// name so several clusters share one NATS server.

// LeaseBucket is the KV bucket holding the cluster's partition leases.
func LeaseBucket(cluster string) string { return cluster + "_leases" }

// JournalStream is the stream holding partition p's journal.
func JournalStream(cluster string, p Partition) string { return cluster + "_j_" + p.Token() }

// JournalSubject is the only subject of JournalStream.
func JournalSubject(cluster string, p Partition) string { return cluster + ".j." + p.Token() }

// CheckpointBucket is the object store bucket holding the cluster's checkpoints.
func CheckpointBucket(cluster string) string { return cluster + "_ckpt" }
