package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/eventlog"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/internal/testutil"
)

func TestStreamFormat(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/events?lastEventId=7", nil)
	st, err := gateway.NewStream(rec, r)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastEventID() != "7" {
		t.Errorf("LastEventID = %q", st.LastEventID())
	}
	st.Send(eventlog.Event{ID: 8, Type: "vote_cast", Data: []byte(`{"member":"m1"}`)})
	st.Send(eventlog.Event{Type: "x\ny", Data: []byte("a\nb\r\nc\rd\n")})
	st.Comment("ping")
	st.Retry(1500 * time.Millisecond)
	want := "id: 8\nevent: vote_cast\ndata: {\"member\":\"m1\"}\n\n" +
		"event: xy\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \n\n" +
		": ping\n\n" +
		"retry: 1500\n\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body:\n%q\nwant:\n%q", got, want)
	}
	h := rec.Header()
	if h.Get("Content-Type") != "text/event-stream; charset=utf-8" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers: %v", h)
	}
	if !rec.Flushed {
		t.Error("not flushed")
	}
}

func TestLastEventIDHeaderWins(t *testing.T) {
	r := httptest.NewRequest("GET", "/events?lastEventId=3", nil)
	r.Header.Set("Last-Event-ID", "9")
	if got := gateway.LastEventID(r); got != "9" {
		t.Errorf("LastEventID = %q", got)
	}
}

type sseEvent struct{ id, typ, data string }

// readEvents parses n events (comments skipped) from an SSE body.
func readEvents(t *testing.T, sc *bufio.Scanner, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	var data []string
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ != "" || data != nil {
				cur.data = strings.Join(data, "\n")
				out = append(out, cur)
			}
			cur, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
	if len(out) < n {
		t.Fatalf("read %d events, want %d (err %v)", len(out), n, sc.Err())
	}
	return out
}

func TestServeEvents(t *testing.T) {
	l := eventlog.New(8)
	state := 0 // "owned" by the publisher; the test serialises access
	done := make(chan error, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done <- gateway.ServeEvents(w, r, l, gateway.StreamOptions{
			Key:       r.URL.Query().Get("member"),
			Heartbeat: 10 * time.Millisecond,
			Retry:     time.Second,
			Snapshot: func(ctx context.Context) (eventlog.Event, error) {
				return eventlog.Event{ID: l.LastID(), Type: "snapshot", Data: []byte(fmt.Sprint(state))}, nil
			},
		})
	}))
	defer srv.Close()

	open := func(query, lastID string) (*bufio.Scanner, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/?"+query, nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return bufio.NewScanner(resp.Body), func() { cancel(); resp.Body.Close() }
	}

	l.Append("member_joined", []byte("ann"))
	state = 1
	sc, stop := open("member=ann", "")
	got := readEvents(t, sc, 1)
	if got[0] != (sseEvent{"1", "snapshot", "1"}) {
		t.Errorf("first event = %+v", got[0])
	}
	l.AppendTo("bob", "rejected", []byte("not for ann"))  // 2
	l.AppendTo("ann", "rejected", []byte("line1\nline2")) // 3
	l.Append("vote_cast", []byte("bob"))                  // 4
	got = readEvents(t, sc, 2)
	if got[0] != (sseEvent{"3", "rejected", "line1\nline2"}) || got[1] != (sseEvent{"4", "vote_cast", "bob"}) {
		t.Errorf("events = %+v", got)
	}
	stop()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ServeEvents returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not return after the client left")
	}

	// Resume: only the missed events, no snapshot.
	l.Append("session_started", []byte("story")) // 5
	sc, stop = open("member=ann", "4")
	if got = readEvents(t, sc, 1); got[0] != (sseEvent{"5", "session_started", "story"}) {
		t.Errorf("resumed with %+v", got[0])
	}
	stop()
	<-done

	// Too old to resume: a fresh snapshot.
	for i := 0; i < 10; i++ {
		l.Append("e", nil)
	}
	state = 2
	sc, stop = open("", "4")
	if got = readEvents(t, sc, 1); got[0] != (sseEvent{"15", "snapshot", "2"}) {
		t.Errorf("stale resume got %+v", got[0])
	}
	// Closing the log ends the stream.
	l.Close()
	for sc.Scan() {
	}
	stop()
	if err := <-done; !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestServeEventsSnapshotError(t *testing.T) {
	l := eventlog.New(8)
	rec := httptest.NewRecorder()
	err := gateway.ServeEvents(rec, httptest.NewRequest("GET", "/", nil), l, gateway.StreamOptions{
		Snapshot: func(context.Context) (eventlog.Event, error) { return eventlog.Event{}, context.DeadlineExceeded },
	})
	if err == nil || rec.Code != 504 {
		t.Errorf("err %v, status %d", err, rec.Code)
	}
	if l.Subscribers() != 0 {
		t.Error("subscriber leaked")
	}
}

// TestStreamHeadersOverRealServer checks the SSE headers reach a client
// through a real server and a wrapping ResponseWriter (a flush before
// WriteHeader would have sent default headers instead).
func TestStreamHeadersOverRealServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := gateway.NewStream(unwrapper{w}, r)
		if err != nil {
			t.Error(err)
			return
		}
		_ = st.SendRaw("1", "hello", []byte("x"))
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
}

type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// TestDetachStream serves a stream after its handler returned, over a
// connection taken from net/http, and checks what an SSE client reads.
func TestDetachStream(t *testing.T) {
	detached := make(chan *gateway.Stream, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Extra", "kept")
		st, err := gateway.DetachStream(unwrapper{w}, r, time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		if !st.Detached() || st.LastEventID() != "7" {
			t.Errorf("Detached %v, LastEventID %q", st.Detached(), st.LastEventID())
		}
		detached <- st
	}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Last-Event-ID", "7")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") || res.Header.Get("X-Extra") != "kept" {
		t.Fatalf("headers %v", res.Header)
	}
	st := <-detached // the handler has returned
	if err := st.SendAll([]eventlog.Event{{ID: 8, Type: "a", Data: []byte("1")}, {ID: 9, Type: "b", Data: []byte("x\ny")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Comment("ping"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st.Context().Err() == nil {
		t.Error("context not done after Close")
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := "id: 8\nevent: a\ndata: 1\n\nid: 9\nevent: b\ndata: x\ndata: y\n\n: ping\n\n"
	if string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
	if err := st.Comment("late"); err == nil {
		t.Error("write after Close succeeded")
	}
}

// TestDetachStreamClientGone: a write to a client that went away fails and
// ends the stream's context.
func TestDetachStreamClientGone(t *testing.T) {
	detached := make(chan *gateway.Stream, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := gateway.DetachStream(w, r, 0)
		if err != nil {
			t.Error(err)
			return
		}
		detached <- st
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	st := <-detached
	defer st.Close()
	res.Body.Close()
	// Writes to the closed client must start failing.
	testutil.WaitFor(t, func() bool { return st.Comment("ping") != nil })
	if st.Context().Err() == nil {
		t.Error("context not done after a failed write")
	}
}

func TestDetachStreamUnsupported(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/", nil)
	if _, err := gateway.DetachStream(w, r, 0); !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("err %v, want http.ErrNotSupported", err)
	}
	if w.Code != 200 || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Error("DetachStream wrote to a writer it could not take over")
	}
}

// TestDetachStreamWithinKeepsPending: a client that does not read fills
// the socket; SendAllWithin then gives up after its short wait and keeps
// what it could not send — also when not one byte went out — and every
// later write sends it first, so the client sees every event, in order,
// once Flush (with the full write timeout) has run.
func TestDetachStreamWithinKeepsPending(t *testing.T) {
	detached := make(chan *gateway.Stream, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := gateway.DetachStream(w, r, 10*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		detached <- st
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	st := <-detached
	defer st.Close()
	data := []byte(strings.Repeat("x", 16<<10))
	id := uint64(0)
	// A deadline already past when the write starts (the writer was not
	// scheduled in time): nothing is sent, all of it is pending.
	id++
	if pending, err := st.SendAllWithin([]eventlog.Event{{ID: id, Type: "e", Data: []byte("first")}}, time.Nanosecond); err != nil || !pending {
		t.Fatalf("write with a past deadline: pending %v, err %v", pending, err)
	}
	send := func() bool {
		id++
		pending, err := st.SendAllWithin([]eventlog.Event{{ID: id, Type: "e", Data: data}}, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if pending != st.Pending() {
			t.Fatalf("pending %v, Pending() %v", pending, st.Pending())
		}
		return pending
	}
	for !send() { // sends the first event too, then until the socket buffers are full
		if id > 10000 {
			t.Fatal("socket never filled")
		}
	}
	for range 3 { // more, behind what is pending
		send()
	}
	got := make(chan []uint64, 1)
	go func() {
		var ids []uint64
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var n uint64
			if _, err := fmt.Sscanf(sc.Text(), "id: %d", &n); err == nil {
				ids = append(ids, n)
			}
		}
		got <- ids
	}()
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	if st.Pending() {
		t.Fatal("still pending after Flush")
	}
	if err := st.SendAll([]eventlog.Event{{ID: id + 1, Type: "e", Data: []byte("last")}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ids := <-got
	if uint64(len(ids)) != id+1 {
		t.Fatalf("client got %d events, want %d", len(ids), id+1)
	}
	for i, n := range ids {
		if n != uint64(i)+1 {
			t.Fatalf("event %d has id %d: lost or reordered", i, n)
		}
	}
}
