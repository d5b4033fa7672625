package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/journal"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// HTTPError is implemented by errors that know their HTTP status and
// machine-readable code. Their Error() text is sent as the message, so it
// must be safe to show to clients.
type HTTPError interface {
	error
	HTTPStatus() (status int, code string)
}

// JSON writes v as a JSON response with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("gateway: encode response", "err", err)
		Error(w, http.StatusInternalServerError, "internal", "internal server error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	b = append(b, '\n')
	_, _ = w.Write(b)
}

// Error writes {"error": code, "message": message} with the given status.
func Error(w http.ResponseWriter, status int, code, message string) {
	JSON(w, status, ErrorBody{Error: code, Message: message})
}

// RetryAfterSeconds is the Retry-After value sent with 503 responses.
const RetryAfterSeconds = 1

// RetryAfterStorageSeconds is the Retry-After value sent with the 503s of
// a storage failure (storage_full, journal_failed, checkpoint_corrupt):
// they last longer than a full inbox, and clients should not hammer.
const RetryAfterStorageSeconds = 10

// storageCodes are the codes answered with RetryAfterStorageSeconds.
var storageCodes = map[string]bool{"storage_full": true, "journal_failed": true, "checkpoint_corrupt": true}

type rule struct {
	target  error
	status  int
	code    string
	message string
}

// ErrorMapper maps errors to HTTP responses. The zero value has no rules
// of its own and behaves like [WriteError]. Rules are tried in the order
// they were added, before the built-in ones; register them at start-up.
// It is safe for concurrent use.
type ErrorMapper struct {
	mu    sync.RWMutex
	rules []rule
	// Logger receives unmapped (500) errors. Nil means slog.Default().
	Logger *slog.Logger
}

// Map makes errors matching target (errors.Is) answer with status and
// code. The message sent is message, or target.Error() when message is
// empty — never the text of the wrapped error, which may name internals.
func (m *ErrorMapper) Map(target error, status int, code, message string) *ErrorMapper {
	if message == "" {
		message = target.Error()
	}
	m.mu.Lock()
	m.rules = append(m.rules, rule{target, status, code, message})
	m.mu.Unlock()
	return m
}

// Resolve returns the status, code and client-safe message for err.
func (m *ErrorMapper) Resolve(err error) (status int, code, message string) {
	if m != nil {
		m.mu.RLock()
		for _, r := range m.rules {
			if errors.Is(err, r.target) {
				m.mu.RUnlock()
				return r.status, r.code, r.message
			}
		}
		m.mu.RUnlock()
	}
	var he HTTPError
	switch {
	case errors.As(err, &he):
		st, c := he.HTTPStatus()
		return st, c, he.Error()
	case errors.Is(err, reactor.ErrBusy):
		return http.StatusServiceUnavailable, "busy", "server is busy, retry later"
	case errors.Is(err, reactor.ErrClosed):
		return http.StatusServiceUnavailable, "shutting_down", "server is shutting down, retry later"
	case errors.Is(err, reactor.ErrNoService):
		return http.StatusNotFound, "not_found", "not found"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout", "the request timed out"
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "canceled", "the request was canceled"
	case errors.Is(err, reactor.ErrKeyReused):
		return http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was already used for a different request"
	case errors.Is(err, syscall.ENOSPC):
		return http.StatusServiceUnavailable, "storage_full", "the server's disk is full; nothing was applied, retry later"
	case errors.Is(err, journal.ErrFailed):
		return http.StatusServiceUnavailable, "journal_failed", "the server's journal has failed; nothing was applied, retry later"
	case errors.Is(err, checkpoint.ErrCorrupt):
		return http.StatusServiceUnavailable, "checkpoint_corrupt", "this resource's saved state is damaged; an operator has to repair it"
	}
	if c := reactor.CodeOf(err); codeStatus[c] != 0 {
		st, code := codeStatus[c], c.String()
		return st, code, strings.ReplaceAll(code, "_", " ")
	}
	return http.StatusInternalServerError, "internal", "internal server error"
}

// codeStatus maps the codes of registered errors (reactor.NewError,
// RegisterError, RegisterErrorType) that no rule matched to a status.
// Unknown, internal and data-loss errors stay a logged 500.
var codeStatus = map[reactor.Code]int{
	reactor.CodeInvalidArgument:    http.StatusBadRequest,
	reactor.CodeOutOfRange:         http.StatusBadRequest,
	reactor.CodeUnauthenticated:    http.StatusUnauthorized,
	reactor.CodePermissionDenied:   http.StatusForbidden,
	reactor.CodeNotFound:           http.StatusNotFound,
	reactor.CodeAlreadyExists:      http.StatusConflict,
	reactor.CodeAborted:            http.StatusConflict,
	reactor.CodeFailedPrecondition: http.StatusConflict,
	reactor.CodeResourceExhausted:  http.StatusTooManyRequests,
	reactor.CodeUnimplemented:      http.StatusNotImplemented,
	reactor.CodeUnavailable:        http.StatusServiceUnavailable,
	reactor.CodeDeadlineExceeded:   http.StatusGatewayTimeout,
}

// WriteError writes the response for err (see [ErrorMapper.Resolve]).
// 503 responses carry Retry-After: the wait an error in the
// chain asks for through a RetryAfter() time.Duration method (a job queue's
// measured drain time, say), else RetryAfterSeconds, or
// RetryAfterStorageSeconds for a storage failure. Unmapped errors are
// logged, and the client gets a generic 500.
func (m *ErrorMapper) WriteError(w http.ResponseWriter, err error) {
	status, code, msg := m.Resolve(err)
	if status == http.StatusServiceUnavailable {
		secs := RetryAfterSeconds
		if storageCodes[code] {
			secs = RetryAfterStorageSeconds
		}
		var asks interface{ RetryAfter() time.Duration }
		if errors.As(err, &asks) {
			if d := asks.RetryAfter(); d > 0 {
				secs = int((d + time.Second - 1) / time.Second) // whole seconds, rounded up
			}
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if status >= 500 && code == "internal" {
		m.logUnhandled(err)
	}
	Error(w, status, code, msg)
}

// unhandledLog limits the logging of unhandled errors to one line per
// second (and one per panic site), panicStacks to one stack trace per panic
// site per minute; each line says how many were suppressed before it.
var unhandledLog, panicStacks = &LogLimiter{}, &LogLimiter{Every: time.Minute}

func (m *ErrorMapper) logUnhandled(err error) {
	l := slog.Default()
	if m != nil && m.Logger != nil {
		l = m.Logger
	}
	var pe *reactor.PanicError
	if errors.As(err, &pe) {
		site := pe.Service + " " + pe.Method
		if ok, n := panicStacks.Allow(site); ok {
			l.Error("gateway: handler panicked", "service", pe.Service, "method", pe.Method, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack), "suppressed", n)
		} else if ok, n := unhandledLog.Allow("panic " + site); ok {
			l.Error("gateway: handler panicked (stack logged within the last minute)", "service", pe.Service, "method", pe.Method, "panic", fmt.Sprint(pe.Value), "suppressed", n)
		}
		return
	}
	if ok, n := unhandledLog.Allow("unhandled"); ok {
		l.Error("gateway: unhandled error", "err", err, "suppressed", n)
	}
}

// WriteError writes the response for err using only the built-in mappings:
//
//	reactor.ErrBusy            503 busy (Retry-After: 1)
//	reactor.ErrClosed          503 shutting_down (Retry-After: 1)
//	reactor.ErrNoService       404 not_found
//	context.DeadlineExceeded   504 timeout
//	reactor.ErrKeyReused       422 idempotency_key_reused
//	syscall.ENOSPC (disk full) 503 storage_full (Retry-After: 10)
//	journal.ErrFailed          503 journal_failed (Retry-After: 10)
//	checkpoint.ErrCorrupt      503 checkpoint_corrupt (Retry-After: 10)
//	HTTPError                  its HTTPStatus(), its Error() as message
//	a registered error         by its reactor.Code (400, 401, 403, 404, 409,
//	                           429, 501, 503, 504), the code's name as message
//	anything else              500 internal (logged, not revealed)
func WriteError(w http.ResponseWriter, err error) {
	(*ErrorMapper)(nil).WriteError(w, err)
}
