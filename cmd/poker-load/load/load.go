// Package load drives a planning-poker server the way browsers do: one
// Server-Sent-Events stream per member, commands as JSON POSTs. It is the
// engine of cmd/poker-load and of the server's load test.
package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config bounds a run.
type Config struct {
	URL          string
	Rooms        int
	Members      int // per room, leader included
	Rounds       int
	Duration     time.Duration
	PID          int // server pid for RSS (0: read /metrics)
	Concurrency  int
	EventTimeout time.Duration
	// Think spreads the load like people do: each room starts its round
	// after a random pause in [0, Think) and each member votes after one.
	// 0 makes every room and member act at once (a burst).
	Think time.Duration
	// Hold pauses this long once every stream is open, before the rounds
	// (time to take a heap profile of the server).
	Hold time.Duration
	// Conns bounds the keep-alive connections the commands (POSTs) use
	// (default: min(1024, rooms × members)); event streams have their own
	// transport, one connection each. More POSTs than Conns at once wait
	// for a connection in the generator (not counted in the latencies,
	// which start when the request has a connection).
	Conns int
	// Retries bounds how often one command answered 503 is sent again
	// (default 10); each retry waits the answer's Retry-After (capped by
	// MaxRetryWait, default 5s, plus up to 20 % jitter).
	Retries      int
	MaxRetryWait time.Duration
}

// Result holds a run's figures. Latencies are in the order measured.
type Result struct {
	Rooms, Members, Rounds int
	Join                   []time.Duration // create and join requests
	VoteCast               []time.Duration // vote POST sent → vote_cast seen, per member
	Finished               []time.Duration // finish POST sent → session_finished seen, per member
	Errors                 int64           // failed requests and streams (Other + Transport + StreamErrors + GaveUp)
	Lost                   int64           // events of acknowledged commands not received in time
	Busy                   int64           // 503 answers with Retry-After (each retried, up to Config.Retries)

	// Every answer to a command, by class.
	Answered2xx int64 // 200/201/202: acknowledged
	Retries     int64 // commands sent again after a 503
	GaveUp      int64 // commands still 503 after Config.Retries retries
	NoRetryHdr  int64 // 503 without a usable Retry-After (a protocol error; also in Other)
	Other       int64 // any other status (4xx, 5xx but 503 with Retry-After)
	Transport   int64 // no answer at all (connection refused, reset, EOF, timeout)
	// IDGaps counts events whose SSE id is not the previous one's + 1 on
	// a stream (an event the server skipped, or one targeted at another
	// member).
	IDGaps int64
	// StreamErrors counts event streams that failed to open or ended early.
	StreamErrors int64
	// Conns is the number of TCP connections the commands used (opened by
	// the keep-alive pool); ConnsLimit the pool's bound.
	Conns, ConnsLimit int64
	// UnackedApplied counts events seen for commands that got no 2xx (the
	// command was applied although the client was not told so: allowed
	// for a transport error, never for a 503).
	UnackedApplied      int64
	RSSBefore, RSSAfter int64 // server RSS before streams opened and with all connected
	// Go memory of the server with all connected (from /metrics; 0 if
	// unavailable): heap in use, goroutine stacks, goroutines.
	HeapInuse, StackInuse, Goroutines int64
	Elapsed                           time.Duration
}

// ErrorList collects the first few errors for the report.
var errSample struct {
	sync.Mutex
	list []string
}

func noteErr(format string, args ...any) {
	errSample.Lock()
	if len(errSample.list) < 5 {
		errSample.list = append(errSample.list, fmt.Sprintf(format, args...))
	}
	errSample.Unlock()
}

type event struct {
	typ    string
	member string
	at     time.Time
}

type member struct {
	id, token string
	events    chan event
}

type room struct {
	id      string
	members []*member // [0] is the leader
	mu      sync.Mutex
	sent    map[string]time.Time // member → when its acknowledged vote was sent
	unacked map[string]bool      // members whose vote got no 2xx
}

type runner struct {
	cfg    Config
	client *http.Client
	stream *http.Client
	res    *Result
	mu     sync.Mutex
}

var dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}

// commandTransport is the keep-alive pool of the commands: at most
// cfg.Conns connections, all kept idle between requests (so a burst reuses
// them instead of opening a connection per POST), closed after 90 s idle
// (before the server's 2-minute idle timeout, so a request is never sent on
// a connection the server is closing).
func (r *runner) commandTransport() *http.Transport {
	return &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        r.cfg.Conns,
		MaxIdleConnsPerHost: r.cfg.Conns,
		MaxConnsPerHost:     r.cfg.Conns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
}

// streamTransport carries the event streams, one connection each, never
// reused, unbounded in number: a stream holds its connection for the run,
// so sharing the commands' pool would starve the commands.
func streamTransport() *http.Transport {
	return &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true, MaxIdleConnsPerHost: -1}
}

// Run executes the load and returns its figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Rooms < 1 || cfg.Members < 2 || cfg.Members > 100 || cfg.Rounds < 1 {
		return nil, errors.New("load: need rooms ≥ 1, 2 ≤ members ≤ 100, rounds ≥ 1")
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 64
	}
	if cfg.EventTimeout <= 0 {
		cfg.EventTimeout = 10 * time.Second
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Conns <= 0 {
		cfg.Conns = min(1024, cfg.Rooms*cfg.Members)
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 10
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = 5 * time.Second
	}
	r := &runner{cfg: cfg, res: &Result{Rooms: cfg.Rooms, Members: cfg.Members, Rounds: cfg.Rounds, ConnsLimit: int64(cfg.Conns)}}
	r.client = &http.Client{Timeout: 30 * time.Second, Transport: r.commandTransport()}
	r.stream = &http.Client{Transport: streamTransport()}
	if need := uint64(cfg.Rooms*cfg.Members + cfg.Conns + 64); !RaiseFileLimit(need) {
		noteErr("open-file limit below the %d this run needs (ulimit -n)", need)
	}
	began := time.Now()
	defer func() { r.res.Elapsed = time.Since(began) }()

	r.res.RSSBefore = r.rss(ctx)
	rooms, err := r.setup(ctx)
	if err != nil {
		return r.res, err
	}
	sctx, stop := context.WithCancel(ctx)
	var streams sync.WaitGroup
	defer func() { stop(); streams.Wait() }()
	if err := r.connect(sctx, rooms, &streams); err != nil {
		return r.res, err
	}
	time.Sleep(500 * time.Millisecond) // let the server settle before reading RSS
	r.res.RSSAfter = r.rss(ctx)
	r.goMem(ctx)
	if cfg.Hold > 0 {
		select {
		case <-time.After(cfg.Hold):
		case <-ctx.Done():
		}
	}

	for round := 0; round < cfg.Rounds && ctx.Err() == nil; round++ {
		var wg sync.WaitGroup
		for _, rm := range rooms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.round(ctx, rm, round)
			}()
		}
		wg.Wait()
	}
	return r.res, ctx.Err()
}

// setup creates the rooms and joins their members.
func (r *runner) setup(ctx context.Context) ([]*room, error) {
	rooms := make([]*room, r.cfg.Rooms)
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range rooms {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var out struct{ Room, Member, Token string }
			t0 := time.Now()
			if _, err := r.post(ctx, "/api/rooms", "", map[string]any{"title": fmt.Sprint("load ", i), "leader": "m0", "capacity": 100}, false, &out); err != nil {
				failed.Add(1)
				return
			}
			r.addLatency(&r.res.Join, time.Since(t0))
			rm := &room{id: out.Room, sent: map[string]time.Time{}}
			rm.members = append(rm.members, &member{id: out.Member, token: out.Token})
			rooms[i] = rm
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("load: %d rooms could not be created", n)
	}
	for _, rm := range rooms {
		for j := 1; j < r.cfg.Members; j++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				var out struct{ Member, Token string }
				t0 := time.Now()
				if _, err := r.post(ctx, "/api/rooms/"+rm.id+"/members", "", map[string]string{"name": fmt.Sprint("m", j)}, false, &out); err != nil {
					failed.Add(1)
					return
				}
				r.addLatency(&r.res.Join, time.Since(t0))
				rm.mu.Lock()
				rm.members = append(rm.members, &member{id: out.Member, token: out.Token})
				rm.mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return nil, fmt.Errorf("load: %d joins failed", n)
	}
	return rooms, nil
}

// connect opens every member's stream and waits for its snapshot.
func (r *runner) connect(ctx context.Context, rooms []*room, wg *sync.WaitGroup) error {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var failed atomic.Int64
	var ready sync.WaitGroup
	for _, rm := range rooms {
		for _, m := range rm.members {
			m.events = make(chan event, 4*r.cfg.Members+16)
			sem <- struct{}{}
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.readStream(ctx, rm, m, func(ok bool) {
					if !ok {
						failed.Add(1)
					}
					<-sem
					ready.Done()
				})
			}()
		}
	}
	ready.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("load: %d event streams failed to open", n)
	}
	return nil
}

var memberKey = []byte(`"member":"`)

func (r *runner) readStream(ctx context.Context, rm *room, m *member, opened func(ok bool)) {
	req, _ := http.NewRequestWithContext(ctx, "GET", r.cfg.URL+"/api/rooms/"+rm.id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := r.stream.Do(req)
	if err != nil || res.StatusCode != 200 {
		if err == nil {
			res.Body.Close()
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		noteErr("stream: %v", err)
		atomic.AddInt64(&r.res.StreamErrors, 1)
		atomic.AddInt64(&r.res.Errors, 1)
		opened(false)
		return
	}
	defer res.Body.Close()
	br := bufio.NewReaderSize(res.Body, 4096)
	var typ, who string
	var id, lastID uint64
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if ctx.Err() == nil {
				noteErr("stream ended: %v", err)
				atomic.AddInt64(&r.res.StreamErrors, 1)
				atomic.AddInt64(&r.res.Errors, 1)
			}
			if first {
				opened(false)
			}
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if typ == "" {
				continue
			}
			now := time.Now()
			if id != 0 {
				if lastID != 0 && id != lastID+1 {
					atomic.AddInt64(&r.res.IDGaps, 1)
					noteErr("stream of %s in room %s: event id %d after %d (%s)", m.id, rm.id, id, lastID, typ)
				}
				lastID, id = id, 0
			}
			if first && typ == "snapshot" {
				first = false
				opened(true)
			} else {
				select {
				case m.events <- event{typ: typ, member: who, at: now}:
				default:
					noteErr("client event buffer full")
				}
			}
			typ, who = "", ""
		case bytes.HasPrefix(line, []byte("id: ")):
			id, _ = strconv.ParseUint(string(line[4:]), 10, 64)
		case bytes.HasPrefix(line, []byte("event: ")):
			typ = internType(line[7:])
		case bytes.HasPrefix(line, []byte("data: ")) && who == "":
			if i := bytes.Index(line, memberKey); i >= 0 {
				v := line[i+len(memberKey):]
				if j := bytes.IndexByte(v, '"'); j >= 0 {
					who = string(v[:j])
				}
			}
		}
	}
}

// internType returns the event types the rounds look at without allocating.
func internType(b []byte) string {
	for _, t := range [...]string{"vote_cast", "session_started", "session_finished", "snapshot", "votes_revealed"} {
		if string(b) == t {
			return t
		}
	}
	return string(b)
}

// round runs one voting round in a room and records delivery latencies.
// Only acknowledged commands (2xx) are expected on the streams: each one
// not seen on a member's stream within EventTimeout counts as lost.
func (r *runner) round(ctx context.Context, rm *room, n int) {
	leader := rm.members[0]
	r.think(ctx)
	if _, err := r.post(ctx, "/api/rooms/"+rm.id+"/session", leader.token, map[string]string{"story": fmt.Sprint("story ", n)}, true, nil); err != nil {
		return
	}
	for _, m := range rm.members {
		r.await(ctx, m, "session_started", map[string]bool{"": true}, nil, nil)
	}
	rm.mu.Lock()
	clear(rm.sent)
	if rm.unacked == nil {
		rm.unacked = map[string]bool{}
	}
	clear(rm.unacked)
	rm.mu.Unlock()
	var wg sync.WaitGroup
	values := []string{"1", "2", "3", "5", "8", "13"}
	for i, m := range rm.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.think(ctx)
			sent, err := r.post(ctx, "/api/rooms/"+rm.id+"/votes", m.token, map[string]string{"value": values[(i+n)%len(values)]}, true, nil)
			rm.mu.Lock()
			if err == nil {
				rm.sent[m.id] = sent
			} else {
				rm.unacked[m.id] = true
			}
			rm.mu.Unlock()
		}()
	}
	wg.Wait()
	want := make(map[string]bool, len(rm.sent))
	for id := range rm.sent {
		want[id] = true
	}
	var lat []time.Duration
	for _, m := range rm.members {
		r.await(ctx, m, "vote_cast", maps.Clone(want), rm.unacked, func(ev event) {
			lat = append(lat, ev.at.Sub(rm.sent[ev.member]))
		})
	}
	r.addLatency(&r.res.VoteCast, lat...)
	t0, err := r.post(ctx, "/api/rooms/"+rm.id+"/session/finish", leader.token, nil, true, nil)
	if err != nil {
		return
	}
	lat = lat[:0]
	for _, m := range rm.members {
		r.await(ctx, m, "session_finished", map[string]bool{"": true}, nil, func(ev event) { lat = append(lat, ev.at.Sub(t0)) })
	}
	r.addLatency(&r.res.Finished, lat...)
}

func (r *runner) think(ctx context.Context) {
	if r.cfg.Think <= 0 {
		return
	}
	select {
	case <-time.After(rand.N(r.cfg.Think)):
	case <-ctx.Done():
	}
}

// await reads m's stream until it has seen an event of typ for every
// member in want ("" matches any event of typ), counting those that do not
// come within EventTimeout as lost. Events of typ for a member in unacked
// (a command that got no 2xx) are counted in UnackedApplied; other events
// are skipped.
func (r *runner) await(ctx context.Context, m *member, typ string, want, unacked map[string]bool, fn func(event)) {
	deadline := time.NewTimer(r.cfg.EventTimeout)
	defer deadline.Stop()
	for len(want) > 0 {
		select {
		case ev := <-m.events:
			if ev.typ != typ {
				continue
			}
			key := ev.member
			if want[""] {
				key = ""
			}
			if !want[key] {
				if unacked[ev.member] {
					atomic.AddInt64(&r.res.UnackedApplied, 1)
				}
				continue
			}
			delete(want, key)
			if fn != nil {
				fn(ev)
			}
		case <-deadline.C:
			atomic.AddInt64(&r.res.Lost, int64(len(want)))
			noteErr("lost %d %s events", len(want), typ)
			return
		case <-ctx.Done():
			return
		}
	}
}

func (r *runner) addLatency(dst *[]time.Duration, d ...time.Duration) {
	r.mu.Lock()
	*dst = append(*dst, d...)
	r.mu.Unlock()
}

// post sends a JSON command until it is acknowledged (200, 201 or 202:
// err nil) or fails. A 503 with Retry-After is sent again after that
// long (capped by MaxRetryWait, plus jitter), at most Retries times; a
// 503 without Retry-After, any other status and a transport error fail at
// once. Every answer is counted in its class. sent is when the
// acknowledged attempt got its connection (time waiting for a connection
// of the generator's own pool is not the server's). With idem, the
// command carries an Idempotency-Key, the same on every attempt, as the
// web UI's do (net/http then also resends it by itself when a kept-alive
// connection turns out closed).
func (r *runner) post(ctx context.Context, path, token string, body any, idem bool, out any) (sent time.Time, err error) {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	key := ""
	if idem {
		key = strconv.FormatUint(rand.Uint64(), 36)
	}
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		sent = time.Now()
		if !ci.Reused {
			atomic.AddInt64(&r.res.Conns, 1)
		}
	}}
	tctx := httptrace.WithClientTrace(ctx, trace)
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(tctx, "POST", r.cfg.URL+path, bytes.NewReader(b))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		res, err := r.client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				atomic.AddInt64(&r.res.Transport, 1)
				atomic.AddInt64(&r.res.Errors, 1)
				noteErr("POST %s: %v", path, err)
			}
			return sent, err
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode == http.StatusOK || res.StatusCode == http.StatusCreated || res.StatusCode == http.StatusAccepted:
			atomic.AddInt64(&r.res.Answered2xx, 1)
			if out != nil {
				return sent, json.Unmarshal(data, out)
			}
			return sent, nil
		case res.StatusCode == http.StatusServiceUnavailable:
			wait, ok := retryAfter(res.Header.Get("Retry-After"))
			if !ok {
				atomic.AddInt64(&r.res.NoRetryHdr, 1)
				break
			}
			atomic.AddInt64(&r.res.Busy, 1)
			if attempt >= r.cfg.Retries {
				atomic.AddInt64(&r.res.GaveUp, 1)
				atomic.AddInt64(&r.res.Errors, 1)
				noteErr("POST %s: still 503 after %d retries", path, attempt)
				return sent, fmt.Errorf("load: POST %s: 503 after %d retries", path, attempt)
			}
			wait = min(wait, r.cfg.MaxRetryWait)
			wait += rand.N(wait/5 + 1) // spread the retries of a burst
			atomic.AddInt64(&r.res.Retries, 1)
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return sent, ctx.Err()
			}
		}
		atomic.AddInt64(&r.res.Other, 1)
		atomic.AddInt64(&r.res.Errors, 1)
		noteErr("POST %s: %d %s", path, res.StatusCode, bytes.TrimSpace(data))
		return sent, fmt.Errorf("load: POST %s: %d", path, res.StatusCode)
	}
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// rss reads the server's resident memory, in bytes (0 if unknown).
func (r *runner) rss(ctx context.Context) int64 {
	if r.cfg.PID > 0 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.cfg.PID))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					return kb << 10
				}
			}
		}
		return 0
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", r.cfg.URL+"/metrics", nil)
	res, err := r.client.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}

// goMem reads the server's Go memory figures from /metrics.
func (r *runner) goMem(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", r.cfg.URL+"/metrics", nil)
	res, err := r.client.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			r.res.HeapInuse = int64(f)
		case "go_memstats_stack_inuse_bytes":
			r.res.StackInuse = int64(f)
		case "go_goroutines":
			r.res.Goroutines = int64(f)
		}
	}
}

// Percentile returns the p-th percentile (0-100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// Print writes the report.
func (res *Result) Print(w io.Writer) {
	conn := res.Rooms * res.Members
	fmt.Fprintf(w, "rooms=%d members/room=%d rounds=%d connected members=%d elapsed=%s\n",
		res.Rooms, res.Members, res.Rounds, conn, res.Elapsed.Round(time.Millisecond))
	line := func(name string, ds []time.Duration) {
		fmt.Fprintf(w, "%-28s n=%-7d p50=%-10s p99=%-10s max=%s\n", name, len(ds),
			Percentile(ds, 50).Round(10*time.Microsecond), Percentile(ds, 99).Round(10*time.Microsecond),
			Percentile(ds, 100).Round(10*time.Microsecond))
	}
	line("join (create/join 201)", res.Join)
	line("vote -> vote_cast", res.VoteCast)
	line("finish -> session_finished", res.Finished)
	fmt.Fprintf(w, "commands: answered 2xx=%d  503+Retry-After=%d  retries=%d  gave up after retries=%d  other status=%d (503 without Retry-After: %d)  no answer=%d\n",
		res.Answered2xx, res.Busy, res.Retries, res.GaveUp, res.Other, res.NoRetryHdr, res.Transport)
	fmt.Fprintf(w, "command connections used=%d (pool bound %d)  stream errors=%d  event id gaps=%d  applied without 2xx=%d\n",
		res.Conns, res.ConnsLimit, res.StreamErrors, res.IDGaps, res.UnackedApplied)
	fmt.Fprintf(w, "errors=%d lost_events=%d (events of acknowledged commands missing from a member's stream)\n", res.Errors, res.Lost)
	if res.RSSAfter > 0 && conn > 0 {
		fmt.Fprintf(w, "server RSS: before streams %.1f MiB, all connected %.1f MiB; per connected member: %.1f KiB total, %.1f KiB for the streams\n",
			float64(res.RSSBefore)/(1<<20), float64(res.RSSAfter)/(1<<20),
			float64(res.RSSAfter)/float64(conn)/1024, float64(res.RSSAfter-res.RSSBefore)/float64(conn)/1024)
	}
	if res.HeapInuse > 0 && conn > 0 {
		fmt.Fprintf(w, "server Go memory, all connected: heap in use %.1f MiB (%.1f KiB/member), stacks %.1f MiB (%.1f KiB/member), %d goroutines\n",
			float64(res.HeapInuse)/(1<<20), float64(res.HeapInuse)/float64(conn)/1024,
			float64(res.StackInuse)/(1<<20), float64(res.StackInuse)/float64(conn)/1024, res.Goroutines)
	}
	errSample.Lock()
	for _, e := range errSample.list {
		fmt.Fprintln(w, "  e.g.", e)
	}
	errSample.Unlock()
}
