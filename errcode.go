package reactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Code classifies an error for callers that cannot share its Go type: a
// retry answered from the idempotency table after a restart, a replayed
// reply, and (next) a caller on another node. The values and names are
// those of connect-go and gRPC, so they map onto HTTP statuses the usual way.
type Code uint32

// The codes. CodeUnknown is what an error registered nowhere maps to.
const (
	CodeOK                 Code = 0
	CodeCanceled           Code = 1
	CodeUnknown            Code = 2
	CodeInvalidArgument    Code = 3
	CodeDeadlineExceeded   Code = 4
	CodeNotFound           Code = 5
	CodeAlreadyExists      Code = 6
	CodePermissionDenied   Code = 7
	CodeResourceExhausted  Code = 8
	CodeFailedPrecondition Code = 9
	CodeAborted            Code = 10
	CodeOutOfRange         Code = 11
	CodeUnimplemented      Code = 12
	CodeInternal           Code = 13
	CodeUnavailable        Code = 14
	CodeDataLoss           Code = 15
	CodeUnauthenticated    Code = 16
)

var codeNames = [...]string{
	"ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
	"already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
	"aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
	"unauthenticated",
}

// String returns the code's snake_case name ("permission_denied").
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint32(c))
}

// MarshalText encodes the code by name.
func (c Code) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText decodes a code name; an unknown name decodes as CodeUnknown,
// so a newer peer's code never makes an older one fail.
func (c *Code) UnmarshalText(b []byte) error {
	for i, n := range codeNames {
		if n == string(b) {
			*c = Code(i)
			return nil
		}
	}
	*c = CodeUnknown
	return nil
}

// Error is an error in the form that crosses restarts (and the network):
// a code, the stable id of the sentinel or error type it came from, the
// original message, and the fields of a registered error type. Restored
// from its encoding it unwraps to that sentinel or to a rebuilt value of
// that type, so errors.Is and errors.As hold on the receiving side as they
// did where it was returned.
//
// NewError defines a sentinel that is itself an *Error.
type Error struct {
	Code    Code            `json:"code"`
	ID      string          `json:"id,omitempty"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	cause   error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the registered sentinel or the rebuilt typed error.
func (e *Error) Unwrap() error { return e.cause }

// Is matches another *Error with the same id: a restored error is its
// sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e.ID != "" && t.ID == e.ID
}

// UnmarshalJSON decodes an encoded error and links it to its registered
// sentinel or type.
func (e *Error) UnmarshalJSON(b []byte) error {
	type plain Error
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("reactor: decode error: %w", err)
	}
	*e = Error(p)
	e.cause = e.resolve()
	return nil
}

func (e *Error) resolve() error {
	if e.ID == "" {
		return nil
	}
	errRegistry.mu.RLock()
	ent := errRegistry.byID[e.ID]
	errRegistry.mu.RUnlock()
	switch {
	case ent == nil:
		return nil
	case ent.sentinel != nil:
		if ent.sentinel == error(e) {
			return nil
		}
		return ent.sentinel
	case ent.decode != nil && len(e.Detail) > 0:
		v, err := ent.decode(e.Detail)
		if err != nil {
			return nil // the code and message still stand
		}
		return v
	}
	return nil
}

type errEntry struct {
	id       string
	code     Code
	sentinel error                       // registered sentinel value
	decode   func([]byte) (error, error) // registered error type
}

var errRegistry = struct {
	mu      sync.RWMutex
	byID    map[string]*errEntry
	byValue map[error]*errEntry
	byType  map[reflect.Type]*errEntry
}{byID: map[string]*errEntry{}, byValue: map[error]*errEntry{}, byType: map[reflect.Type]*errEntry{}}

func register(ent *errEntry, key func()) {
	if ent.id == "" {
		panic("reactor: an error needs an id")
	}
	errRegistry.mu.Lock()
	defer errRegistry.mu.Unlock()
	if _, dup := errRegistry.byID[ent.id]; dup {
		panic(fmt.Sprintf("reactor: error id %q registered twice", ent.id))
	}
	errRegistry.byID[ent.id] = ent
	key()
}

// NewError defines a sentinel error with a stable id and a code, like
// errors.New but known to the runtime: an error that wraps it keeps its
// identity through the idempotency table, journal replay and restarts.
// Define sentinels once, at package level; the id must be unique and stay
// the same across releases.
//
//	var ErrForbidden = reactor.NewError("poker.forbidden", reactor.CodePermissionDenied, "poker: not allowed")
func NewError(id string, code Code, message string) *Error {
	e := &Error{Code: code, ID: id, Message: message}
	ent := &errEntry{id: id, code: code, sentinel: e}
	register(ent, func() { errRegistry.byValue[e] = ent })
	return e
}

// RegisterError gives an existing sentinel (such as one made with
// errors.New) a stable id and a code, with the same effect as NewError.
func RegisterError(id string, code Code, sentinel error) {
	if sentinel == nil || !reflect.TypeOf(sentinel).Comparable() {
		panic("reactor: RegisterError needs a comparable, non-nil sentinel")
	}
	ent := &errEntry{id: id, code: code, sentinel: sentinel}
	register(ent, func() { errRegistry.byValue[sentinel] = ent })
}

// RegisterErrorType makes errors of type E cross restarts as values: their
// JSON encoding travels as the Detail and a new E is decoded from it on the
// other side, so errors.As(err, &e) finds it with its fields.
func RegisterErrorType[E error](id string, code Code) {
	t := reflect.TypeFor[E]()
	ent := &errEntry{id: id, code: code, decode: func(b []byte) (error, error) {
		if t.Kind() == reflect.Pointer {
			v := reflect.New(t.Elem())
			if err := json.Unmarshal(b, v.Interface()); err != nil {
				return nil, err
			}
			return v.Interface().(error), nil
		}
		var v E
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		return v, nil
	}}
	register(ent, func() { errRegistry.byType[t] = ent })
}

// lookupErr returns the registration of one error in a chain, if any.
func lookupErr(err error) *errEntry {
	errRegistry.mu.RLock()
	defer errRegistry.mu.RUnlock()
	if ent := errRegistry.byType[reflect.TypeOf(err)]; ent != nil {
		return ent
	}
	if reflect.TypeOf(err).Comparable() {
		return errRegistry.byValue[err]
	}
	return nil
}

// walk visits err and everything it wraps, depth first, like errors.Is,
// until visit returns true.
func walk(err error, visit func(error) bool) bool {
	for err != nil {
		if visit(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if walk(e, visit) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// CodeOf returns the code of err: that of the outermost registered sentinel
// or type it wraps (or of an *Error in its chain), CodeOK for nil,
// CodeUnknown otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	code := CodeUnknown
	walk(err, func(e error) bool {
		if ent := lookupErr(e); ent != nil {
			code = ent.code
			return true
		}
		if re, ok := e.(*Error); ok {
			code = re.Code
			return true
		}
		return false
	})
	return code
}

// ErrorOf returns the portable form of err: its full message, and the code
// and id of the outermost registered sentinel or type it wraps (with that
// value's fields for a registered type). Errors registered nowhere keep
// their message under CodeUnknown. It returns nil for nil.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	out := &Error{Code: CodeUnknown, Message: err.Error(), cause: err}
	walk(err, func(e error) bool {
		if ent := lookupErr(e); ent != nil {
			out.Code, out.ID = ent.code, ent.id
			if ent.decode != nil {
				if b, jerr := json.Marshal(e); jerr == nil {
					out.Detail = b
				}
			}
			return true
		}
		if re, ok := e.(*Error); ok {
			out.Code, out.ID, out.Detail = re.Code, re.ID, re.Detail
			return true
		}
		return false
	})
	return out
}

// ErrKeyReused: an idempotency key came back with a different method or a
// different request than the one it was first used for. Nothing was
// applied; the client must use a new key for a new request (HTTP maps it
// to 422, as the IETF Idempotency-Key draft asks).
var ErrKeyReused = errors.New("reactor: idempotency key reused for a different request")

func init() {
	for _, r := range []struct {
		id   string
		code Code
		err  error
	}{
		{"reactor.busy", CodeUnavailable, ErrBusy},
		{"reactor.closed", CodeUnavailable, ErrClosed},
		{"reactor.no_service", CodeNotFound, ErrNoService},
		{"reactor.no_method", CodeUnimplemented, ErrNoMethod},
		{"reactor.nil_request", CodeInvalidArgument, ErrNilRequest},
		{"reactor.handler_panicked", CodeInternal, ErrPanic},
		{"reactor.no_reply", CodeInternal, ErrNoReply},
		{"reactor.exists", CodeAlreadyExists, ErrExists},
		{"reactor.deadlock", CodeFailedPrecondition, ErrDeadlock},
		{"reactor.key_reused", CodeInvalidArgument, ErrKeyReused},
		{"context.canceled", CodeCanceled, context.Canceled},
		{"context.deadline_exceeded", CodeDeadlineExceeded, context.DeadlineExceeded},
	} {
		RegisterError(r.id, r.code, r.err)
	}
	RegisterErrorType[*PanicError]("reactor.panic", CodeInternal)
}
