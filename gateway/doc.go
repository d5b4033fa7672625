// Package gateway holds the HTTP pieces used to expose reactor services:
// strict JSON request decoding, JSON error bodies, the mapping of runtime
// errors to status codes (back pressure becomes 503 with Retry-After),
// Server-Sent Events streams (of an [eventlog.Log]), and security headers
// for UI pages.
//
// Everything here is a plain net/http handler or helper (no framework), so
// it mounts on any router.
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
// [ServeEvents] serves an [eventlog.Log] (package eventlog: a bounded
// per-topic log with resume and bounded subscribers) to one HTTP client as
// Server-Sent Events: the events after the client's Last-Event-ID when the
// log can bridge the gap, a fresh snapshot otherwise, then live events. A
// [Stream] writes SSE on any http.ResponseWriter that flushes.
//
// For many long-lived streams, [DetachStream] takes the connection over
// from net/http so the handler can return and the stream be served from
// one small goroutine (reading an [eventlog.Log.FollowSince] subscriber),
// without net/http's per-connection goroutines and buffers.
package gateway
