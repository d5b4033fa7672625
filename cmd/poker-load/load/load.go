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
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
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
}

// Result holds a run's figures. Latencies are in the order measured.
type Result struct {
	Rooms, Members, Rounds int
	Join                   []time.Duration // create and join requests
	VoteCast               []time.Duration // vote POST sent → vote_cast seen, per member
	Finished               []time.Duration // finish POST sent → session_finished seen, per member
	Errors                 int64           // failed requests and streams
	Lost                   int64           // expected events not received
	Busy                   int64           // 503 answers (retried)
	RSSBefore, RSSAfter    int64           // server RSS before streams opened and with all connected
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
	sent    map[string]time.Time // member → when its vote was sent
}

type runner struct {
	cfg    Config
	client *http.Client
	stream *http.Client
	res    *Result
	mu     sync.Mutex
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
	dial := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	r := &runner{
		cfg: cfg,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: dial, MaxIdleConns: 4 * cfg.Concurrency, MaxIdleConnsPerHost: 4 * cfg.Concurrency, IdleConnTimeout: time.Minute,
		}},
		stream: &http.Client{Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: -1, DisableKeepAlives: true}},
		res:    &Result{Rooms: cfg.Rooms, Members: cfg.Members, Rounds: cfg.Rounds},
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
			if err := r.post(ctx, "/api/rooms", "", map[string]any{"title": fmt.Sprint("load ", i), "leader": "m0", "capacity": 100}, 201, &out); err != nil {
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
				if err := r.post(ctx, "/api/rooms/"+rm.id+"/members", "", map[string]string{"name": fmt.Sprint("m", j)}, 201, &out); err != nil {
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

var memberField = regexp.MustCompile(`"member":"([^"]*)"`)

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
		atomic.AddInt64(&r.res.Errors, 1)
		opened(false)
		return
	}
	defer res.Body.Close()
	br := bufio.NewReaderSize(res.Body, 4096)
	var typ, data string
	first := true
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if ctx.Err() == nil {
				noteErr("stream ended: %v", err)
				atomic.AddInt64(&r.res.Errors, 1)
			}
			if first {
				opened(false)
			}
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if typ == "" {
				continue
			}
			now := time.Now()
			if first && typ == "snapshot" {
				first = false
				opened(true)
			} else {
				ev := event{typ: typ, at: now}
				if sm := memberField.FindStringSubmatch(data); sm != nil {
					ev.member = sm[1]
				}
				select {
				case m.events <- ev:
				default:
					noteErr("client event buffer full")
				}
			}
			typ, data = "", ""
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
}

// round runs one voting round in a room and records delivery latencies.
func (r *runner) round(ctx context.Context, rm *room, n int) {
	leader := rm.members[0]
	r.think(ctx)
	if err := r.post(ctx, "/api/rooms/"+rm.id+"/session", leader.token, map[string]string{"story": fmt.Sprint("story ", n)}, 202, nil); err != nil {
		return
	}
	for _, m := range rm.members {
		r.await(ctx, m, "session_started", 1, nil)
	}
	rm.mu.Lock()
	clear(rm.sent)
	rm.mu.Unlock()
	var wg sync.WaitGroup
	values := []string{"1", "2", "3", "5", "8", "13"}
	for i, m := range rm.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.think(ctx)
			rm.mu.Lock()
			rm.sent[m.id] = time.Now()
			rm.mu.Unlock()
			_ = r.post(ctx, "/api/rooms/"+rm.id+"/votes", m.token, map[string]string{"value": values[(i+n)%len(values)]}, 202, nil)
		}()
	}
	wg.Wait()
	var lat []time.Duration
	for _, m := range rm.members {
		r.await(ctx, m, "vote_cast", len(rm.members), func(ev event) {
			rm.mu.Lock()
			sent, ok := rm.sent[ev.member]
			rm.mu.Unlock()
			if ok {
				lat = append(lat, ev.at.Sub(sent))
			}
		})
	}
	r.addLatency(&r.res.VoteCast, lat...)
	t0 := time.Now()
	if err := r.post(ctx, "/api/rooms/"+rm.id+"/session/finish", leader.token, nil, 202, nil); err != nil {
		return
	}
	lat = lat[:0]
	for _, m := range rm.members {
		r.await(ctx, m, "session_finished", 1, func(ev event) { lat = append(lat, ev.at.Sub(t0)) })
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

// await reads count events of typ from m's stream, counting those that do
// not come in time as lost. Other event types are skipped.
func (r *runner) await(ctx context.Context, m *member, typ string, count int, fn func(event)) {
	deadline := time.NewTimer(r.cfg.EventTimeout + r.cfg.Think)
	defer deadline.Stop()
	for got := 0; got < count; {
		select {
		case ev := <-m.events:
			if ev.typ != typ {
				continue
			}
			got++
			if fn != nil {
				fn(ev)
			}
		case <-deadline.C:
			atomic.AddInt64(&r.res.Lost, int64(count-got))
			noteErr("lost %d %s events", count-got, typ)
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

// post sends a JSON command, retrying 503s with backoff as clients should.
func (r *runner) post(ctx context.Context, path, token string, body any, want int, out any) error {
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", r.cfg.URL+path, bytes.NewReader(b))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := r.client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				atomic.AddInt64(&r.res.Errors, 1)
				noteErr("POST %s: %v", path, err)
			}
			return err
		}
		data, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 503 && attempt < 8 {
			atomic.AddInt64(&r.res.Busy, 1)
			time.Sleep(backoff)
			backoff *= 2
			continue
		}
		if res.StatusCode != want {
			atomic.AddInt64(&r.res.Errors, 1)
			noteErr("POST %s: %d %s", path, res.StatusCode, data)
			return fmt.Errorf("load: POST %s: %d", path, res.StatusCode)
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	}
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
	fmt.Fprintf(w, "errors=%d lost_events=%d busy_503=%d\n", res.Errors, res.Lost, res.Busy)
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
