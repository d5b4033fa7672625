package cluster

import "errors"

var (
	// ErrFenced means this node is no longer the partition's owner: its lease
	// expired by its own clock, a renewal found a newer owner, or a journal
	// append found a record it did not write at its expected sequence (a new
	// owner's fence). Nothing more may be written for the partition under
	// this epoch; the node must stop serving it.
	ErrFenced = errors.New("cluster: fenced")
	// ErrHeld is returned by Leases.Acquire when another node holds the lease.
	ErrHeld = errors.New("cluster: lease held by another node")
	// ErrCorrupt is wrapped by errors about records or checkpoints that fail
	// their checksum, belong to another partition or break the epoch order.
	// Such data is never passed on.
	ErrCorrupt = errors.New("cluster: corrupt")
	// ErrFailed means a journal gave up on an append whose outcome it could
	// not settle (NATS unreachable for longer than JournalConfig.RetryTimeout).
	// The journal fail-stops; reopen it (with the lease still valid) to go on.
	ErrFailed = errors.New("cluster: journal failed")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("cluster: closed")
	// ErrReleased is returned by Replay when records it would have to return
	// were already purged by Release.
	ErrReleased = errors.New("cluster: records released")
	// ErrInvalidConfig is wrapped by the Validate errors of every config.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrTooLarge is returned for a record or checkpoint over the size limit.
	ErrTooLarge = errors.New("cluster: too large")
)
