package server_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// postKeyed sends a member command with an Idempotency-Key.
func (e *env) postKeyed(path, token, key, body string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestIdempotencyKey: a retried command with the same key is answered again
// but applied once (one event); another member's same key is its own.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, server.Config{})
	leader := e.create("ann", nil)
	bob := e.join(leader.Room, "bob")
	s := e.stream(leader.Room, leader.Token, "")
	defer s.close()
	s.expect("snapshot")

	room := "/api/rooms/" + leader.Room
	if code := e.postKeyed(room+"/session", leader.Token, "start-1", `{"story":"login"}`); code != http.StatusAccepted {
		t.Fatalf("start: %d", code)
	}
	s.expect("session_started")
	s.expect("round_started")
	for range 2 {
		if code := e.postKeyed(room+"/votes", bob.Token, "vote-1", `{"value":"5"}`); code != http.StatusAccepted {
			t.Fatalf("vote: %d", code)
		}
	}
	s.expect("vote_cast")
	s.quiet(200 * time.Millisecond) // the retry was answered, not applied again
	if code := e.postKeyed(room+"/votes", leader.Token, "vote-1", `{"value":"8"}`); code != http.StatusAccepted {
		t.Fatalf("leader's vote with bob's key: %d", code)
	}
	s.expect("vote_cast") // keys are per member
	if code := e.postKeyed(room+"/votes", bob.Token, "has space", `{"value":"3"}`); code != http.StatusBadRequest {
		t.Fatalf("invalid key: %d", code)
	}
}
