package gateway_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/gateway"
)

func TestLogLimiter(t *testing.T) {
	l := &gateway.LogLimiter{Every: 50 * time.Millisecond}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("first line suppressed")
	}
	for range 100 {
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("a line within the interval passed")
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was limited by the first")
	}
	time.Sleep(60 * time.Millisecond)
	if ok, n := l.Allow("a"); !ok || n != 100 {
		t.Fatalf("after the interval: %v, %d suppressed", ok, n)
	}
}

// TestUnhandledErrorFloodLogsLittle: a flood of 500s — panics included —
// logs a few lines, one stack trace per panic site.
func TestUnhandledErrorFloodLogsLittle(t *testing.T) {
	var buf bytes.Buffer
	m := &gateway.ErrorMapper{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	pe := &reactor.PanicError{Service: "/flood", Method: "m", Value: "boom", Stack: []byte("goroutine 1 [running]:\nstack-marker")}
	for range 10_000 {
		m.WriteError(httptest.NewRecorder(), pe)
		m.WriteError(httptest.NewRecorder(), errors.New("flood: something unexpected"))
	}
	if n := strings.Count(buf.String(), "\n"); n > 6 {
		t.Fatalf("20,000 errors logged %d lines", n)
	}
	if n := strings.Count(buf.String(), "stack-marker"); n != 1 {
		t.Fatalf("%d stack traces", n)
	}
}
