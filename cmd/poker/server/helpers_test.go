package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/reactortest"
)

type env struct {
	t   testing.TB
	srv *server.Server
	hs  *httptest.Server
	url string
}

func newEnv(t testing.TB, cfg server.Config) *env {
	t.Helper()
	if redisNodes > 0 {
		return newClusterEnv(t, cfg, redisNodes) // redis_test.go: the same test against nodes on Redis
	}
	if natsMatrix != nil {
		return natsMatrix.env(t, cfg) // cluster_test.go: the same test against nodes over NATS
	}
	cfg.SingleGoroutine = cfg.SingleGoroutine || singleGoroutine
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	return serveNode(t, cfg)
}

// serveNode starts a server (logging to testLogOut, aliasing checked) and
// serves it over HTTP, with the timeouts cmd/poker serves with, until t
// ends.
func serveNode(t testing.TB, cfg server.Config) *env {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testLogOut(t, cfg.Node), nil))
	}
	if cfg.CheckShared == nil {
		cfg.CheckShared = reactortest.NoAliasing(t)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = srv.HTTPServer()
	hs.Start()
	e := &env{t: t, srv: srv, hs: hs, url: hs.URL}
	t.Cleanup(e.close)
	return e
}

// testLogOut is where a node of t logs: stderr with REACTOR_TEST_LOG=1;
// otherwise a buffer whose last 32 KiB t prints if it fails, so that a
// failure in CI comes with the nodes' story (handoffs, takeovers, fences).
func testLogOut(t testing.TB, node string) io.Writer {
	if os.Getenv("REACTOR_TEST_LOG") == "1" {
		return os.Stderr
	}
	l := &tailLog{}
	t.Cleanup(func() {
		if t.Failed() {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Logf("log of node %q (last %d bytes):\n%s", node, len(l.buf), l.buf)
		}
	})
	return l
}

// tailLog keeps the last 32 KiB written to it.
type tailLog struct {
	mu  sync.Mutex
	buf []byte
}

func (l *tailLog) Write(p []byte) (int, error) {
	const keep = 32 << 10
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > keep {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-keep:]...)
	}
	return len(p), nil
}

func (e *env) close() {
	e.srv.CloseStreams()
	e.hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Close(ctx); err != nil {
		e.t.Errorf("close: %v", err)
	}
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r resp) code(t testing.TB) string {
	t.Helper()
	var b struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Field   string `json:"field"`
	}
	r.json(t, &b)
	if b.Message == "" {
		t.Errorf("error body without message: %s", r.Body)
	}
	return b.Error
}

// do sends a request with an optional JSON body (a string, bytes or a
// value to marshal), a bearer token when token is not empty, and extra
// headers given as name, value pairs.
func (e *env) do(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	default:
		j, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

type creds struct {
	Room   string `json:"room"`
	Member string `json:"member"`
	Token  string `json:"token"`
}

func (e *env) create(leader string, extra map[string]any) creds {
	e.t.Helper()
	body := map[string]any{"title": "Sprint 42", "leader": leader}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do("POST", "/api/rooms", "", body)
	if r.Status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var c creds
	r.json(e.t, &c)
	return c
}

func (e *env) join(room, name string) creds {
	e.t.Helper()
	r := e.do("POST", "/api/rooms/"+room+"/members", "", map[string]string{"name": name})
	if r.Status != http.StatusCreated {
		e.t.Fatalf("join %s: %d %s", name, r.Status, r.Body)
	}
	var c creds
	r.json(e.t, &c)
	c.Room = room
	return c
}

func (e *env) accept(method, path, token string, body any) {
	e.t.Helper()
	if r := e.do(method, path, token, body); r.Status != http.StatusAccepted {
		e.t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
	}
}

type event struct {
	ID   string
	Type string
	Data string
}

// stream is an SSE client reading events on a goroutine.
type stream struct {
	t      testing.TB
	res    *http.Response
	events chan event
	cancel context.CancelFunc
}

func (e *env) stream(room, token, lastID string) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/api/rooms/"+room+"/events?token="+token, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		e.t.Fatalf("events: %d %s", res.StatusCode, b)
	}
	s := &stream{t: e.t, res: res, events: make(chan event, 1024), cancel: cancel}
	go s.read()
	e.t.Cleanup(s.close)
	return s
}

func (s *stream) close() { s.cancel(); s.res.Body.Close() }

func (s *stream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Type != "" || ev.Data != "" {
				s.events <- ev
			}
			ev = event{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Type = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data += line[6:]
		}
	}
}

// next returns the next event, failing after a timeout.
func (s *stream) next() event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		s.t.Fatal("no event within 5s")
	}
	return event{}
}

// expect reads the next event and checks its type.
func (s *stream) expect(typ string) event {
	s.t.Helper()
	ev := s.next()
	if ev.Type != typ {
		s.t.Fatalf("got event %s %s, want %s", ev.Type, ev.Data, typ)
	}
	return ev
}

// quiet checks no event arrives for d.
func (s *stream) quiet(d time.Duration) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			s.t.Fatalf("unexpected event %s %s", ev.Type, ev.Data)
		}
	case <-time.After(d):
	}
}

// ended waits for the stream to end.
func (s *stream) ended() bool {
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return true
			}
		case <-time.After(5 * time.Second):
			return false
		}
	}
}

// acrossNodes drives one room through three nodes of a multi-server
// deployment: created through a, a stream on b sees what is done through
// a, a stream on c resumes from a Last-Event-ID the b stream saw, and a
// keyed vote retried through b is answered 202 and not applied again (no
// second event on c). It returns the leader's credentials and the open
// stream on c.
func acrossNodes(t *testing.T, a, b, c *env) (creds, *stream) {
	t.Helper()
	ann := a.create("ann", map[string]any{"capacity": 6})
	base := "/api/rooms/" + ann.Room
	sb := b.stream(ann.Room, ann.Token, "")
	if ev := sb.expect("snapshot"); ev.ID != "1" {
		t.Fatalf("snapshot on b: id %s", ev.ID)
	}
	bob := a.join(ann.Room, "bob")
	ev := sb.expect("member_joined")
	a.accept("POST", base+"/session", ann.Token, `{"story":"S"}`)
	sb.expect("session_started")
	sb.expect("round_started")
	sb.close()
	if code := a.postKeyed(base+"/votes", bob.Token, "v1", `{"value":"5"}`); code != 202 {
		t.Fatalf("vote: %d", code)
	}
	sc := c.stream(ann.Room, ann.Token, ev.ID)
	sc.expect("session_started")
	sc.expect("round_started")
	sc.expect("vote_cast")
	if code := b.postKeyed(base+"/votes", bob.Token, "v1", `{"value":"5"}`); code != 202 {
		t.Fatalf("retried vote through b: %d", code)
	}
	sc.quiet(300 * time.Millisecond)
	return ann, sc
}
