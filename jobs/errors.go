package jobs

import (
	"errors"

	"github.com/reactorgo/reactor"
)

// Sentinel errors. They are reactor errors with stable ids, so they keep
// their identity (errors.Is) when a reply is answered from the idempotency
// table or replayed from the journal. Queue-full errors wrap reactor.ErrBusy.
var (
	// ErrNotFound: no job with that id (never enqueued, or finished longer
	// ago than Config.Retention and pruned).
	ErrNotFound = reactor.NewError("jobs.not_found", reactor.CodeNotFound, "jobs: no such job")
	// ErrStaleLease: a heartbeat, completion or failure carried a fencing
	// token that is no longer the job's current lease — its deadline passed,
	// the job was leased again, cancelled or finished. The report is
	// rejected and changes nothing.
	ErrStaleLease = reactor.NewError("jobs.stale_lease", reactor.CodeFailedPrecondition, "jobs: lease is not current (expired, re-leased, cancelled or finished)")
	// ErrFinished: cancel of a job that already completed, was cancelled or
	// was dead-lettered.
	ErrFinished = reactor.NewError("jobs.finished", reactor.CodeFailedPrecondition, "jobs: job already finished")
	// ErrUnknownKind: no kind of that name is defined in this process
	// (Define). A worker dead-letters such a job at once; redrive it once a
	// process that defines the kind runs.
	ErrUnknownKind = reactor.NewError("jobs.unknown_kind", reactor.CodeUnimplemented, "jobs: unknown job kind")
	// ErrPermanent marks a handler error that must not be retried: return
	// Permanent(err) and the job goes to the dead-letter set at once.
	ErrPermanent = errors.New("jobs: permanent failure")
	// ErrClosed: the Queues' workers are stopped.
	ErrClosed = errors.New("jobs: closed")
)

// Permanent wraps err so that the job is dead-lettered without further
// attempts. errors.Is(Permanent(err), ErrPermanent) holds, and err stays in
// the chain.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}
