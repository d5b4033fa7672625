package cluster_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor/cluster"
)

func jsOf(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openLeases(t testing.TB, nc *nats.Conn, cl, node string, ttl time.Duration, replicas int) *cluster.Leases {
	t.Helper()
	ls, err := cluster.OpenLeases(ctxT(t, 10*time.Second), jsOf(t, nc), cluster.LeaseConfig{Cluster: cl, Node: node, TTL: ttl, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// acquireEventually retries Acquire until it succeeds or d passes.
func acquireEventually(t testing.TB, ls *cluster.Leases, p cluster.Partition, d time.Duration) *cluster.Lease {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l, err := ls.Acquire(ctxT(t, 5*time.Second), p)
		if err == nil {
			t.Cleanup(func() { l.Release(context.Background()) })
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("acquire %s: %v", p, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy forwards TCP connections to target until Stop, which cuts every
// connection: a node cut off from NATS.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool // Cut: connections are dropped until Heal
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Stop)
	return p
}

func (p *proxy) URL() string { return "nats://" + p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut { // cut while dialing
			p.mu.Unlock()
			c.Close()
			u.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
	}
}

// Cut drops every connection and every new one until Heal: the client is
// cut off from NATS (and reconnects through the proxy after Heal).
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Heal lets connections through again after Cut.
func (p *proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *proxy) Stop() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
