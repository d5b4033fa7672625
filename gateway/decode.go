package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// DefaultMaxBodyBytes is the body limit [DecodeJSON] applies when given 0.
const DefaultMaxBodyBytes = 16 << 10

// BodyError describes why a request body was refused. Its Error() text is
// meant for clients; it implements [HTTPError].
type BodyError struct {
	Status int    // 400, 413 or 415
	Code   string // invalid_body, body_too_large, unsupported_media_type
	Field  string // the offending JSON field (dotted path), if known
	Msg    string
	Err    error // underlying decoding error, if any
}

func (e *BodyError) Error() string { return e.Msg }

// Unwrap returns the underlying decoding error.
func (e *BodyError) Unwrap() error { return e.Err }

// HTTPStatus implements [HTTPError].
func (e *BodyError) HTTPStatus() (int, string) { return e.Status, e.Code }

func invalid(field, msg string, err error) *BodyError {
	return &BodyError{Status: http.StatusBadRequest, Code: "invalid_body", Field: field, Msg: msg, Err: err}
}

// DecodeJSON decodes the request body into dst strictly: the Content-Type
// must be application/json (415 otherwise), the body at most maxBytes long
// (413 body_too_large; maxBytes <= 0 means [DefaultMaxBodyBytes]), exactly
// one JSON value with no unknown fields and nothing after it. Every failure
// is a [*BodyError] naming the field involved when there is one; pass it
// to [WriteError].
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any, maxBytes int64) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		return &BodyError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Msg: "Content-Type must be application/json"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &BodyError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Msg: "charset must be utf-8"}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	if r.Body == nil {
		return invalid("", "request body is empty", nil)
	}
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, maxBytes)
	}
	// Exactly one value: only whitespace may follow.
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return invalid("", "request body must contain a single JSON value", nil)
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(maxBytes, err)
		}
		return invalid("", "request body must contain a single JSON value", err)
	}
}

func tooLarge(max int64, err error) *BodyError {
	return &BodyError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Msg: fmt.Sprintf("request body must not be larger than %d bytes", max), Err: err}
}

func decodeError(err error, max int64) *BodyError {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
		inv *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge(max, err)
	case errors.Is(err, io.EOF):
		return invalid("", "request body is empty", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "request body is truncated JSON", err)
	case errors.As(err, &syn):
		return invalid("", fmt.Sprintf("request body is malformed JSON (at byte %d)", syn.Offset), err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return invalid("", fmt.Sprintf("request body must be a JSON %s", jsonKind(typ)), err)
		}
		return invalid(field, fmt.Sprintf("field %q must be %s, not %s", field, article(jsonKind(typ)), typ.Value), err)
	case errors.As(err, &inv):
		// A programming error, not the client's: keep it out of the message.
		return &BodyError{Status: http.StatusInternalServerError, Code: "internal", Msg: "internal server error", Err: err}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return invalid(f, fmt.Sprintf("unknown field %q", f), err)
	}
	return invalid("", "request body is invalid JSON", err)
}

func jsonKind(e *json.UnmarshalTypeError) string {
	if e.Type == nil {
		return "value"
	}
	switch e.Type.Kind().String() {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	}
	return "value"
}

func article(kind string) string {
	switch kind {
	case "array", "object":
		return "an " + kind
	}
	return "a " + kind
}
