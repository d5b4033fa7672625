package journal

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Append (and other methods) after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrCorrupt is wrapped by a *CorruptError naming the segment file and the
	// byte offset of damage that cannot be explained by a torn final write.
	ErrCorrupt = errors.New("journal: corrupt")
	// ErrLocked is returned by Open when another Journal (in this or another
	// process) holds the directory's LOCK file.
	ErrLocked = errors.New("journal: directory locked by another opener")
	// ErrFailed is returned by Append after the journal fail-stopped: an fsync
	// (or a write other than disk full) failed, so the durable state of written
	// data is unknown. The journal must be closed and reopened (recovery).
	ErrFailed = errors.New("journal: failed")
	// ErrTooLarge is returned by Append for a record that cannot fit in one segment.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrInvalidOptions is wrapped by Options.Validate errors.
	ErrInvalidOptions = errors.New("journal: invalid options")
)

// CorruptError describes damage found while scanning a segment. It wraps ErrCorrupt.
type CorruptError struct {
	Segment string // segment file name (base name)
	Offset  int64  // byte offset of the damaged record or header
	// Seq is the seq the damaged record has (or must have, by seq
	// continuity); 0 when unknown (a damaged segment header).
	Seq    uint64
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Seq != 0 {
		return fmt.Sprintf("journal: corrupt segment %s at offset %d (record seq %d): %s", e.Segment, e.Offset, e.Seq, e.Reason)
	}
	return fmt.Sprintf("journal: corrupt segment %s at offset %d: %s", e.Segment, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
