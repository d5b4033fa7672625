package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// get sends GET path with extra headers (a forwarding header makes the
// request look like it came through a proxy).
func (e *env) get(path string, hdr ...string) resp {
	e.t.Helper()
	return e.do("GET", path, "", nil, hdr...)
}

var adminPaths = []string{"/status", "/status.json", "/metrics", "/debug/pprof/"}

// TestConfigAndPublicURL: GET /api/config tells the UI the public URL its
// invite links are built from (without a trailing slash) and the
// countdown's bounds; a bad public URL is refused at start.
func TestConfigAndPublicURL(t *testing.T) {
	e := newEnv(t, server.Config{PublicURL: "https://poker.example.com/"})
	r := e.get("/api/config")
	if r.Status != 200 || string(r.Body) != `{"publicUrl":"https://poker.example.com","timerMin":5,"timerMax":3600}`+"\n" &&
		string(r.Body) != `{"publicUrl":"https://poker.example.com","timerMin":5,"timerMax":3600}` {
		t.Fatalf("config: %d %s", r.Status, r.Body)
	}
	if r := newEnv(t, server.Config{}).get("/api/config"); !strings.Contains(string(r.Body), `"publicUrl":""`) {
		t.Fatalf("config without a public URL: %s", r.Body)
	}
	for _, bad := range []string{"poker.example.com", "ftp://x", "https://", "https://x/?a=b", "https://u:p@x", "https://x/#f"} {
		srv, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), PublicURL: bad,
			Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			srv.Close(context.Background())
			t.Errorf("public URL %q accepted", bad)
		} else if !strings.Contains(err.Error(), "PublicURL") {
			t.Errorf("public URL %q: %v", bad, err)
		}
	}
	for in, want := range map[string]string{"": "", "http://10.0.0.5:8080/": "http://10.0.0.5:8080", "https://x.example/poker/": "https://x.example/poker"} {
		if got, err := server.ValidatePublicURL(in); err != nil || got != want {
			t.Errorf("ValidatePublicURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), Admin: "everyone"}); err == nil {
		t.Error("an unknown Admin setting was accepted")
	}
}

// TestAdminEndpoints: the operator pages answer loopback clients only by
// default — a request that came through a proxy (a forwarding header) is
// remote — every client with AdminPublic, nobody on the public handler
// with AdminOff (they move to AdminHandler, a listener of their own). The
// UI, the API and /healthz stay public.
func TestAdminEndpoints(t *testing.T) {
	e := newEnv(t, server.Config{})
	for _, p := range adminPaths {
		if r := e.get(p); r.Status != 200 {
			t.Errorf("%s from loopback: %d", p, r.Status)
		}
		for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"} {
			r := e.get(p, h, "203.0.113.9")
			if r.Status != 403 || r.code(t) != "forbidden" || !strings.Contains(string(r.Body), "admin-addr") {
				t.Errorf("%s through a proxy (%s): %d %s", p, h, r.Status, r.Body)
			}
		}
	}
	for _, p := range []string{"/", "/healthz", "/api/config"} {
		if r := e.get(p, "X-Forwarded-For", "203.0.113.9"); r.Status != 200 {
			t.Errorf("%s through a proxy: %d", p, r.Status)
		}
	}

	pub := newEnv(t, server.Config{Admin: server.AdminPublic})
	for _, p := range adminPaths {
		if r := pub.get(p, "X-Forwarded-For", "203.0.113.9"); r.Status != 200 {
			t.Errorf("AdminPublic %s through a proxy: %d", p, r.Status)
		}
	}

	off := newEnv(t, server.Config{Admin: server.AdminOff})
	for _, p := range adminPaths {
		if r := off.get(p); r.Status != 404 {
			t.Errorf("AdminOff %s on the public handler: %d", p, r.Status)
		}
	}
	admin := httptest.NewServer(off.srv.AdminHandler())
	defer admin.Close()
	ae := &env{t: t, url: admin.URL}
	for _, p := range adminPaths {
		if r := ae.get(p, "X-Forwarded-For", "203.0.113.9"); r.Status != 200 {
			t.Errorf("admin handler %s: %d", p, r.Status)
		}
	}
	if r := ae.get("/status"); !strings.Contains(string(r.Body), "Planning poker — status") {
		t.Errorf("admin /status: %s", r.Body)
	}
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 302 || res.Header.Get("Location") != "/status" {
		t.Errorf("admin /: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestOperatorFigures: /metrics carries open rooms, connected members,
// checkpoint age, saves and failures and the journal's bytes on disk;
// /status.json the totals, version, data dir, disk use and last
// checkpoint; /status says "1 room", not "1 rooms".
func TestOperatorFigures(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, server.Config{DataDir: dir, CheckpointInterval: 100 * time.Millisecond, Version: "v9.9.9-test"})
	c := e.create("ann", nil)
	s := e.stream(c.Room, c.Token, "")
	s.expect("snapshot")
	e.accept("POST", "/api/rooms/"+c.Room+"/session", c.Token, `{"story":"A"}`)

	metric := func(body, name string) (float64, bool) {
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				var f float64
				if err := json.Unmarshal([]byte(v), &f); err == nil {
					return f, true
				}
				if v == "+Inf" || v == "NaN" {
					return 0, false
				}
			}
		}
		return 0, false
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		body = string(e.get("/metrics").Body)
		if _, ok := metric(body, "reactor_checkpoint_age_seconds"); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := map[string]func(float64) bool{
		"poker_rooms_open":                  func(v float64) bool { return v == 1 },
		"poker_members_connected":           func(v float64) bool { return v == 1 },
		"reactor_checkpoint_age_seconds":    func(v float64) bool { return v >= 0 && v < 60 },
		"reactor_checkpoint_saves_total":    func(v float64) bool { return v >= 1 },
		"reactor_checkpoint_failures_total": func(v float64) bool { return v == 0 },
		"reactor_journal_disk_bytes":        func(v float64) bool { return v > 0 },
		"reactor_checkpoint_last_success_timestamp_seconds": func(v float64) bool {
			return v > float64(time.Now().Add(-time.Minute).Unix())
		},
	}
	for name, ok := range want {
		if v, found := metric(body, name); !found || !ok(v) {
			t.Errorf("metric %s = %v (found %v)", name, v, found)
		}
	}

	var st struct {
		Version              string   `json:"version"`
		DataDir              string   `json:"dataDir"`
		DiskBytes            int64    `json:"diskBytes"`
		JournalDiskBytes     int64    `json:"journalDiskBytes"`
		LastCheckpoint       *string  `json:"lastCheckpoint"`
		CheckpointAgeSeconds *float64 `json:"checkpointAgeSeconds"`
		RoomsOpen            int      `json:"roomsOpen"`
		MembersConnected     int      `json:"membersConnected"`
		RoomsCreated         uint64   `json:"roomsCreated"`
		Requests             uint64   `json:"requests"`
		Problems             []string `json:"problems"`
		Samples              []any    `json:"samples"`
	}
	e.get("/status.json").json(t, &st)
	if st.Version != "v9.9.9-test" || st.DataDir != dir || st.JournalDiskBytes <= 0 || st.LastCheckpoint == nil ||
		st.CheckpointAgeSeconds == nil || st.RoomsOpen != 1 || st.MembersConnected != 1 || st.RoomsCreated != 1 ||
		st.Requests < 2 || st.Problems == nil || len(st.Samples) == 0 {
		t.Errorf("status.json %+v", st)
	}
	page := string(e.get("/status").Body)
	for _, w := range []string{"v9.9.9-test", dir, ">1 room<", ">1 member ·", "Last checkpoint", "Disk use"} {
		if !strings.Contains(page, w) {
			t.Errorf("status page lacks %q", w)
		}
	}
	if strings.Contains(page, "1 rooms") {
		t.Error(`status page says "1 rooms"`)
	}
}

// TestNotFoundPage: an unknown path gets a page that leads back to the
// start (404), with the UI's security headers; unknown API paths keep
// their JSON 404 and known paths with another method their 405.
func TestNotFoundPage(t *testing.T) {
	e := newEnv(t, server.Config{})
	r := e.get("/r/abc/extra")
	if r.Status != 404 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(r.Body), "Page not found") || !strings.Contains(string(r.Body), `href="/"`) ||
		!strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("unknown page: %d %v %s", r.Status, r.Header, r.Body)
	}
	if r := e.get("/nothing-here"); r.Status != 404 || !strings.Contains(string(r.Body), "Page not found") {
		t.Fatalf("unknown page: %d %s", r.Status, r.Body)
	}
	if r := e.get("/api/nothing"); r.Status != 404 || r.code(t) != "not_found" {
		t.Fatalf("unknown API path: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/", "", `{}`); r.Status != 405 || !strings.Contains(r.Header.Get("Allow"), "GET") {
		t.Fatalf("POST /: %d %v", r.Status, r.Header)
	}
	if r := e.do("DELETE", "/nothing-here", "", nil); r.Status != 404 || r.code(t) != "not_found" {
		t.Fatalf("DELETE of an unknown path: %d %s", r.Status, r.Body)
	}
}
