package eventlog

import "errors"

var (
	// ErrSubscriberTooSlow ends a subscription whose buffer overflowed.
	// The client should reconnect and resume from its last event id.
	ErrSubscriberTooSlow = errors.New("eventlog: subscriber fell behind")
	// ErrClosed ends every subscription when the log is closed.
	ErrClosed = errors.New("eventlog: log closed")
	// ErrUnsubscribed is returned by [Subscription.Next] after
	// [Subscription.Close].
	ErrUnsubscribed = errors.New("eventlog: subscription closed")
)
