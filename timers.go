package reactor

import "time"

// Timers is the runtime's source of time for everything it schedules
// itself: MethodOf.After timers, the sweep that evicts idle children and
// runs the periodic checkpoint rounds, and the back-off of resent
// messages. The default is the machine's clock. A simulator supplies its
// own so that a seed decides when timers fire and time advances without
// sleeping (reactortest/sim).
type Timers interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f on its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Stopper
}

// Stopper is a pending AfterFunc. Stop cancels it and reports whether it
// was still pending (time.Timer's contract; *time.Timer implements it).
type Stopper interface {
	Stop() bool
}

// realTimers is the machine's clock: a direct call to the time package, so
// the default costs one interface call.
type realTimers struct{}

func (realTimers) Now() time.Time { return time.Now() }

func (realTimers) AfterFunc(d time.Duration, f func()) Stopper { return time.AfterFunc(d, f) }

var _ Timers = realTimers{}
