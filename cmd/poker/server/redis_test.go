package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/testenv"
)

// redisNodes, when not 0, makes newEnv start that many servers in Redis
// mode on one cluster name behind a round-robin proxy, so that the API
// contract tests written for one journaled server run unchanged against a
// cluster: consecutive requests of one test — commands, reads, event
// streams — land on different nodes.
var redisNodes int

// needRedis skips t without a Redis (fails it with
// REACTOR_REQUIRE_SERVICES=1) and returns a client for inspection.
func needRedis(t testing.TB) *goredis.Client { return testenv.Redis(t) }

// clusterName returns a cluster name unique to t whose keys are deleted
// when t ends.
func clusterName(t testing.TB, c *goredis.Client) string {
	name := fmt.Sprintf("pokertest-%x", rand.Uint64())
	testenv.DeleteRedisKeys(t, c, name+":")
	return name
}

// cluster is n servers on one Redis cluster name.
type cluster struct {
	nodes []*env
	lb    *httptest.Server
	next  atomic.Uint64
}

func startNodes(t testing.TB, cfg server.Config, n int) []*env {
	t.Helper()
	c := needRedis(t)
	cfg.RedisURL = testenv.RedisURL(t)
	if cfg.Cluster == "" {
		cfg.Cluster = clusterName(t, c)
	}
	var nodes []*env
	for range n {
		ncfg := cfg
		ncfg.DataDir = t.TempDir()
		nodes = append(nodes, serveNode(t, ncfg))
	}
	return nodes
}

// newClusterEnv starts n nodes and returns an env whose url is a
// round-robin proxy over them (the load balancer of a deployment).
func newClusterEnv(t testing.TB, cfg server.Config, n int) *env {
	t.Helper()
	return balance(t, startNodes(t, cfg, n))
}

// balance returns an env whose url is a round-robin proxy over nodes.
func balance(t testing.TB, nodes []*env) *env {
	t.Helper()
	cl := &cluster{nodes: nodes}
	var proxies []*httputil.ReverseProxy
	for _, nd := range cl.nodes {
		u, _ := url.Parse(nd.url)
		p := httputil.NewSingleHostReverseProxy(u)
		p.FlushInterval = -1 // event streams pass through at once
		proxies = append(proxies, p)
	}
	cl.lb = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[cl.next.Add(1)%uint64(len(proxies))].ServeHTTP(w, r)
	}))
	t.Cleanup(cl.lb.Close)
	return &env{t: t, srv: cl.nodes[0].srv, hs: cl.lb, url: cl.lb.URL}
}

// contractTests are the API contract tests written for one server that
// the deployment matrix runs unchanged on other deployments.
var contractTests = []struct {
	name string
	fn   func(*testing.T)
}{
	{"CreateRoom", TestCreateRoomContract},
	{"Validation", TestValidation},
	{"JoinErrors", TestJoinErrors},
	{"Authorization", TestAuthorization},
	{"FullRoundAndEvents", TestFullRoundAndEvents},
	{"ResumeWithLastEventID", TestResumeWithLastEventID},
	{"ConcurrentJoinsOneName", TestConcurrentJoinsOneName},
	{"CapacityUnderConcurrency", TestCapacityUnderConcurrency},
	{"IdempotencyKey", TestIdempotencyKey},
	{"Observers", TestObserverContract},
	{"EstimateAndHistory", TestEstimateAndHistoryContract},
	{"Queue", TestQueueContract},
	{"LeaderHandOff", TestLeaderHandOffContract},
	{"Settings", TestSettingsContract},
}

// TestRedisAPIContract runs the API contract tests of one server against
// three servers on one Redis cluster name behind a round-robin proxy:
// every request of a test goes to the next node, so a stream on one node
// sees the events of commands made through the others, a join races joins
// through other nodes, and a resume with Last-Event-ID lands on another
// node than the stream it resumes.
func TestRedisAPIContract(t *testing.T) {
	needRedis(t)
	redisNodes = 3
	t.Cleanup(func() { redisNodes = 0 })
	for _, tc := range contractTests {
		t.Run(tc.name, tc.fn)
	}
}

// TestRedisNodes: explicit cross-node cases. A stream on node B sees what
// is done through node A; a resume with Last-Event-ID on node C gets what
// followed; joins with one name through three nodes at once: one wins; a
// full room under concurrent joins through three nodes: exact capacity; a
// keyed retry through another node is answered, not applied again; the
// room's keys carry the TTL in Redis.
func TestRedisNodes(t *testing.T) {
	c := needRedis(t)
	name := clusterName(t, c)
	nodes := startNodes(t, server.Config{Cluster: name, RoomTTL: time.Hour}, 3)
	a, b, cn := nodes[0], nodes[1], nodes[2]
	ann, sc := acrossNodes(t, a, b, cn)
	sc.close()
	base := "/api/rooms/" + ann.Room

	// Joins with one name through three nodes: exactly one 201.
	codes := concurrently(nodes, 12, func(_ int, nd *env) int {
		return nd.do("POST", base+"/members", "", map[string]string{"name": "Zed"}).Status
	})
	if n := count(codes, 201); n != 1 || count(codes, 409) != len(codes)-1 {
		t.Fatalf("joins with one name through 3 nodes: %v, want one 201 and the rest 409", codes)
	}
	// The room (6 seats: ann, bob, Zed) fills under concurrent joins.
	codes = concurrently(nodes, 15, func(i int, nd *env) int {
		return nd.do("POST", base+"/members", "", map[string]string{"name": fmt.Sprint("m", i)}).Status
	})
	if n := count(codes, 201); n != 3 {
		t.Fatalf("joins into 3 free seats through 3 nodes: %v (%d created), want 3", codes, n)
	}
	var v struct{ Members []struct{ Name string } }
	b.do("GET", base, "", nil).json(t, &v)
	if len(v.Members) != 6 {
		t.Fatalf("members %d, want 6", len(v.Members))
	}
	// Expiry is Redis's too: the state and the stream carry the TTL.
	ctx := context.Background()
	for _, key := range []string{name + ":/rooms/" + ann.Room, name + ":events:/rooms/" + ann.Room} {
		if ttl := c.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour+2*time.Minute {
			t.Fatalf("PTTL %s = %v, want about the room TTL", key, ttl)
		}
	}
	c.Del(ctx, name+":/rooms/"+ann.Room, name+":events:/rooms/"+ann.Room) // as an expiry would
	// A node that never loaded the room now finds nothing: 404.
	fresh := startNodes(t, server.Config{Cluster: name}, 1)[0]
	if r := fresh.do("GET", base, "", nil); r.Status != 404 {
		t.Fatalf("expired room on a fresh node: %d %s", r.Status, r.Body)
	}
	if !strings.Contains(string(fresh.do("GET", "/api/rooms/"+strings.Repeat("a", 26), "", nil).Body), "not_found") {
		t.Fatal("unknown room: want not_found")
	}
}

// concurrently makes n requests at once, the i-th through
// nodes[i%len(nodes)], and returns their statuses in order.
func concurrently(nodes []*env, n int, req func(i int, nd *env) int) []int {
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = req(i, nodes[i%len(nodes)])
		}()
	}
	wg.Wait()
	return codes
}

func count(codes []int, code int) int {
	n := 0
	for _, c := range codes {
		if c == code {
			n++
		}
	}
	return n
}

// TestRedisMaxRooms: -max-rooms holds across nodes: 12 concurrent creates
// through three nodes with MaxRooms 5 give exactly five 201s and the rest
// 503 too_many_rooms, and the count is the store's, not a node's.
func TestRedisMaxRooms(t *testing.T) {
	c := needRedis(t)
	nodes := startNodes(t, server.Config{Cluster: clusterName(t, c), RoomTTL: time.Hour, MaxRooms: 5, CreatesPerMinute: -1}, 3)
	codes := concurrently(nodes, 12, func(i int, nd *env) int {
		r := nd.do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"})
		if r.Status == http.StatusServiceUnavailable && r.code(t) != "too_many_rooms" {
			t.Errorf("create %d: %d %s", i, r.Status, r.Body)
		}
		return r.Status
	})
	if n := count(codes, http.StatusCreated); n != 5 || count(codes, http.StatusServiceUnavailable) != 7 {
		t.Fatalf("creates with MaxRooms 5 over 3 nodes: %v", codes)
	}
	for _, nd := range nodes {
		if r := nd.do("POST", "/api/rooms", "", map[string]string{"title": "t", "leader": "ann"}); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("a sixth room: %d %s", r.Status, r.Body)
		}
	}
}
