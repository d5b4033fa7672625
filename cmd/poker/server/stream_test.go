package server_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
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

// TestStreamHandoffLosesNothing: with a quick-write wait already past when
// the write starts, every stream writer's write gives up at once, so every
// stream is handed to a goroutine of its own with its first event still
// unsent; the member must still get every event, in order, with no id
// skipped.
func TestStreamHandoffLosesNothing(t *testing.T) {
	defer server.SetStreamQuickWrite(time.Nanosecond)()
	e := newEnv(t, server.Config{})
	leader := e.create("ann", nil)
	st := e.stream(leader.Room, leader.Token, "")
	snap := st.expect("snapshot")
	last, _ := strconv.ParseUint(snap.ID, 10, 64)
	for i := range 15 {
		e.join(leader.Room, fmt.Sprint("m", i))
	}
	for i := range 15 {
		ev := st.expect("member_joined")
		id, _ := strconv.ParseUint(ev.ID, 10, 64)
		if id != last+1 {
			t.Fatalf("event %d: id %d after %d", i, id, last)
		}
		last = id
	}
	if e.srv.StreamHandoffs() < 1 {
		t.Fatal("no stream was handed off")
	}
}
