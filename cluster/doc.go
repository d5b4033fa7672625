// Package cluster holds the NATS JetStream building blocks that let a
// partition of reactor services move between nodes without ever having two
// accepted writers:
//
//   - Partitioner and Partition: keyed children of a parent hash (FNV-1a 64)
//     into a fixed number of partitions; a top-level service is a partition
//     of one. Every NATS name a cluster creates is prefixed by the cluster
//     name, so several clusters share one NATS server.
//   - Leases and Lease: fenced ownership of a partition, a KV entry created
//     on acquire and updated on its revision at TTL/3. The create revision
//     is the partition's epoch. The holder fences itself by its own
//     monotonic clock at (send time of the last successful renewal) + TTL −
//     margin, before the entry can expire in NATS, so it stops acting as
//     the owner before anyone else can become it — also when cut off from
//     NATS or paused.
//   - Journal: a partition's journal as its own stream. Appends are
//     conditional on the stream's last sequence and pipelined; a new owner
//     appends a fence record at takeover, after which every append of a
//     stale owner fails with ErrFenced. Records keep the project's own
//     framing with a CRC-32C and carry the epoch and partition; Replay
//     refuses damaged or interleaved records.
//   - Checkpoints: a checkpoint.Store on the JetStream object store.
//
// # What "acknowledged" means
//
// A record whose done callback got a nil error was acknowledged by the
// stream leader after it was stored by a quorum of the stream's replicas.
// With R3 and sync_interval: always on every server it survives the loss
// (even by power failure) of any one server. With R1, or the default lazy
// sync_interval, a crash or power loss of the server(s) holding it can lose
// it: Jepsen's NATS 2.12.1 analysis lost ~14% of acknowledged writes to a
// coordinated power failure under lazy fsync. Such setups are allowed (a
// laptop, a single test server) but are not durable in that sense.
//
// The runtime wiring (placement, handoff, routing) is not here; this package
// is what it is built on. Package clustertest starts embedded servers for
// tests.
package cluster
