package journal

import (
	"fmt"
	"log/slog"
	"time"
)

// Record is one journaled input.
type Record struct {
	Seq     uint64 // assigned by Append, strictly increasing from 1 across the journal's life
	Time    int64  // unix nanoseconds recorded for the handler's ctx.Now()
	Seed    uint64 // recorded random seed for ctx.Rand()
	Service string // target service address, e.g. "/rooms/42"
	Method  string // stable method name, e.g. "room.join"
	Key     string // optional idempotency / dedup key ("" = none)
	Payload []byte // codec-encoded request
}

type durabilityMode uint8

const (
	modeSync durabilityMode = iota
	modeInterval
	modeNone
)

// Durability says when Append's done callback fires relative to fdatasync.
// The zero value is Sync().
type Durability struct {
	mode     durabilityMode
	interval time.Duration
}

// Sync acknowledges a record only after an fdatasync covering it (the default).
// Nothing acknowledged is lost on process crash or power loss.
func Sync() Durability { return Durability{mode: modeSync} }

// Interval acknowledges a record once it is written to the OS and fdatasyncs
// at most every d (and within d of the last unsynced write). A process crash
// loses nothing acknowledged; a power loss can lose up to d of acknowledged
// records.
func Interval(d time.Duration) Durability { return Durability{mode: modeInterval, interval: d} }

// None acknowledges a record once it is written to the OS and never fsyncs
// except when a segment is rolled and at Close. A process crash loses nothing
// acknowledged; a power loss can lose everything since the last roll.
func None() Durability { return Durability{mode: modeNone} }

func (d Durability) String() string {
	switch d.mode {
	case modeInterval:
		return "interval(" + d.interval.String() + ")"
	case modeNone:
		return "none"
	}
	return "sync"
}

const (
	// DefaultSegmentSize is used when Options.SegmentSize is zero.
	DefaultSegmentSize = 64 << 20
	// DefaultMaxPending is used when Options.MaxPending is zero.
	DefaultMaxPending = 64 << 10
	// MinSegmentSize is the smallest accepted Options.SegmentSize.
	MinSegmentSize = 4 << 10
	// MaxSegmentSize is the largest accepted Options.SegmentSize.
	MaxSegmentSize = 1 << 31
)

// Options configures Open. The zero value of every field but Dir is usable.
type Options struct {
	// Dir holds the segments and the LOCK file; created if missing. Required.
	Dir string
	// Durability is Sync() when zero.
	Durability Durability
	// SegmentSize is the size at which a new segment is started; default 64 MiB.
	// A record never spans segments, so a record larger than
	// SegmentSize-32 bytes is refused with ErrTooLarge.
	SegmentSize int64
	// MaxPending bounds records appended but not yet done; default 64K.
	// Append waits (honouring its ctx) when the bound is reached.
	MaxPending int
	// FS is the file system; nil means OS.
	FS FS
	// Logger receives recovery warnings and fail-stop errors; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the options are usable (after defaults).
func (o Options) Validate() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: Dir is empty", ErrInvalidOptions)
	case o.SegmentSize != 0 && (o.SegmentSize < MinSegmentSize || o.SegmentSize > MaxSegmentSize):
		return fmt.Errorf("%w: SegmentSize %d outside [%d, %d]", ErrInvalidOptions, o.SegmentSize, MinSegmentSize, MaxSegmentSize)
	case o.MaxPending < 0:
		return fmt.Errorf("%w: MaxPending %d is negative", ErrInvalidOptions, o.MaxPending)
	case o.Durability.mode == modeInterval && o.Durability.interval <= 0:
		return fmt.Errorf("%w: Interval durability needs a positive duration", ErrInvalidOptions)
	case o.Durability.mode > modeNone:
		return fmt.Errorf("%w: unknown durability mode", ErrInvalidOptions)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.FS == nil {
		o.FS = OS
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
