package main_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhookPendingAtKill9: a round finished (202) whose webhook delivery
// is still being retried when the server is killed with SIGKILL is
// delivered, signed, by the server restarted on the same -data.
func TestWebhookPendingAtKill9(t *testing.T) {
	var healthy atomic.Bool
	type delivery struct {
		body []byte
		sig  string
	}
	failed := make(chan struct{}, 64)
	delivered := make(chan delivery, 64)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			failed <- struct{}{}
			return
		}
		w.WriteHeader(http.StatusOK)
		delivered <- delivery{b, r.Header.Get("X-Poker-Signature")}
	}))
	defer rcv.Close()

	bin := buildPoker(t)
	data := t.TempDir()
	flags := []string{"-webhook-allow-private", "-webhook-max-backoff", "300ms"}
	p := startPoker(t, bin, data, flags...)
	c := p.must(t, 201, "POST", "/api/rooms", "", map[string]any{"title": "Sprint", "leader": "ann", "webhook": rcv.URL + "/hook"})
	room, ann, secret := c["room"].(string), c["token"].(string), c["webhookSecret"].(string)
	base := "/api/rooms/" + room
	p.must(t, 202, "POST", base+"/session", ann, map[string]any{"story": "Checkout"})
	p.must(t, 202, "POST", base+"/votes", ann, map[string]any{"value": "8"})
	p.must(t, 202, "POST", base+"/session/finish", ann, nil)
	for range 2 { // the delivery is retried: it is in the queue, pending
		select {
		case <-failed:
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery attempt")
		}
	}
	p.kill9()
	healthy.Store(true)
	p = startPoker(t, bin, data, flags...)
	select {
	case d := <-delivered:
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(d.body)
		if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); d.sig != want {
			t.Fatalf("signature %q, want %q", d.sig, want)
		}
		var payload struct {
			Room, Story string
			Votes       map[string]string
		}
		if err := json.Unmarshal(d.body, &payload); err != nil || payload.Room != room || payload.Story != "Checkout" || len(payload.Votes) != 1 {
			t.Fatalf("payload %s: %v", d.body, err)
		}
	case <-time.After(40 * time.Second): // a lease taken just before the kill expires first (15s)
		t.Fatalf("not delivered after the restart:\n%s", p.log.String())
	}
}
