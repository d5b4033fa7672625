package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// FuzzAPIBodies sends arbitrary bodies to every endpoint that decodes one:
// the answer must be a documented status with a JSON error body, never a
// 500 or a panic.
func FuzzAPIBodies(f *testing.F) {
	for _, s := range []string{
		`{"title":"Sprint 42","leader":"ann","capacity":12,"deck":["1","2","3"]}`,
		`{"name":"bob"}`, `{"story":"x"}`, `{"value":"5"}`, `{"title":1}`, `[]`, `{"deck":null}`, "\x00",
		`{"name":"olga","role":"observer"}`, `{"stories":["a","b"]}`, `{"member":"x"}`, `{"role":"voter"}`,
	} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	e := newEnv(f, server.Config{CreatesPerMinute: -1}) // fuzzing creates many rooms
	c := e.create("ann", nil)
	h := e.srv.Handler()
	base := "/api/rooms/" + c.Room
	paths := []string{"/api/rooms", base + "/members", base + "/session", base + "/votes",
		base + "/queue", base + "/estimate", base + "/leader", base + "/members/" + c.Member + "/role"}
	allowed := map[int]bool{201: true, 202: true, 400: true, 401: true, 403: true, 404: true, 409: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, body string, which uint8) {
		path := paths[int(which)%len(paths)]
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+c.Token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !allowed[w.Code] {
			t.Fatalf("POST %s %q: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("error without body: %d %s", w.Code, w.Body)
		}
		if w.Code == http.StatusCreated && !strings.Contains(w.Body.String(), `"token"`) {
			t.Fatalf("201 without token: %s", w.Body)
		}
	})
}
