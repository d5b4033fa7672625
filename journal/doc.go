// Package journal is reactor's write-ahead journal of inputs: every message a
// journaled service accepts is appended here, and acknowledged only once it
// is durable, so that after a crash the runtime can rebuild state from the
// last checkpoint plus a replay of the journal.
//
// # Writing
//
// Append assigns the next sequence number (1, 2, 3, … for the journal's
// whole life), encodes the record (checksummed for the active segment) into
// the shared queue buffer and queues it for a single writer goroutine, which
// owns the active segment file. The writer group-commits: it swaps out every
// record queued since its last commit (the buffers are double-buffered, so
// Appends go on meanwhile), does one write() and, in Sync mode, one
// fdatasync for the whole batch, and hands the batch to a notifier goroutine,
// which calls the records' done callbacks in seq order while the writer
// already writes and syncs the next batch. A done callback with a nil error
// means the record is durable per the Durability mode:
//
//   - Sync() (default): covered by a successful fdatasync. Survives power loss.
//   - Interval(d): written to the OS; fdatasync at most every d. A process
//     crash loses nothing acknowledged; power loss can lose up to d.
//   - None(): written to the OS; fdatasync only at segment roll and Close.
//     A process crash loses nothing acknowledged; power loss can lose
//     everything since the last roll.
//
// # Failures
//
// Disk full (ENOSPC) on write, or on fdatasync in Sync mode: the batch's
// done callbacks get the error, the segment is truncated back to the end of
// the previous batch, and later appends work again once space returns; the
// failed seqs are recorded in a skip record so seq continuity still holds.
// Any other write error, and any fdatasync error in Interval/None mode or
// other than ENOSPC, fail-stops the journal (as PostgreSQL does since
// "fsyncgate"): the batch fails with an error wrapping ErrFailed and the
// cause, every later Append returns ErrFailed, and the process must reopen
// the journal (recovery) to continue. The records of a batch that failed with
// ErrFailed are not acknowledged, but their fate is unknown: they may or may
// not be present after recovery (like a timed-out request).
//
// # Format
//
// Dir holds segment files named by their first seq (%020d.wal) and a LOCK
// file. A segment starts with a 32-byte header (magic "RJNL", version, a
// random 64-bit salt chosen at creation, first seq, CRC-32C of the header),
// followed by records: CRC-32C, length, seq, time, seed, the lengths of
// service, method and key, flags, the bytes, and an 8-byte trailer (length
// and a CRC-32C of salt, length and seq). The record CRC (Castagnoli) covers
// the segment salt and every other byte of the record before the trailer, so
// a record copied from another segment or journal, or with a seq out of
// sequence, is rejected. The trailer, the frame's last bytes, proves that a
// frame was written completely. A record never spans segments. Format
// version 1 segments (no trailer) are still read. See docs/JOURNAL.md.
//
// # Recovery
//
// Open takes an exclusive flock on Dir/LOCK (ErrLocked otherwise, also across
// processes) and verifies every segment. Damage at the very end of the last
// segment that nothing valid follows and that cannot be a complete frame (a
// torn write, a zero-filled tail, non-zero garbage) was never acknowledged: it
// is truncated with a warning. A complete frame there whose checksum fails
// (its trailer for the expected seq is intact) is damage to a record that may
// have been acknowledged, not a torn write. It, and any other damage — a bad
// record followed by a valid one, any bad record in a non-final segment, a
// seq gap between segments — makes Open fail with a *CorruptError (wrapping
// ErrCorrupt) that names the segment, the byte offset and the seq.
// Acknowledged data is never silently dropped.
//
// # Testing
//
// All file I/O goes through the FS interface. The journal/faultfs package is
// an in-memory FS that loses unsynced data on a simulated power loss and can
// fail or delay any operation.
package journal
