package gateway_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reactorgo/reactor/gateway"
)

type createReq struct {
	Title    string   `json:"title"`
	Leader   string   `json:"leader"`
	Capacity int      `json:"capacity,omitempty"`
	Deck     []string `json:"deck,omitempty"`
	Opts     struct {
		Public bool `json:"public"`
	} `json:"opts"`
}

func request(ct, body string) *http.Request {
	r := httptest.NewRequest("POST", "/api/rooms", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

func TestDecodeJSON(t *testing.T) {
	const js = "application/json"
	tests := []struct {
		name, ct, body string
		max            int64
		status         int // 0: success
		code, field    string
	}{
		{"ok", js, `{"title":"Sprint 1","leader":"ann","capacity":5}`, 0, 0, "", ""},
		{"ok charset", "application/json; charset=UTF-8", `{"title":"t"}`, 0, 0, "", ""},
		{"ok trailing space", js, "{\"title\":\"t\"}\n  \n", 0, 0, "", ""},
		{"no content type", "", `{}`, 0, 415, "unsupported_media_type", ""},
		{"text/plain", "text/plain", `{}`, 0, 415, "unsupported_media_type", ""},
		{"latin1", "application/json; charset=latin1", `{}`, 0, 415, "unsupported_media_type", ""},
		{"bad media type", "application/", `{}`, 0, 415, "unsupported_media_type", ""},
		{"empty", js, ``, 0, 400, "invalid_body", ""},
		{"truncated", js, `{"title":`, 0, 400, "invalid_body", ""},
		{"syntax", js, `{"title" "x"}`, 0, 400, "invalid_body", ""},
		{"unknown field", js, `{"title":"t","admin":true}`, 0, 400, "invalid_body", "admin"},
		{"wrong type", js, `{"capacity":"five"}`, 0, 400, "invalid_body", "capacity"},
		{"nested wrong type", js, `{"opts":{"public":"yes"}}`, 0, 400, "invalid_body", "opts.public"},
		{"array elem type", js, `{"deck":["1",2]}`, 0, 400, "invalid_body", "deck"},
		{"not an object", js, `[1,2]`, 0, 400, "invalid_body", ""},
		{"trailing value", js, `{"title":"t"}{"title":"u"}`, 0, 400, "invalid_body", ""},
		{"trailing garbage", js, `{"title":"t"} x`, 0, 400, "invalid_body", ""},
		{"too large", js, `{"title":"` + strings.Repeat("a", 100) + `"}`, 64, 413, "body_too_large", ""},
		{"too large default", js, `{"title":"` + strings.Repeat("a", gateway.DefaultMaxBodyBytes) + `"}`, 0, 413, "body_too_large", ""},
		{"too large in trailer", js, `{"title":"t"}` + strings.Repeat(" ", 100) + "1", 64, 413, "body_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst createReq
			rec := httptest.NewRecorder()
			err := gateway.DecodeJSON(rec, request(tt.ct, tt.body), &dst, tt.max)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("DecodeJSON: %v", err)
				}
				return
			}
			var be *gateway.BodyError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v (%T), want *BodyError", err, err)
			}
			if be.Status != tt.status || be.Code != tt.code || be.Field != tt.field {
				t.Errorf("got %d %s field %q (%s), want %d %s field %q", be.Status, be.Code, be.Field, be.Msg, tt.status, tt.code, tt.field)
			}
			if tt.field != "" && !strings.Contains(be.Error(), tt.field) {
				t.Errorf("message %q does not name field %q", be.Error(), tt.field)
			}
			gateway.WriteError(rec, err)
			if rec.Code != tt.status {
				t.Errorf("WriteError status = %d, want %d", rec.Code, tt.status)
			}
			if b := decodeBody(t, rec); b.Error != tt.code || b.Message != be.Msg {
				t.Errorf("body = %+v", b)
			}
		})
	}
}

func TestDecodeJSONNilPointer(t *testing.T) {
	var dst *createReq // not addressable: the server's fault, not the client's
	err := gateway.DecodeJSON(httptest.NewRecorder(), request("application/json", `{}`), dst, 0)
	var be *gateway.BodyError
	if !errors.As(err, &be) || be.Status != 500 {
		t.Fatalf("err = %v, want a 500 BodyError", err)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"title":"t","leader":"l","capacity":3,"deck":["1","2"]}`,
		`{"title":`, `[]`, `null`, `{"x":1}`, `{"capacity":1e999}`, `{} {}`, `"\ud800"`, "",
		`{"opts":{"public":true}}`, `{"deck":[` + strings.Repeat(`"1",`, 50) + `"2"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst createReq
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		err := gateway.DecodeJSON(rec, r, &dst, 256)
		if err == nil {
			if len(body) > 256 {
				t.Fatalf("accepted a %d byte body over the 256 byte limit", len(body))
			}
			return
		}
		var be *gateway.BodyError
		if !errors.As(err, &be) {
			t.Fatalf("err %v is %T, want *BodyError", err, err)
		}
		switch be.Status {
		case 400:
			if be.Code != "invalid_body" {
				t.Fatalf("400 with code %q", be.Code)
			}
		case 413:
			if len(body) <= 256 {
				t.Fatalf("413 for a %d byte body", len(body))
			}
		default:
			t.Fatalf("unexpected status %d (%v)", be.Status, err)
		}
		if be.Msg == "" {
			t.Fatal("empty message")
		}
		gateway.WriteError(rec, err)
		if rec.Code != be.Status {
			t.Fatalf("WriteError wrote %d, want %d", rec.Code, be.Status)
		}
	})
}
