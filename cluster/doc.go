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
// # Nodes
//
// Node puts it together: the same Setup on every node, a reactor.Runtime
// per partition the node owns (its journal the partition's stream, its
// checkpoints a per-partition view of Checkpoints, refusing writes once
// the lease is not valid) and the node's router as reactor.Config.Remote.
// A message for an address of another partition is a NATS request on
// RPCSubject, answered by the owner with reactor's Deliver; errors travel
// as reactor.EncodeError. "No responders" (a handoff) is retried with
// backoff until the caller's context ends; timeouts and refusals by a
// closing owner are retried for messages with an idempotency key and for
// ReadOnly methods. Callers
// outside any partition use Node.Client (or Node.Ref).
//
// Placement is by membership heartbeats (NodesBucket): each node takes
// free partitions up to its fair share and hands off one partition per
// round when it holds more than that for two rounds. A fenced partition is
// closed at once.
//
// In cluster mode a journaled handler's origin keys name the sending
// service (journal sequences are per partition), count every modifying
// send, and a remote message is owed — the sender is not checkpointed past
// its input until it was delivered — so a new owner's replay sends it
// again and the receiver drops the duplicate.
//
// Events (OpenEvents) are per-address notification streams for readers on
// any node — a room's events for its Server-Sent Events streams: the owner
// publishes, any node reads the last ones and follows the rest through a
// core NATS subscription. They are not the record (the journal is): the
// last events an owner published before dying may be missing.
//
// Package clustertest starts embedded servers for tests.
package cluster
