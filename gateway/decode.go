package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
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
	var raw bytes.Buffer
	dec := json.NewDecoder(io.TeeReader(body, &raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, maxBytes)
	}
	// encoding/json matches field names case-insensitively; the API does not.
	if field := inexactField(raw.Bytes()[:dec.InputOffset()], reflect.TypeOf(dst), ""); field != "" {
		return invalid(field, fmt.Sprintf("unknown field %q (field names are case-sensitive)", field), nil)
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

// inexactField returns the dotted path of the first object key in raw
// that names a field of t only up to case, or "".
func inexactField(raw []byte, t reflect.Type, path string) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return ""
		}
		for _, item := range items {
			if f := inexactField(item, t.Elem(), path); f != "" {
				return f
			}
		}
	case reflect.Struct:
		// Keys in document order, so the first offending one is named.
		dec := json.NewDecoder(bytes.NewReader(raw))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return ""
		}
		fields := jsonFields(t)
		for dec.More() {
			tok, err := dec.Token()
			key, isKey := tok.(string)
			var v json.RawMessage
			if err != nil || !isKey || dec.Decode(&v) != nil {
				return ""
			}
			ft, ok := fields[key]
			if !ok {
				return path + key
			}
			if f := inexactField(v, ft, path+key+"."); f != "" {
				return f
			}
		}
	}
	return ""
}

// jsonFields maps the JSON names of t's fields (embedded structs' too) to
// their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, taken := out[k]; !taken {
						out[k] = v
					}
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
