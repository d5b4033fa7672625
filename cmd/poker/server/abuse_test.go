package server_test

// The abuse suite (issue 9): each test runs one attack, bounded in count
// and time, on loopback, and asserts the bound the server must keep.

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal/faultfs"
	"github.com/reactorgo/reactor/poker"
)

// metric returns the value of the first /metrics sample whose line starts
// with name (labels included, e.g. `reactor_children_resident{service="/rooms"}`).
func (e *env) metric(name string) float64 {
	e.t.Helper()
	res, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	e.t.Fatalf("metric %s not found", name)
	return 0
}

func checkpointFiles(t testing.TB, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		// A write in progress (the journal floor is rewritten every round)
		// has a temporary file beside the checkpoint.
		if !strings.Contains(e.Name(), "#tmp-") {
			n++
		}
	}
	return n
}

// parallel runs n requests on 8 goroutines.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// rawDo sends a request and discards the body (keep-alive reuse).
func rawDo(t testing.TB, method, url, token, key, body string) int {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// TestUnauthenticatedLeavesNoTrace: requests that fail authentication, and
// requests for rooms that do not exist, are answered without a journal
// record, a remembered reply, a checkpoint file or a resident room.
func TestUnauthenticatedLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, server.Config{DataDir: dir, CheckpointInterval: 20 * time.Millisecond})
	ann := e.create("ann", nil)
	bob := e.join(ann.Room, "bob")
	e.accept("POST", "/api/rooms/"+ann.Room+"/session", ann.Token, map[string]string{"story": "s"})
	// Let the set-up's checkpoints settle (rounds every 20ms).
	files := -1
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		n := checkpointFiles(t, dir)
		if n == files && n >= 2 {
			break
		}
		files = n
	}
	appended := e.metric("reactor_journal_appended_total")
	room := e.url + "/api/rooms/" + ann.Room

	const n = 2000
	var bad sync.Map
	parallel(n, func(i int) {
		key := "k" + strconv.Itoa(i)
		codes := []int{
			rawDo(t, "POST", room+"/votes", "not-a-member-token", key, `{"value":"5"}`),
			rawDo(t, "POST", room+"/session", bob.Token, key, `{"story":"not the leader"}`),
			rawDo(t, "POST", room+"/session/finish", "", key, ""),
			rawDo(t, "DELETE", room+"/members/"+ann.Member, "nobody", key, ""),
		}
		want := []int{401, 403, 401, 401}
		other := poker.NewID(16) // a room that does not exist
		codes = append(codes,
			rawDo(t, "POST", e.url+"/api/rooms/"+other+"/votes", "x", key, `{"value":"5"}`),
			rawDo(t, "POST", e.url+"/api/rooms/"+other+"/members", "", "", `{"name":"eve`+strconv.Itoa(i)+`"}`),
			rawDo(t, "GET", e.url+"/api/rooms/"+other, "", "", ""),
			rawDo(t, "GET", e.url+"/api/rooms/"+other+"/events?token=x", "", "", ""),
		)
		want = append(want, 404, 404, 404, 404)
		if i%4 == 0 { // a name already taken
			codes, want = append(codes, rawDo(t, "POST", room+"/members", "", "", `{"name":"BOB"}`)), append(want, 409)
		}
		for j := range codes {
			if codes[j] != want[j] {
				bad.Store(j, fmt.Sprintf("request %d answered %d, want %d", j, codes[j], want[j]))
			}
		}
	})
	bad.Range(func(_, v any) bool { t.Error(v); return true })
	time.Sleep(100 * time.Millisecond)
	if got := e.metric("reactor_journal_appended_total"); got != appended {
		t.Errorf("refused requests appended %v journal records", got-appended)
	}
	if got := checkpointFiles(t, dir); got != files {
		t.Errorf("refused requests left %d checkpoint files", got-files)
	}
	if got := e.metric(`reactor_children_resident{service="/rooms"}`); got > 1 {
		t.Errorf("%v rooms resident, want the one that exists", got)
	}
	// The members still work, and the room is unchanged.
	e.accept("POST", "/api/rooms/"+ann.Room+"/votes", bob.Token, map[string]string{"value": "5"})
	var v poker.View
	e.do("GET", "/api/rooms/"+ann.Room, "", nil).json(t, &v)
	if len(v.Members) != 2 {
		t.Errorf("members %+v", v.Members)
	}
}

// TestRetryAfterLeavingGetsFirstAnswer: the check before the journal lets
// a retry through to its remembered answer, even though the member it
// authenticated is gone by now.
func TestRetryAfterLeavingGetsFirstAnswer(t *testing.T) {
	e := newEnv(t, server.Config{})
	ann := e.create("ann", nil)
	bob := e.join(ann.Room, "bob")
	path := e.url + "/api/rooms/" + ann.Room + "/members/" + bob.Member
	for i := range 2 {
		if code := rawDo(t, "DELETE", path, bob.Token, "leave-1", ""); code != http.StatusAccepted {
			t.Fatalf("leave #%d: %d", i+1, code)
		}
	}
	if code := rawDo(t, "DELETE", path, bob.Token, "leave-2", ""); code != http.StatusUnauthorized {
		t.Fatalf("a new leave by a member who left: %d", code)
	}
}

// TestDiskFullAnswered503: while the journal's disk is full, commands are
// refused with 503 storage_full and Retry-After, /healthz is degraded and
// the metric counts them; once space returns everything works again, and
// nothing acknowledged before, during or after is lost across a restart.
func TestDiskFullAnswered503(t *testing.T) {
	fsys := faultfs.New()
	var full atomic.Bool
	fsys.SetHook(func(op faultfs.Op, name string) error {
		if full.Load() && op == faultfs.OpWrite && strings.Contains(name, "journal") {
			return syscall.ENOSPC
		}
		return nil
	})
	var logs strings.Builder
	var logMu sync.Mutex
	cfg := server.Config{DataDir: "/data", FS: fsys, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}
	e := newEnv(t, cfg)
	ann := e.create("ann", nil)
	bob := e.join(ann.Room, "bob")
	room := "/api/rooms/" + ann.Room
	e.accept("POST", room+"/session", ann.Token, map[string]string{"story": "s"})

	full.Store(true)
	for range 20 {
		r := e.do("POST", room+"/votes", bob.Token, map[string]string{"value": "8"})
		if r.Status != http.StatusServiceUnavailable || r.code(t) != "storage_full" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("vote on a full disk: %d %s (Retry-After %q)", r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	if r := e.do("GET", "/healthz", "", nil); r.Status != http.StatusServiceUnavailable || r.code(t) != "storage_full" {
		t.Fatalf("healthz on a full disk: %d %s", r.Status, r.Body)
	}
	if got := e.metric(`poker_storage_failures_total{cause="disk_full"}`); got != 20 {
		t.Errorf("disk_full metric %v, want 20", got)
	}
	if got := e.metric("poker_degraded"); got != 1 {
		t.Errorf("poker_degraded %v", got)
	}
	full.Store(false)
	e.accept("POST", room+"/votes", bob.Token, map[string]string{"value": "5"})
	if r := e.do("GET", "/healthz", "", nil); r.Status != http.StatusOK {
		t.Fatalf("healthz after space returned: %d %s", r.Status, r.Body)
	}
	logMu.Lock()
	if n := strings.Count(logs.String(), "disk full:"); n != 1 {
		t.Errorf("%d disk-full log lines for one episode, want 1:\n%s", n, logs.String())
	}
	logMu.Unlock()

	// Restart on the same (in-memory) disk: the acknowledged vote is there.
	e.close()
	e2 := newEnv(t, cfg)
	var v poker.View
	e2.do("GET", room, bob.Token, nil).json(t, &v)
	if v.Session == nil || v.Session.MyVote == nil || *v.Session.MyVote != "5" {
		t.Fatalf("after restart: %+v", v.Session)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCorruptRoomCheckpoint503: a room whose checkpoint is damaged answers
// 503 checkpoint_corrupt (not a 500), /healthz turns degraded, and the log
// names the file, once.
func TestCorruptRoomCheckpoint503(t *testing.T) {
	dir := t.TempDir()
	var logs strings.Builder
	var logMu sync.Mutex
	cfg := server.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}
	e := newEnv(t, cfg)
	ann := e.create("ann", nil)
	healthy := e.create("bob", nil)
	e.close()
	name := filepath.Join(dir, "checkpoints", file.FileName(poker.Address+"/"+ann.Room))
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e = newEnv(t, cfg)
	for range 5 {
		r := e.do("GET", "/api/rooms/"+ann.Room, ann.Token, nil)
		if r.Status != http.StatusServiceUnavailable || r.code(t) != "checkpoint_corrupt" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("corrupt room: %d %s", r.Status, r.Body)
		}
	}
	if r := e.do("GET", "/api/rooms/"+healthy.Room, healthy.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("the other room: %d %s", r.Status, r.Body)
	}
	if r := e.do("GET", "/healthz", "", nil); r.Status != http.StatusServiceUnavailable || r.code(t) != "checkpoint_corrupt" {
		t.Fatalf("healthz: %d %s", r.Status, r.Body)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if n := strings.Count(logs.String(), "poker: corrupt checkpoint"); n != 1 || !strings.Contains(logs.String(), filepath.Base(name)) {
		t.Errorf("%d corrupt-checkpoint lines, want 1 naming %s:\n%s", n, filepath.Base(name), logs.String())
	}
}

// TestNeverReadingClientDropped: a client that pipelines requests and never
// reads its responses is disconnected within the write timeout, instead of
// holding a connection and its goroutine.
func TestNeverReadingClientDropped(t *testing.T) {
	e := newEnv(t, server.Config{WriteTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // keep the kernel from absorbing the responses
	}
	// 26 KB a response: 400 of them overflow every socket buffer.
	go func() {
		req := []byte("GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n")
		for range 400 {
			if _, err := conn.Write(req); err != nil {
				return
			}
		}
	}()
	time.Sleep(2 * time.Second) // never read while the server writes
	began := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after the write timeout (%d bytes read)", n)
	}
	if n >= 400*25000 {
		t.Fatalf("every response was written (%d bytes): nothing was cut", n)
	}
	t.Logf("dropped: %d bytes buffered, drained in %v", n, time.Since(began))
}

// TestEventStreamOutlivesWriteTimeout: the write timeout bounds each write
// of an event stream, not its life.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	e := newEnv(t, server.Config{WriteTimeout: 200 * time.Millisecond, Heartbeat: 100 * time.Millisecond})
	ann := e.create("ann", nil)
	s := e.stream(ann.Room, ann.Token, "")
	s.expect("snapshot")
	time.Sleep(600 * time.Millisecond)
	e.accept("POST", "/api/rooms/"+ann.Room+"/session", ann.Token, map[string]string{"story": "s"})
	s.expect("session_started")
}

// TestBudgets: room creation is rate limited per address (429 with
// Retry-After) and bounded in total; a member's streams are bounded; an
// event flood stays within the rooms' event-log byte budgets.
func TestBudgets(t *testing.T) {
	e := newEnv(t, server.Config{CreatesPerMinute: 5, MaxRooms: 8, StreamsPerMember: 2,
		EventLogBytes: 64 << 10, EventLogTotalBytes: 100 << 10})
	var rooms []creds
	for range 5 {
		rooms = append(rooms, e.create("ann", nil))
	}
	r := e.do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"})
	if r.Status != http.StatusTooManyRequests || r.code(t) != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("6th room in a minute: %d %s %v", r.Status, r.Body, r.Header)
	}

	e2 := newEnv(t, server.Config{CreatesPerMinute: -1, MaxRooms: 3})
	for range 3 {
		e2.create("ann", nil)
	}
	if r := e2.do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"}); r.Status != http.StatusServiceUnavailable || r.code(t) != "too_many_rooms" {
		t.Fatalf("room over MaxRooms: %d %s", r.Status, r.Body)
	}

	ann := rooms[0]
	e.stream(ann.Room, ann.Token, "").expect("snapshot")
	e.stream(ann.Room, ann.Token, "").expect("snapshot")
	if r := e.do("GET", "/api/rooms/"+ann.Room+"/events?token="+ann.Token, "", nil); r.Status != http.StatusTooManyRequests || r.code(t) != "too_many_streams" {
		t.Fatalf("third stream: %d %s", r.Status, r.Body)
	}

	story := strings.Repeat("<", poker.MaxStoryLen) // 6 bytes each in JSON
	for _, c := range rooms {
		for range 40 {
			e.accept("POST", "/api/rooms/"+c.Room+"/session", c.Token, map[string]string{"story": story})
		}
	}
	if got, max := e.metric("poker_event_log_bytes"), float64(100<<10+5*16*4000); got > max {
		t.Fatalf("event logs hold %v bytes, budget %v", got, max)
	}
}

// TestClosedRoomLeavesNoTombstone: a room closed for idleness is deleted
// from the checkpoint store once evicted, instead of leaving a file forever.
func TestClosedRoomLeavesNoTombstone(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, server.Config{DataDir: dir, RoomTTL: 300 * time.Millisecond, CheckpointInterval: 50 * time.Millisecond})
	c := e.create("ann", nil)
	roomFile := func() bool {
		ents, _ := os.ReadDir(filepath.Join(dir, "checkpoints"))
		for _, en := range ents {
			if strings.Contains(en.Name(), c.Room) {
				return true
			}
		}
		return false
	}
	testutil.WaitFor(t, roomFile) // checkpointed while open
	testutil.WaitFor(t, func() bool { return e.do("GET", "/api/rooms/"+c.Room, c.Token, nil).Status == 404 })
	testutil.WaitFor(t, func() bool { return !roomFile() })
}
