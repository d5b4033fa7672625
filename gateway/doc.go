// Package gateway holds the HTTP pieces used to expose reactor services:
// strict JSON request decoding, JSON error bodies, the mapping of runtime
// errors to status codes (back pressure becomes 503 with Retry-After),
// Server-Sent Events streams, a bounded per-topic event log with fan-out to
// bounded subscribers, and security headers for UI pages.
//
// Everything here is a plain net/http handler or helper built on the
// standard library only, so it mounts on any router.
//
// # Errors
//
// Every error body has the same shape:
//
//	{"error": "busy", "message": "server is busy, retry later"}
//
// [WriteError] picks status, code and message for an error: reactor's
// sentinels (ErrBusy → 503 busy with Retry-After, ErrNoService → 404,
// ErrClosed → 503 shutting_down), context.DeadlineExceeded → 504, errors
// that implement [HTTPError] (such as the [*BodyError] returned by
// [DecodeJSON]) use their own status and code, and anything else becomes a
// 500 "internal" whose message never reveals the underlying error. An
// application adds its own mappings with an [ErrorMapper].
//
// # Events
//
// An [EventLog] is owned by one publisher (typically the service that owns
// the topic, publishing from inside its turn) and read by any number of HTTP
// goroutines. It keeps the last N events so a reconnecting client resumes
// from its Last-Event-ID; a client too far behind is told to take a fresh
// snapshot instead. Subscribers have bounded buffers: one that falls behind
// is dropped (its stream ends and the browser reconnects and resumes), so a
// slow client never blocks the publisher nor grows an unbounded queue.
// [ServeEvents] ties an EventLog to a [Stream] for one HTTP request.
//
// For many long-lived streams, [EventLog.FollowSince] makes a subscriber
// that reads the log's own ring ([Subscription.Next], signalled by
// [Subscription.Ready]) instead of holding a buffered channel, and
// [DetachStream] takes the connection over from net/http so the handler
// can return and the stream be served from one small goroutine, without
// net/http's per-connection goroutines and buffers.
package gateway
