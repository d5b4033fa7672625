package sqlreactor

import "errors"

// Sentinel errors. Compare with errors.Is: they are wrapped with the request
// name and the cause.
var (
	// ErrCommit: the batch's transaction failed to commit (or to begin); no
	// request of the batch took effect, and every caller of the batch gets it.
	ErrCommit = errors.New("sqlreactor: batch commit failed")
	// ErrPanic: the request function panicked; its savepoint was rolled back
	// and the error carries the panic value and stack.
	ErrPanic = errors.New("sqlreactor: request panicked")
	// ErrClosed: the DB is closed.
	ErrClosed = errors.New("sqlreactor: closed")
	// ErrNotFound: a row a request needed does not exist (request functions
	// may return it wrapped; Get returns it when load reports no row).
	ErrNotFound = errors.New("sqlreactor: not found")
	// ErrApplied: a journaled request replayed after a crash was already
	// committed (a DB registered with reactor.Journaled()); it is skipped.
	ErrApplied = errors.New("sqlreactor: request already applied")
	// ErrConfig: the configuration cannot work.
	ErrConfig = errors.New("sqlreactor: invalid configuration")
	// ErrOutcomeUnknown: a journaled batch failed (it wraps ErrCommit's
	// cause) and the DB could not record that it failed, so a replay after
	// a restart may apply it after all. Retry with the same idempotency key
	// once the database is healthy; do not report the request as failed.
	ErrOutcomeUnknown = errors.New("sqlreactor: batch failed, outcome unknown until the next start")
)
