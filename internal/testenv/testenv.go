// Package testenv decides whether an integration test that needs a real
// server (PostgreSQL, Redis, NATS) or a browser runs, skips, or fails.
//
// On a developer's bare machine a missing dependency skips the test with a
// message saying what to start. With REACTOR_REQUIRE_SERVICES=1 (set by
// .ci/run) a missing dependency fails the test instead, so CI never passes
// by skipping.
package testenv

import (
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Required reports whether missing dependencies must fail tests.
func Required() bool { return os.Getenv("REACTOR_REQUIRE_SERVICES") == "1" }

// Missing skips t, or fails it when dependencies are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required by REACTOR_REQUIRE_SERVICES=1: "+format, args...)
	}
	t.Skipf(format, args...)
}

// TCP checks that something listens on addr, or skips/fails t.
func TCP(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Missing(t, "%s not reachable at %s (%v): start it to run this test", name, addr, err)
		return
	}
	c.Close()
}

// PostgresDSN returns the DSN of the test database (REACTOR_TEST_POSTGRES,
// default postgres://postgres@127.0.0.1:5432/test), after checking the
// server listens.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("REACTOR_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	TCP(t, "PostgreSQL", "127.0.0.1:5432")
	return dsn
}

// RedisURL returns the URL of the test Redis (REACTOR_TEST_REDIS, default
// redis://127.0.0.1:6379/0), after checking the server listens.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REACTOR_TEST_REDIS")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		t.Fatalf("REACTOR_TEST_REDIS %q: not a redis:// URL (%v)", u, err)
	}
	addr := pu.Host
	if pu.Port() == "" {
		addr = net.JoinHostPort(pu.Hostname(), "6379")
	}
	TCP(t, "Redis (REACTOR_TEST_REDIS)", addr)
	return u
}

// Chromium returns the path of a Chromium binary (REACTOR_TEST_CHROMIUM, or
// chromium / chromium-browser / google-chrome on PATH), or skips/fails t.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("REACTOR_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, "no Chromium found: apt-get install -y chromium to run browser tests")
	return ""
}
