package main_test

import (
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
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildPoker builds the server binary once per test binary run.
func buildPoker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "poker")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd    *exec.Cmd
	url    string
	log    *bytes.Buffer
	exited chan struct{}
}

func startPoker(t *testing.T, bin, data string, flags ...string) *proc {
	t.Helper()
	for attempt := 0; ; attempt++ {
		p := spawnPoker(t, bin, data, flags...)
		err := p.waitHealthy(20 * time.Second)
		if err == nil {
			return p
		}
		if errors.Is(err, errExited) && attempt < 3 {
			continue // port taken meanwhile
		}
		p.kill9()
		t.Fatalf("poker did not come up: %v\n%s", err, p.log.String())
	}
}

// spawnPoker starts a server process on a free address without waiting
// for it (a node embedding a NATS server serves once its peers are up).
func spawnPoker(t *testing.T, bin, data string, flags ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	var log bytes.Buffer
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-data", data}, flags...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	p := &proc{cmd: cmd, url: "http://" + addr, log: &log, exited: exited}
	t.Cleanup(p.kill9)
	go func() { _ = cmd.Wait(); close(exited) }()
	return p
}

var errExited = errors.New("poker exited")

// waitHealthy waits until p answers /healthz 200, exits (errExited) or d
// passes.
func (p *proc) waitHealthy(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		select {
		case <-p.exited:
			return errExited
		default:
		}
		if res, err := http.Get(p.url + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// call does one request; ok reports whether the server answered at all
// (a crash mid-request leaves the outcome unknown).
func call(url, method, path, token string, body any) (status int, out map[string]any, ok bool) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, false
	}
	_ = json.Unmarshal(b, &out)
	return res.StatusCode, out, true
}

// must does one request to p and fails t unless p answered with status
// want; it returns the decoded JSON body.
func (p *proc) must(t *testing.T, want int, method, path, token string, body any) map[string]any {
	t.Helper()
	st, out, ok := call(p.url, method, path, token, body)
	if !ok || st != want {
		t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
	}
	return out
}

type member struct{ id, name, token string }

// model is what the client knows was acknowledged in one room, plus the
// one request whose outcome is unknown (sent when the server died).
type model struct {
	room    string
	leader  member
	members []member // including the leader
	ghosts  []string // names of joins whose outcome was unknown
	story   string
	status  string
	votes   map[string]string // member id → value (acknowledged)
	pending *op
}

type op struct {
	kind   string // join, start, vote, finish
	name   string
	member string
	value  string
}

var deck = []string{"1", "2", "3", "5", "8", "13", "?"}

// TestCrashRecovery drives rooms against the real binary, kills it with
// SIGKILL at random moments, restarts it on the same -data directory and
// checks that every request answered 201/202 is reflected, and nothing
// else except the one request per client that was in flight.
func TestCrashRecovery(t *testing.T) {
	cycles, workers := 12, 6
	if testing.Short() {
		cycles = 3
	}
	bin := buildPoker(t)
	data := t.TempDir()
	rooms := make([]*model, workers)
	seq := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := 0
	for cycle := 0; cycle < cycles; cycle++ {
		p := startPoker(t, bin, data)
		for _, m := range rooms {
			if m != nil {
				verify(t, p.url, m, cycle)
			}
		}
		loadUntilKill(p.url, rooms, rng, &seq, &acked, time.Duration(50+rng.IntN(400))*time.Millisecond, p.kill9)
	}
	p := startPoker(t, bin, data)
	for _, m := range rooms {
		if m != nil {
			verify(t, p.url, m, cycles)
		}
	}
	p.kill9()
	t.Logf("%d cycles, %d acknowledged requests checked after SIGKILL", cycles, acked)
}

// loadUntilKill runs one worker per room against url, each making steps
// with its own seeded generator (seq numbers them across workers and
// cycles, acked counts the answered ones), and after pause kills the
// server under them: a step cut off stays pending in its model.
func loadUntilKill(url string, rooms []*model, rng *rand.Rand, seq, acked *int, pause time.Duration, kill func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range rooms {
		wg.Add(1)
		seed := rng.Uint64()
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				*seq++
				n := *seq
				mu.Unlock()
				if !step(url, &rooms[w], r, n, w) {
					return // server gone: the pending op stays unknown
				}
				mu.Lock()
				*acked++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(pause)
	kill()
	close(stop)
	wg.Wait()
}

// step performs one request for worker w's room; false means the server
// did not answer (the op is left pending).
func step(url string, mp **model, r *rand.Rand, n, w int) bool {
	m := *mp
	if m == nil {
		name := fmt.Sprintf("lead%d", w)
		st, out, ok := call(url, "POST", "/api/rooms", "", map[string]any{"title": "crash", "leader": name, "deck": deck, "capacity": 100})
		if !ok || st != 201 {
			return false
		}
		lead := member{id: out["member"].(string), name: name, token: out["token"].(string)}
		*mp = &model{room: out["room"].(string), leader: lead, members: []member{lead}, votes: map[string]string{}}
		return true
	}
	base := "/api/rooms/" + m.room
	var o op
	switch k := r.IntN(10); {
	case len(m.members) < 3 || (k == 0 && len(m.members) < 40):
		o = op{kind: "join", name: fmt.Sprintf("m%d", n)}
	case k <= 1 || m.story == "":
		o = op{kind: "start", value: fmt.Sprintf("story %d", n)}
	case k == 2:
		o = op{kind: "finish"}
	default:
		who := m.members[r.IntN(len(m.members))]
		o = op{kind: "vote", member: who.id, value: deck[r.IntN(len(deck))]}
	}
	m.pending = &o
	var (
		st  int
		out map[string]any
		ok  bool
	)
	switch o.kind {
	case "join":
		st, out, ok = call(url, "POST", base+"/members", "", map[string]string{"name": o.name})
	case "start":
		st, _, ok = call(url, "POST", base+"/session", m.leader.token, map[string]string{"story": o.value})
	case "finish":
		st, _, ok = call(url, "POST", base+"/session/finish", m.leader.token, nil)
	case "vote":
		st, _, ok = call(url, "POST", base+"/votes", m.token(o.member), map[string]string{"value": o.value})
	}
	if !ok || (st != 201 && st != 202) {
		return false
	}
	m.pending = nil
	switch o.kind {
	case "join":
		m.members = append(m.members, member{id: out["member"].(string), name: o.name, token: out["token"].(string)})
	case "start":
		m.story, m.status, m.votes = o.value, "voting", map[string]string{}
	case "finish":
		if m.status == "voting" {
			m.status = "finished"
		}
	case "vote":
		if m.status == "voting" {
			m.votes[o.member] = o.value
		}
	}
	return true
}

func (m *model) token(id string) string {
	for _, x := range m.members {
		if x.id == id {
			return x.token
		}
	}
	return ""
}

type view struct {
	Leader  string `json:"leader"`
	Me      string `json:"me"`
	Members []struct {
		Member, Name string
		Voted        bool
	} `json:"members"`
	Session *struct {
		Story  string            `json:"story"`
		Status string            `json:"status"`
		Votes  map[string]string `json:"votes"`
		MyVote *string           `json:"myVote"`
	} `json:"session"`
}

func getView(t *testing.T, url, room, token string) view {
	t.Helper()
	var v view
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", url+"/api/rooms/"+room, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 503 && attempt < 50 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if res.StatusCode != 200 {
			t.Fatalf("room %s with an acknowledged token: %d %s", room, res.StatusCode, b)
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// verify checks the restarted server against the model and then adopts
// the observed outcome of the pending op.
func verify(t *testing.T, url string, m *model, cycle int) {
	t.Helper()
	v := getView(t, url, m.room, m.leader.token)
	p := m.pending
	names := map[string]string{}
	for _, x := range v.Members {
		names[x.Name] = x.Member
	}
	for _, x := range m.members {
		if names[x.name] != x.id {
			t.Fatalf("cycle %d room %s: acknowledged member %s lost (have %v)", cycle, m.room, x.name, names)
		}
		if mv := getView(t, url, m.room, x.token); mv.Me != x.id {
			t.Fatalf("cycle %d: token of %s answers as %q", cycle, x.name, mv.Me)
		}
	}
	for name := range names {
		known := slices.ContainsFunc(m.members, func(x member) bool { return x.name == name }) || slices.Contains(m.ghosts, name)
		if !known && (p == nil || p.kind != "join" || p.name != name) {
			t.Fatalf("cycle %d room %s: member %s was never acknowledged", cycle, m.room, name)
		}
		if !known {
			m.ghosts = append(m.ghosts, name)
		}
	}
	// Session.
	story, status := "", ""
	if v.Session != nil {
		story, status = v.Session.Story, v.Session.Status
	}
	switch {
	case story == m.story && status == m.status:
	case p != nil && p.kind == "start" && story == p.value && status == "voting":
		m.story, m.status, m.votes = story, status, map[string]string{}
	case p != nil && p.kind == "finish" && story == m.story && m.status == "voting" && status == "finished":
		m.status = "finished"
	default:
		t.Fatalf("cycle %d room %s: session %q/%q, acknowledged %q/%q, pending %+v", cycle, m.room, story, status, m.story, m.status, p)
	}
	// Votes.
	if status == "finished" {
		for id, val := range v.Session.Votes {
			if m.votes[id] != val && !(p != nil && p.kind == "vote" && p.member == id && p.value == val) {
				t.Fatalf("cycle %d: finished vote %s=%s not acknowledged (%v, pending %+v)", cycle, id, val, m.votes, p)
			}
			m.votes[id] = val
		}
		if len(v.Session.Votes) != len(m.votes) {
			t.Fatalf("cycle %d: finished votes %v, acknowledged %v", cycle, v.Session.Votes, m.votes)
		}
	}
	if status == "voting" {
		for _, x := range m.members {
			mv := getView(t, url, m.room, x.token)
			got := ""
			if mv.Session.MyVote != nil {
				got = *mv.Session.MyVote
			}
			if got != m.votes[x.id] {
				if p != nil && p.kind == "vote" && p.member == x.id && p.value == got {
					m.votes[x.id] = got
					continue
				}
				t.Fatalf("cycle %d: %s's vote %q, acknowledged %q (pending %+v)", cycle, x.name, got, m.votes[x.id], p)
			}
		}
	}
	m.pending = nil
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
