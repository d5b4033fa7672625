// Package clustertest starts embedded NATS servers with JetStream for the
// cluster package's tests (and anyone else's): three servers clustered on
// loopback, or a single one, each with its store under t.TempDir() and
// sync_interval: always (Options.SyncAlways), so tests need no NATS
// installed and run the configuration production should use.
package clustertest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Servers is a set of running embedded NATS servers.
type Servers struct {
	t       testing.TB
	mu      sync.Mutex
	ports   []int // client ports, fixed across restarts
	cports  []int // cluster (route) ports; nil for a single server
	dirs    []string
	servers []*server.Server // nil while killed
	opts    []Option
}

// Cluster starts three JetStream servers clustered on loopback (random free
// ports) and waits until the JetStream meta leader is elected. They are shut
// down by t.Cleanup.
func Cluster(t testing.TB, opts ...Option) *Servers { return start(t, 3, opts) }

// Single starts one JetStream server (not clustered).
func Single(t testing.TB, opts ...Option) *Servers { return start(t, 1, opts) }

// Option changes the servers' configuration.
type Option func(*server.Options)

// LazySync runs the servers with NATS's default sync_interval (fsync every
// 2 minutes, not after every write): what a default NATS installation does,
// for benchmarks that compare against it. Not durable against power loss.
func LazySync() Option { return func(o *server.Options) { o.SyncAlways = false } }

func start(t testing.TB, n int, opts []Option) *Servers {
	t.Helper()
	s := &Servers{t: t, servers: make([]*server.Server, n), opts: opts}
	for range n {
		s.ports = append(s.ports, freePort(t))
		if n > 1 {
			s.cports = append(s.cports, freePort(t))
		}
		s.dirs = append(s.dirs, t.TempDir())
	}
	t.Cleanup(s.Shutdown)
	for i := range n {
		s.startOne(i)
	}
	s.WaitReady()
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Servers) options(i int) *server.Options {
	o := &server.Options{
		ServerName:         fmt.Sprintf("n%d", i),
		Host:               "127.0.0.1",
		Port:               s.ports[i],
		JetStream:          true,
		StoreDir:           s.dirs[i],
		SyncAlways:         true, // sync_interval: always
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		NoLog:              true,
		NoSigs:             true,
	}
	for _, opt := range s.opts {
		opt(o)
	}
	if len(s.cports) > 0 {
		o.Cluster = server.ClusterOpts{Name: "reactor-test", Host: "127.0.0.1", Port: s.cports[i]}
		for j, p := range s.cports {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
			}
		}
	}
	return o
}

func (s *Servers) startOne(i int) {
	s.t.Helper()
	srv, err := server.NewServer(s.options(i))
	if err != nil {
		s.t.Fatalf("clustertest: server %d: %v", i, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		s.t.Fatalf("clustertest: server %d not ready for connections", i)
	}
	s.mu.Lock()
	s.servers[i] = srv
	s.mu.Unlock()
}

// N is the number of servers (running or killed).
func (s *Servers) N() int { return len(s.ports) }

// URL is the client URL of server i.
func (s *Servers) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", s.ports[i]) }

// URLs is every server's client URL, comma-separated (for nats.Connect).
func (s *Servers) URLs() string {
	u := make([]string, s.N())
	for i := range u {
		u[i] = s.URL(i)
	}
	return strings.Join(u, ",")
}

// Server returns server i, or nil while it is killed.
func (s *Servers) Server(i int) *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.servers[i]
}

// Connect connects to all servers with fast reconnects (closed by t.Cleanup).
// Extra options come after the defaults.
func (s *Servers) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return s.ConnectURL(t, s.URLs(), opts...)
}

// ConnectURL is Connect to the given URL(s), e.g. a proxy's.
func (s *Servers) ConnectURL(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.Timeout(2 * time.Second)}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		t.Fatalf("clustertest: connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Kill shuts server i down at once (its store stays for Restart). It is
// Shutdown, not kill -9: the process keeps its page cache, so it models a
// crashed server, not a power loss.
func (s *Servers) Kill(i int) {
	s.mu.Lock()
	srv := s.servers[i]
	s.servers[i] = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts killed server i again with the same ports and store, and
// waits until JetStream works again.
func (s *Servers) Restart(i int) {
	s.t.Helper()
	if s.Server(i) != nil {
		s.t.Fatalf("clustertest: server %d is running", i)
	}
	s.startOne(i)
	s.WaitReady()
}

// WaitReady waits (up to 30s) until there is a JetStream meta leader that
// knows every running server as a peer, and a JetStream API request
// succeeds on each running server.
func (s *Servers) WaitReady() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := range s.N() {
		srv := s.Server(i)
		if srv == nil {
			continue
		}
		for {
			err := s.jsReady(i, srv)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("clustertest: JetStream not ready on server %d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (s *Servers) jsReady(i int, srv *server.Server) error {
	if s.N() > 1 && !srv.JetStreamIsClustered() {
		return fmt.Errorf("not clustered yet")
	}
	if s.N() > 1 {
		// A meta leader that knows every running server as a JetStream
		// peer with current stats: before that, creating an R3 stream
		// fails with "no suitable peers for placement".
		running, peers := 0, -1
		for j := range s.N() {
			if o := s.Server(j); o != nil {
				running++
				if o.JetStreamIsLeader() {
					peers = len(o.JetStreamClusterPeers())
				}
			}
		}
		if peers < 0 {
			return fmt.Errorf("no meta leader")
		}
		if peers < running {
			return fmt.Errorf("meta leader sees %d of %d servers", peers, running)
		}
	}
	nc, err := nats.Connect(s.URL(i), nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Shutdown stops every running server (t.Cleanup calls it).
func (s *Servers) Shutdown() {
	for i := range s.N() {
		s.Kill(i)
	}
}
