package reactor

import "errors"

// Sentinel errors. Compare with errors.Is: the runtime wraps them with the
// address and method involved.
var (
	// ErrBusy: a fire-and-forget send found the target's inbox full. The
	// message was not accepted; retry later (HTTP maps it to 503 + Retry-After).
	ErrBusy = errors.New("reactor: inbox full")
	// ErrClosed: the runtime (or the service) is closed or closing.
	ErrClosed = errors.New("reactor: closed")
	// ErrNoService: no service is registered at the address.
	ErrNoService = errors.New("reactor: no such service")
	// ErrNoMethod: the service at the address does not serve the method
	// (its state type differs from the method's receiver type).
	ErrNoMethod = errors.New("reactor: method not served by this service")
	// ErrNilRequest: a nil pointer or nil interface was passed as a request.
	ErrNilRequest = errors.New("reactor: nil request")
	// ErrPanic: the handler panicked; the error carries the panic value and
	// stack. The service itself lives on.
	ErrPanic = errors.New("reactor: handler panicked")
	// ErrNoReply: a deferred reply (Defer) was dropped without being
	// completed: found unreachable by the garbage collector, or still open
	// when the runtime closed.
	ErrNoReply = errors.New("reactor: reply never completed")
	// ErrExists: a service is already registered at the address.
	ErrExists = errors.New("reactor: address already registered")
)

// ErrDeadlock: a handler made a blocking Call to its own service, which
// could never be answered. Use Async instead.
var ErrDeadlock = errors.New("reactor: blocking call to own service")
