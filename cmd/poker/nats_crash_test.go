package main_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	clusterpkg "github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
)

// TestNATSNodeKill9: three server processes on one cluster over three
// NATS servers (clustered on loopback in this test process, R3,
// sync_interval always). Clients drive rooms through node A, which is
// killed with SIGKILL at random moments under that load, 10 times. After
// each kill node B must show every request A answered 201/202 (and of
// the request in flight at the kill, either outcome) — the rooms A owned
// are taken over by B and C from their journals in JetStream — within
// 10 s; then A restarts with the same flags, rejoins, and the load goes
// on. Every cycle adds two rooms on A's partitions, and a command sent
// through B right after the kill, for a room of A's, must wait for the
// takeover and answer 202. Failover times are reported.
func TestNATSNodeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS servers and server processes")
	}
	servers := clustertest.Cluster(t)
	cluster := fmt.Sprintf("pkcrash%x", rand.Uint32())
	flags := func(node string) []string {
		return []string{"-nats", servers.URLs(), "-cluster", cluster, "-node", node, "-partitions", "8",
			"-lease-ttl", "1s", "-nats-sync-always", "-create-rate", "-1"} // rooms are created until some land on A's partitions
	}
	bin := buildPoker(t)
	b := startPoker(t, bin, t.TempDir(), flags("b")...)
	startPoker(t, bin, t.TempDir(), flags("c")...)
	dataA := t.TempDir()
	const cycles, workers = 10, 6
	rooms := make([]*model, workers)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	seq, acked := 0, 0
	var failovers []time.Duration
	for cycle := range cycles {
		a := startPoker(t, bin, dataA, flags("a")...)
		owned := waitOwns(t, a, 2) // 8 partitions over 3 nodes: 3, 3 and 2 — the kill takes rooms down
		// Two more rooms on A's partitions each cycle: the kill takes rooms
		// with it, which B and C must take over.
		parts, _ := clusterpkg.NewPartitioner(8)
		for added := 0; added < 2; {
			m := newRoom(t, a.url, len(rooms))
			if slices.Contains(owned, parts.Child("/rooms", m.room).String()) {
				rooms = append(rooms, m)
				added++
			}
		}
		// A room on A's partitions that no worker drives: right after the
		// kill a command for it goes through B, which must wait for the
		// takeover and answer 202, not fail.
		var probe *model
		for probe == nil {
			if m := newRoom(t, b.url, 99); slices.Contains(owned, parts.Child("/rooms", m.room).String()) {
				probe = m
			}
		}
		var killed time.Time
		loadUntilKill(a.url, rooms, rng, &seq, &acked, time.Duration(100+rng.IntN(300))*time.Millisecond, func() {
			a.kill9()
			killed = time.Now()
		})
		story := fmt.Sprintf("after kill %d", cycle)
		if st, out, ok := call(b.url, "POST", "/api/rooms/"+probe.room+"/session", probe.leader.token, map[string]string{"story": story}); !ok || st != 202 {
			t.Fatalf("cycle %d: a command through B for a room of the dead node: %d %v (ok %v), want 202 once the room is taken over", cycle, st, out, ok)
		}
		if v := getView(t, b.url, probe.room, probe.leader.token); v.Session == nil || v.Session.Story != story {
			t.Fatalf("cycle %d: the command answered 202 during the takeover is not in the room: %+v", cycle, v.Session)
		}
		for _, m := range rooms {
			if m != nil {
				verify(t, b.url, m, cycle)
			}
		}
		took := time.Since(killed)
		if took > 10*time.Second {
			t.Fatalf("cycle %d: node B served every room of the dead node A only %v after the kill (want ≤ 10s)", cycle, took)
		}
		failovers = append(failovers, took)
	}
	if acked < cycles*workers {
		t.Fatalf("only %d requests acknowledged in %d cycles: the load did not run", acked, cycles)
	}
	slices.Sort(failovers)
	t.Logf("%d kills of node A under load; %d acknowledged requests checked through node B", cycles, acked)
	t.Logf("failover (kill → every room verified through B): p50 %v, max %v", failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond))
}

// newRoom creates a room through url for worker w, as step does.
func newRoom(t *testing.T, url string, w int) *model {
	t.Helper()
	var m *model
	if !step(url, &m, nil, 0, w) {
		t.Fatal("create a room: no 201")
	}
	return m
}

// waitOwns waits until node p owns n partitions (its /status.json).
func waitOwns(t *testing.T, p *proc, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		owned := statusOwned(p)
		if len(owned) >= n {
			return owned
		}
		if time.Now().After(deadline) {
			t.Fatalf("node owns %v after 20s, want %d partitions", owned, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEmbeddedNATSNodeKill9: the README's cluster — three poker processes,
// each embedding one of the three NATS servers (-nats-embed, R3) — and one
// of them killed with SIGKILL, so that its NATS server dies with it and the
// streams it led lose their leader mid-request. The two others own every
// partition (the rooms' and the census') within 10 s, and a create through
// them succeeds. (A takeover's request to a dead leader used to wait out the
// takeover's 30 s deadline: 25 s without the dead node's rooms.)
func TestEmbeddedNATSNodeKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes with embedded NATS servers")
	}
	bin := buildPoker(t)
	var clients, routes []string
	for range 3 {
		clients, routes = append(clients, freeAddr(t)), append(routes, freeAddr(t))
	}
	var nodes []*proc
	for i := range 3 {
		nodes = append(nodes, spawnPoker(t, bin, t.TempDir(), "-node", fmt.Sprintf("n%d", i), "-cluster", "embed",
			"-nats-embed", clients[i], "-nats-cluster-addr", routes[i], "-nats-peers", strings.Join(routes, ","),
			"-partitions", "8", "-lease-ttl", "1s", "-create-rate", "-1"))
	}
	for _, p := range nodes {
		if err := p.waitHealthy(90 * time.Second); err != nil {
			t.Fatalf("%v:\n%s", err, p.log.String())
		}
	}
	const all = 8 + 1 // the rooms' partitions and the census
	owned := func(ps ...*proc) int {
		n := 0
		for _, p := range ps {
			n += len(statusOwned(p))
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for owned(nodes...) != all || len(statusOwned(nodes[1])) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the three nodes own %d partitions, want %d", owned(nodes...), all)
		}
		time.Sleep(100 * time.Millisecond)
	}
	newRoom(t, nodes[0].url, 0)
	nodes[1].kill9()
	killed := time.Now()
	for owned(nodes[0], nodes[2]) != all {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("10 s after the kill the survivors own %d of %d partitions", owned(nodes[0], nodes[2]), all)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(killed)
	newRoom(t, nodes[2].url, 1)
	t.Logf("a node and its embedded NATS server killed: the others own every partition %v after", took.Round(time.Millisecond))
}

// statusOwned returns the partitions p owns (its /status.json; none if it
// does not answer).
func statusOwned(p *proc) []string {
	var st struct {
		Cluster struct{ Owned []string } `json:"cluster"`
	}
	c := http.Client{Timeout: 2 * time.Second}
	if res, err := c.Get(p.url + "/status.json"); err == nil {
		_ = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
	}
	return st.Cluster.Owned
}
