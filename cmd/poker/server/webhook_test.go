package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// receiver is a webhook endpoint on loopback that answers fail for the
// first `failures` attempts (forever if negative), then 204.
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	failures int
	fail     int
	hits     []hit
	got      chan hit
}

type hit struct {
	at     time.Time
	status int
	body   []byte
	header http.Header
}

func newReceiver(t *testing.T, failures, fail int) *receiver {
	rc := &receiver{t: t, failures: failures, fail: fail, got: make(chan hit, 64)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		status := http.StatusNoContent
		if rc.failures < 0 || len(rc.hits) < rc.failures {
			status = rc.fail
		}
		h := hit{at: time.Now(), status: status, body: b, header: r.Header.Clone()}
		rc.hits = append(rc.hits, h)
		rc.mu.Unlock()
		w.WriteHeader(status)
		rc.got <- h
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// next waits for the next attempt.
func (rc *receiver) next(within time.Duration) hit {
	rc.t.Helper()
	select {
	case h := <-rc.got:
		return h
	case <-time.After(within):
		rc.t.Fatalf("no webhook attempt within %v", within)
	}
	return hit{}
}

func verifySignature(t *testing.T, secret string, h hit) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(h.body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := h.header.Get("X-Poker-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("signature %q, want %q", got, want)
	}
}

type hookCreds struct {
	creds
	WebhookSecret string `json:"webhookSecret"`
}

// createWithHook creates a room delivering to url and plays one round:
// ann (leader) votes 3, bob votes 5.
func createWithHook(t *testing.T, e *env, url string) (hookCreds, creds) {
	t.Helper()
	r := e.do("POST", "/api/rooms", "", map[string]any{"title": "Sprint 42", "leader": "ann", "webhook": url})
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var c hookCreds
	r.json(t, &c)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c.WebhookSecret) {
		t.Fatalf("webhookSecret %q", c.WebhookSecret)
	}
	bob := e.join(c.Room, "bob")
	base := "/api/rooms/" + c.Room
	e.accept("POST", base+"/session", c.Token, map[string]string{"story": "Login page"})
	e.accept("POST", base+"/votes", c.Token, map[string]string{"value": "3"})
	e.accept("POST", base+"/votes", bob.Token, map[string]string{"value": "5"})
	e.accept("POST", base+"/session/finish", c.Token, nil)
	return c, bob
}

// TestWebhookRetriedUntilDelivered: a receiver failing the first three
// attempts gets the same signed payload four times; the fourth succeeds,
// and then nothing more comes.
func TestWebhookRetriedUntilDelivered(t *testing.T) {
	rc := newReceiver(t, 3, http.StatusInternalServerError)
	e := newEnv(t, server.Config{WebhookAllowPrivate: true, WebhookBackoffMax: 100 * time.Millisecond})
	c, bob := createWithHook(t, e, rc.srv.URL+"/hooks/poker?x=1")

	var first hit
	for i := range 4 {
		h := rc.next(10 * time.Second)
		verifySignature(t, c.WebhookSecret, h)
		if i == 0 {
			first = h
		} else if string(h.body) != string(first.body) || h.header.Get("X-Poker-Delivery") != first.header.Get("X-Poker-Delivery") {
			t.Fatalf("attempt %d differs: %s %s, first %s %s", i+1, h.body, h.header.Get("X-Poker-Delivery"), first.body, first.header.Get("X-Poker-Delivery"))
		}
		if ct := h.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	var p struct {
		Room       string            `json:"room"`
		Title      string            `json:"title"`
		Round      int               `json:"round"`
		Story      string            `json:"story"`
		Votes      map[string]string `json:"votes"`
		Names      map[string]string `json:"names"`
		Stats      map[string]any    `json:"stats"`
		FinishedAt time.Time         `json:"finishedAt"`
	}
	if err := json.Unmarshal(first.body, &p); err != nil {
		t.Fatalf("payload %s: %v", first.body, err)
	}
	if p.Room != c.Room || p.Title != "Sprint 42" || p.Story != "Login page" || p.Round != 1 {
		t.Fatalf("payload %s", first.body)
	}
	if p.Votes[c.Member] != "3" || p.Votes[bob.Member] != "5" || len(p.Votes) != 2 {
		t.Fatalf("votes %v", p.Votes)
	}
	if p.Names[c.Member] != "ann" || p.Names[bob.Member] != "bob" {
		t.Fatalf("names %v", p.Names)
	}
	if p.Stats["votes"] != 2.0 || p.Stats["average"] != 4.0 || p.Stats["consensus"] != false {
		t.Fatalf("stats %v", p.Stats)
	}
	if p.FinishedAt.IsZero() || time.Since(p.FinishedAt) > time.Minute {
		t.Fatalf("finishedAt %v", p.FinishedAt)
	}
	waitMetric(t, e, "poker_webhook_delivered_total 1")
	select {
	case h := <-rc.got:
		t.Fatalf("an attempt after the delivery succeeded: %d", h.status)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestWebhookFirstRetryWithin5s: with the default policy, the attempt
// after a failure comes within 5 s.
func TestWebhookFirstRetryWithin5s(t *testing.T) {
	rc := newReceiver(t, 1, http.StatusServiceUnavailable)
	e := newEnv(t, server.Config{WebhookAllowPrivate: true})
	c, _ := createWithHook(t, e, rc.srv.URL)
	a := rc.next(10 * time.Second)
	b := rc.next(6 * time.Second)
	if gap := b.at.Sub(a.at); gap > 5*time.Second {
		t.Fatalf("first retry after %v", gap)
	}
	if a.status != http.StatusServiceUnavailable || b.status != http.StatusNoContent {
		t.Fatalf("statuses %d %d", a.status, b.status)
	}
	verifySignature(t, c.WebhookSecret, b)
}

// TestWebhookDeadLetteredOnStatus: a receiver that always fails gets
// exactly WebhookAttempts attempts; the delivery is then dead, counted on
// /metrics and listed on /status (host, room prefix, last error — not the
// URL's path or the secret).
func TestWebhookDeadLetteredOnStatus(t *testing.T) {
	rc := newReceiver(t, -1, http.StatusBadGateway)
	e := newEnv(t, server.Config{WebhookAllowPrivate: true, WebhookAttempts: 5, WebhookBackoffMax: 50 * time.Millisecond})
	c, _ := createWithHook(t, e, rc.srv.URL+"/secret-path-token")
	for range 5 {
		rc.next(10 * time.Second)
	}
	waitMetric(t, e, "poker_webhook_dead_letters 1")
	body := string(e.do("GET", "/status", "", nil).Body)
	for _, want := range []string{`data-testid="status-webhook-dead"`, c.Room[:6] + "…", strings.TrimPrefix(rc.srv.URL, "http://"), "502 Bad Gateway"} {
		if !strings.Contains(body, want) {
			t.Fatalf("/status lacks %q:\n%s", want, body)
		}
	}
	for _, secret := range []string{c.Room, "secret-path-token", c.WebhookSecret} {
		if strings.Contains(body, secret) {
			t.Fatalf("/status shows %q", secret)
		}
	}
	m := string(e.do("GET", "/metrics", "", nil).Body)
	for _, want := range []string{`poker_webhook_deliveries{state="dead"} 1`, "poker_webhook_failed_attempts_total 5", `poker_webhook_attempts_total{result="error"} 5`} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	select {
	case <-rc.got:
		t.Fatal("an attempt after the last one")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestWebhookSSRFRefused: without WebhookAllowPrivate a webhook to a
// loopback, private, link-local or unspecified address, to a name that
// resolves to one, or with another scheme, is refused with 400 and no
// room is created; a public address is accepted.
func TestWebhookSSRFRefused(t *testing.T) {
	e := newEnv(t, server.Config{})
	for _, u := range []string{
		"http://127.0.0.1:8080/hook",
		"https://10.1.2.3/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:9000/",
		"http://localhost/hook",
		"http://LOCALHOST./hook",
		"ftp://example.com/hook",
		"javascript:alert(1)",
		"http://0.0.0.0/",
		"http://[::ffff:127.0.0.1]/",
		"http://192.168.0.10/",
		"http://172.16.0.1/",
		"http://100.64.0.1/",
		"http://[fd00::1]/",
		"http://[fe80::1]/",
		"http:///nohost",
		"http://example.com:99999/",
		"/relative/path",
	} {
		r := e.do("POST", "/api/rooms", "", map[string]any{"title": "T", "leader": "ann", "webhook": u})
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", u, r.Status, r.Body)
			continue
		}
		var b struct{ Error, Field string }
		r.json(t, &b)
		if b.Field != "webhook" {
			t.Errorf("%s: %s", u, r.Body)
		}
	}
	if n := e.srv.Rooms().Known(); n != 0 {
		t.Fatalf("%d rooms created by refused requests", n)
	}
	// A public address literal needs no DNS to be judged.
	r := e.do("POST", "/api/rooms", "", map[string]any{"title": "T", "leader": "ann", "webhook": "https://93.184.215.14/hook"})
	if r.Status != http.StatusCreated {
		t.Fatalf("public webhook: %d %s", r.Status, r.Body)
	}
	// A room without a webhook answers no secret.
	r = e.do("POST", "/api/rooms", "", map[string]any{"title": "T", "leader": "ann"})
	if r.Status != http.StatusCreated || strings.Contains(string(r.Body), "webhookSecret") {
		t.Fatalf("plain create: %d %s", r.Status, r.Body)
	}
}

// TestWebhookAllowPrivate: with the flag, loopback is accepted.
func TestWebhookAllowPrivate(t *testing.T) {
	e := newEnv(t, server.Config{WebhookAllowPrivate: true})
	r := e.do("POST", "/api/rooms", "", map[string]any{"title": "T", "leader": "ann", "webhook": "http://127.0.0.1:1/x"})
	if r.Status != http.StatusCreated {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	r = e.do("POST", "/api/rooms", "", map[string]any{"title": "T", "leader": "ann", "webhook": "ftp://127.0.0.1/x"})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("ftp with allow-private: %d %s", r.Status, r.Body)
	}
}

// TestWebhookSurvivesRestart: a delivery still failing when the server
// closes is delivered by the next server on the same data directory (the
// kill -9 variant runs the binary: cmd/poker TestWebhookPendingAtKill9).
func TestWebhookSurvivesRestart(t *testing.T) {
	rc := newReceiver(t, 1_000_000, http.StatusInternalServerError)
	data := t.TempDir()
	cfg := server.Config{DataDir: data, WebhookAllowPrivate: true, WebhookBackoffMax: 200 * time.Millisecond}
	e := newEnv(t, cfg)
	c, _ := createWithHook(t, e, rc.srv.URL)
	rc.next(10 * time.Second)
	e.close()
	rc.mu.Lock()
	rc.failures = 0
	rc.mu.Unlock()
	drain(rc)
	newEnv(t, cfg)
	for {
		h := rc.next(20 * time.Second)
		if h.status == http.StatusNoContent {
			verifySignature(t, c.WebhookSecret, h)
			return
		}
	}
}

func drain(rc *receiver) {
	for {
		select {
		case <-rc.got:
		default:
			return
		}
	}
}

// waitMetric waits until /metrics has the line.
func waitMetric(t *testing.T, e *env, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := string(e.do("GET", "/metrics", "", nil).Body)
		if strings.Contains(m, "\n"+line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never had %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
