package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor/cluster/clustertest"
	"github.com/reactorgo/reactor/cmd/poker/server"
)

// natsMatrix, when set, makes newEnv start a cluster of nodes over NATS
// (one fresh cluster name per env) behind a round-robin proxy, so that the
// API contract tests run unchanged on that deployment.
var natsMatrix *natsDeployment

// singleGoroutine, when set, makes newEnv run every service of the server
// on one goroutine.
var singleGoroutine bool

// natsDeployment is a cluster deployment of the poker server over NATS.
type natsDeployment struct {
	servers  *clustertest.Servers
	frontEnd bool // the first node only serves HTTP
	nodes    int
}

func (d *natsDeployment) env(t testing.TB, cfg server.Config) *env {
	t.Helper()
	return balance(t, startNATSNodes(t, d.servers, cfg, d.nodes, d.frontEnd))
}

// startNATSNodes starts n poker nodes of one new cluster on servers (the
// first a front end if frontEnd), waits until every room node serves,
// and removes the cluster's streams when t ends.
func startNATSNodes(t testing.TB, servers *clustertest.Servers, cfg server.Config, n int, frontEnd bool) []*env {
	t.Helper()
	if cfg.Cluster == "" {
		cfg.Cluster = fmt.Sprintf("pk%x", rand.Uint32())
	}
	cfg.NATS = servers.URLs()
	cfg.NATSSyncAlways = true // clustertest's servers sync always
	if cfg.Partitions == 0 {
		cfg.Partitions = 4
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Second
	}
	t.Cleanup(func() { deleteClusterStreams(t, servers, cfg.Cluster) })
	var nodes []*env
	for i := range n {
		ncfg := cfg
		ncfg.DataDir = t.TempDir()
		ncfg.Node = fmt.Sprintf("n%d", i)
		ncfg.FrontEnd = frontEnd && i == 0
		nodes = append(nodes, serveNode(t, ncfg))
	}
	waitServing(t, nodes...)
	roomNodes := nodes
	if frontEnd {
		roomNodes = nodes[1:]
	}
	waitSettled(t, cfg.Partitions+1, roomNodes...) // the rooms' and the census
	return nodes
}

// waitSettled waits until the room nodes own every one of the partitions
// between them, evenly (one apart at most): the handoffs of a start are
// done, and a contract test does not run into one (TestNATSNodes and the
// cluster package's fault tests are where handoffs are tested).
func waitSettled(t testing.TB, partitions int, nodes ...*env) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var counts []int
		for _, nd := range nodes {
			var st struct {
				Cluster struct {
					Owned []string `json:"owned"`
				} `json:"cluster"`
			}
			nd.do("GET", "/status.json", "", nil).json(t, &st)
			counts = append(counts, len(st.Cluster.Owned))
		}
		total := 0
		for _, c := range counts {
			total += c
		}
		if total == partitions && slices.Max(counts)-slices.Min(counts) <= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions owned %v by the room nodes: not all %d, evenly", counts, partitions)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitServing waits until every node answers /healthz 200.
func waitServing(t testing.TB, nodes ...*env) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range nodes {
		for {
			res, err := http.Get(nd.url + "/healthz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s does not serve: %v %v", nd.url, res, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// deleteClusterStreams deletes every stream (journals, buckets, events)
// of cluster name, so that the R3 streams of many tests do not pile up.
func deleteClusterStreams(t testing.TB, servers *clustertest.Servers, name string) {
	nc, err := nats.Connect(servers.URLs())
	if err != nil {
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var doomed []string
	for s := range names.Name() {
		if strings.Contains(s, name+"_") {
			doomed = append(doomed, s)
		}
	}
	for _, s := range doomed {
		_ = js.DeleteStream(ctx, s)
	}
}

// TestNATSAPIContract runs the API contract tests of one server on the
// cluster deployments over NATS (three NATS servers clustered on loopback,
// R3, sync_interval always), every request through the next node of a
// round-robin proxy: three room nodes, and a front end (HTTP only) with
// two room nodes. Streams, resumes and concurrent joins cross nodes as in
// TestRedisAPIContract.
func TestNATSAPIContract(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS clusters")
	}
	servers := clustertest.Cluster(t)
	for _, d := range []struct {
		name     string
		frontEnd bool
	}{{"ThreeNodes", false}, {"FrontEndAndTwo", true}} {
		t.Run(d.name, func(t *testing.T) {
			natsMatrix = &natsDeployment{servers: servers, nodes: 3, frontEnd: d.frontEnd}
			t.Cleanup(func() { natsMatrix = nil })
			for _, tc := range contractTests {
				t.Run(tc.name, tc.fn)
			}
		})
	}
}

// TestSingleGoroutineAPIContract runs the API contract tests on a server
// whose services all run on one goroutine.
func TestSingleGoroutineAPIContract(t *testing.T) {
	singleGoroutine = true
	t.Cleanup(func() { singleGoroutine = false })
	for _, tc := range contractTests {
		t.Run(tc.name, tc.fn)
	}
}

// TestNATSNodes: explicit cross-node cases on a 3-node cluster. A stream
// on node B sees what is done through node A; a resume with Last-Event-ID
// on node C gets what followed; a keyed retry through another node is
// answered, not applied again; /status names the node and its
// partitions; a node that leaves hands its rooms
// over and the others serve them, events included.
func TestNATSNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS clusters")
	}
	servers := clustertest.Cluster(t)
	nodes := startNATSNodes(t, servers, server.Config{RoomTTL: time.Hour}, 3, false)
	a, b, cn := nodes[0], nodes[1], nodes[2]
	ann, sc := acrossNodes(t, a, b, cn)
	base := "/api/rooms/" + ann.Room

	var st struct {
		Cluster struct {
			Node     string   `json:"node"`
			Owned    []string `json:"owned"`
			Warnings []string `json:"warnings"`
		} `json:"cluster"`
	}
	a.do("GET", "/status.json", "", nil).json(t, &st)
	if st.Cluster.Node != "n0" || len(st.Cluster.Warnings) != 0 {
		t.Fatalf("/status.json cluster: %+v (R3, sync always: no warnings)", st.Cluster)
	}

	// Node a leaves (graceful): b and c take its partitions over; the room
	// keeps its members, votes and event ids, and streams on c go on.
	a.close()
	began := time.Now()
	for {
		var v struct{ Members []struct{ Name string } }
		r := b.do("GET", base, "", nil)
		if r.Status == 200 {
			r.json(t, &v)
			if len(v.Members) != 2 {
				t.Fatalf("after a left: %d members, want 2", len(v.Members))
			}
			break
		}
		if time.Since(began) > 10*time.Second {
			t.Fatalf("room not served 10s after a left: %d %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.accept("POST", base+"/session/finish", ann.Token, nil)
	sc.expect("session_finished")
	sc.close()
}

// TestNATSWebhookMovesWithItsRoom: in cluster mode a room's webhook
// deliveries are queued in its partition (journaled into the partition's
// stream). A delivery still failing when the room's owner leaves is made
// by the next owner: the same signed payload, the same delivery id, once
// it succeeds, and nothing after.
func TestNATSWebhookMovesWithItsRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS clusters")
	}
	rc := newReceiver(t, -1, http.StatusServiceUnavailable)
	servers := clustertest.Cluster(t)
	nodes := startNATSNodes(t, servers, server.Config{RoomTTL: time.Hour, WebhookAllowPrivate: true, WebhookBackoffMax: 200 * time.Millisecond}, 3, false)
	c, _ := createWithHook(t, nodes[1], rc.srv.URL+"/hooks/poker")
	first := rc.next(10 * time.Second)
	verifySignature(t, c.WebhookSecret, first)

	// The owner is the node whose queue holds the delivery (/metrics counts
	// the deliveries of the partitions a node serves).
	var owner *env
	deadline := time.Now().Add(10 * time.Second)
	for owner == nil {
		for _, nd := range nodes {
			m := string(nd.do("GET", "/metrics", "", nil).Body)
			if strings.Contains(m, "\n"+`poker_webhook_deliveries{state="pending"} 1`+"\n") {
				owner = nd
			}
		}
		if owner == nil && time.Now().After(deadline) {
			t.Fatal("no node shows the pending delivery on /metrics")
		}
	}
	owner.close()
	rc.mu.Lock()
	rc.failures = 0 // from now on: 204
	rc.mu.Unlock()
	for {
		h := rc.next(20 * time.Second)
		verifySignature(t, c.WebhookSecret, h)
		if string(h.body) != string(first.body) || h.header.Get("X-Poker-Delivery") != first.header.Get("X-Poker-Delivery") {
			t.Fatalf("attempt differs from the first: %s %s, first %s %s", h.body, h.header.Get("X-Poker-Delivery"), first.body, first.header.Get("X-Poker-Delivery"))
		}
		if h.status == http.StatusNoContent {
			break
		}
	}
	select {
	case h := <-rc.got:
		t.Fatalf("an attempt after the delivery succeeded: %d", h.status)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestNATSMaxRooms: -max-rooms holds across a cluster: 12 concurrent
// creates through 3 nodes with MaxRooms 5 give exactly five 201s and seven
// 503 too_many_rooms, counted by the census service wherever it runs; a
// room that closes (its TTL) is taken off the count, and a create then
// succeeds again.
func TestNATSMaxRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS clusters")
	}
	servers := clustertest.Cluster(t)
	const ttl = 4 * time.Second
	nodes := startNATSNodes(t, servers, server.Config{RoomTTL: ttl, MaxRooms: 5, CreatesPerMinute: -1}, 3, false)
	began := time.Now()
	codes := concurrently(nodes, 12, func(i int, nd *env) int {
		r := nd.do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"})
		if r.Status == http.StatusServiceUnavailable && r.code(t) != "too_many_rooms" {
			t.Errorf("create %d: %d %s", i, r.Status, r.Body)
		}
		return r.Status
	})
	if time.Since(began) > ttl/2 {
		t.Skipf("creates took %v, too close to the rooms' TTL %v to count", time.Since(began), ttl)
	}
	if n := count(codes, http.StatusCreated); n != 5 || count(codes, http.StatusServiceUnavailable) != 7 {
		t.Fatalf("creates with MaxRooms 5 over 3 nodes: %v", codes)
	}
	if r := nodes[2].do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"}); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("a sixth room: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(ttl + 15*time.Second)
	for {
		r := nodes[0].do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"})
		if r.Status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no create admitted after the rooms' TTL: %d %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
