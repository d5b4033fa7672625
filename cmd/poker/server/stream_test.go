package server_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

// TestStreamHeartbeatAndRelease: an idle detached stream gets keep-alive
// comments from the shared heartbeat, and a stream whose client went away
// is released at the next heartbeat (detached streams do not read).
func TestStreamHeartbeatAndRelease(t *testing.T) {
	e := newEnv(t, server.Config{Heartbeat: 40 * time.Millisecond})
	leader := e.create("ann", nil)
	req, _ := http.NewRequest("GET", e.url+"/api/rooms/"+leader.Room+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+leader.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !res.Close {
		t.Fatalf("status %d, headers %v", res.StatusCode, res.Header)
	}
	br := bufio.NewReader(res.Body)
	pings := 0
	deadline := time.Now().Add(5 * time.Second)
	for pings < 2 && time.Now().Before(deadline) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ": ping") {
			pings++
		}
	}
	if pings < 2 {
		t.Fatal("no heartbeats on an idle stream")
	}
	if n := e.srv.Rooms().Counters().Streams; n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
	res.Body.Close()
	for e.srv.Rooms().Counters().Streams != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream of a client that went away was not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
