package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/journal"
)

type conflictErr struct{}

func (conflictErr) Error() string             { return "name is taken" }
func (conflictErr) HTTPStatus() (int, string) { return http.StatusConflict, "name_taken" }

var errRoomFull = errors.New("poker: room is full")

func decodeBody(t *testing.T, rec *httptest.ResponseRecorder) gateway.ErrorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q", ct)
	}
	var b gateway.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return b
}

// drainBusy is a full queue that knows how long it takes to drain.
type drainBusy struct{ wait time.Duration }

func (d drainBusy) Error() string             { return "queue full" }
func (d drainBusy) Unwrap() error             { return reactor.ErrBusy }
func (d drainBusy) RetryAfter() time.Duration { return d.wait }

func TestWriteError(t *testing.T) {
	tests := []struct {
		err        error
		status     int
		code       string
		retryAfter string
		msgHas     string
	}{
		{fmt.Errorf("send /rooms/1 room.join: %w", reactor.ErrBusy), 503, "busy", "1", "busy"},
		{fmt.Errorf("call: %w", reactor.ErrClosed), 503, "shutting_down", "1", "shutting down"},
		{fmt.Errorf("enqueue: %w", drainBusy{wait: 2500 * time.Millisecond}), 503, "busy", "3", "busy"},
		{fmt.Errorf("call /rooms/x: %w", reactor.ErrNoService), 404, "not_found", "", "not found"},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), 504, "timeout", "", "timed out"},
		{fmt.Errorf("wrapped: %w", conflictErr{}), 409, "name_taken", "", "name is taken"},
		{errors.New("db password=hunter2 failed"), 500, "internal", "", "internal server error"},
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			rec := httptest.NewRecorder()
			gateway.WriteError(rec, tt.err)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			b := decodeBody(t, rec)
			if b.Error != tt.code || !strings.Contains(b.Message, tt.msgHas) {
				t.Errorf("body = %+v, want code %q, message containing %q", b, tt.code, tt.msgHas)
			}
			if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "reactor:") {
				t.Errorf("body leaks internals: %s", rec.Body)
			}
		})
	}
}

func TestErrorMapper(t *testing.T) {
	var m gateway.ErrorMapper
	m.Map(errRoomFull, http.StatusConflict, "room_full", "the room is full").
		Map(reactor.ErrBusy, http.StatusTooManyRequests, "slow_down", "")
	rec := httptest.NewRecorder()
	m.WriteError(rec, fmt.Errorf("call /rooms/42: %w", errRoomFull))
	if b := decodeBody(t, rec); rec.Code != 409 || b.Error != "room_full" || b.Message != "the room is full" {
		t.Errorf("got %d %+v", rec.Code, b)
	}
	// App rules come before the built-in ones; the default message is the target's text.
	rec = httptest.NewRecorder()
	m.WriteError(rec, fmt.Errorf("x: %w", reactor.ErrBusy))
	if b := decodeBody(t, rec); rec.Code != 429 || b.Error != "slow_down" || b.Message != reactor.ErrBusy.Error() {
		t.Errorf("got %d %+v", rec.Code, b)
	}
	// Unmapped errors fall through to the built-ins.
	rec = httptest.NewRecorder()
	m.WriteError(rec, reactor.ErrNoService)
	if rec.Code != 404 {
		t.Errorf("status = %d, want 404", rec.Code)
	}
}

func TestJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	gateway.JSON(rec, http.StatusCreated, map[string]string{"room": "r1"})
	if rec.Code != 201 || strings.TrimSpace(rec.Body.String()) != `{"room":"r1"}` {
		t.Errorf("got %d %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	gateway.JSON(rec, http.StatusOK, func() {}) // cannot be encoded
	if rec.Code != 500 || decodeBody(t, rec).Error != "internal" {
		t.Errorf("got %d %q", rec.Code, rec.Body)
	}
}

func TestSecureHeaders(t *testing.T) {
	h := gateway.SecureHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline: %q", csp)
	}
}

// TestStorageFailures: disk full, a failed journal and a corrupt checkpoint
// are 503s with their own codes and a longer Retry-After, not a 500.
func TestStorageFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("reactor: x not journaled: %w", &fs.PathError{Op: "write", Path: "j/1.wal", Err: syscall.ENOSPC}), "storage_full"},
		{fmt.Errorf("reactor: x not journaled: %w", journal.ErrFailed), "journal_failed"},
		{fmt.Errorf("reactor: load /rooms/x: %w: cp-x: bad crc", checkpoint.ErrCorrupt), "checkpoint_corrupt"},
	} {
		rec := httptest.NewRecorder()
		gateway.WriteError(rec, tc.err)
		b := decodeBody(t, rec)
		if rec.Code != http.StatusServiceUnavailable || b.Error != tc.code {
			t.Errorf("%v: %d %s, want 503 %s", tc.err, rec.Code, b.Error, tc.code)
		}
		if ra := rec.Header().Get("Retry-After"); ra != fmt.Sprint(gateway.RetryAfterStorageSeconds) {
			t.Errorf("%s: Retry-After %q", tc.code, ra)
		}
	}
}
