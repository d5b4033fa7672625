package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// TestHTTPDetails: wrong methods get 405 with Allow, HEAD on the event
// stream answers its headers without a stream, and JSON field names are
// case-sensitive.
func TestHTTPDetails(t *testing.T) {
	e := newEnv(t, server.Config{})
	ann := e.create("ann", nil)
	room := "/api/rooms/" + ann.Room

	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/api/rooms", "POST"},
		{"DELETE", room, "GET, HEAD"},
		{"GET", room + "/votes", "POST"},
	} {
		r := e.do(tc.method, tc.path, ann.Token, nil)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != tc.allow || r.code(t) != "method_not_allowed" {
			t.Errorf("%s %s: %d Allow=%q %s", tc.method, tc.path, r.Status, r.Header.Get("Allow"), r.Body)
		}
	}
	if r := e.do("GET", "/api/nothing/here", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown path: %d", r.Status)
	}

	began := time.Now()
	r := e.do("HEAD", room+"/events?token="+ann.Token, "", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") || len(r.Body) != 0 {
		t.Errorf("HEAD events: %d %q %q", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("HEAD events took %v: it streamed", d)
	}
	if r := e.do("HEAD", room+"/events?token=wrong", "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("HEAD events with a wrong token: %d", r.Status)
	}

	r = e.do("POST", "/api/rooms", "", `{"Title":"x","LEADER":"ann"}`)
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"Title"`) {
		t.Errorf("case-insensitive field names: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/api/rooms", "", `{"title":"x","leader":"ann"}`); r.Status != http.StatusCreated {
		t.Errorf("exact field names: %d %s", r.Status, r.Body)
	}
}
