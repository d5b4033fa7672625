package main

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// embeddedNATS is the flags of a NATS server run inside this process, so
// a cluster needs no NATS installed: each node embeds one, and the
// servers route to each other (-nats-peers) to form one NATS cluster.
type embeddedNATS struct {
	client  string   // -nats-embed: client listen address
	route   string   // -nats-cluster-addr: route listen address
	peers   []string // -nats-peers: every server's route address
	dataDir string   // JetStream's store: DATA/nats
	name    string   // server name (the node id)
	cluster string   // NATS cluster name
}

// start runs the server and returns it with its client URL once it
// accepts connections. JetStream syncs every write (sync_interval:
// always): an acknowledged command survives a power failure of the
// machines holding it.
func (e embeddedNATS) start(log *slog.Logger) (*natsserver.Server, string, error) {
	host, port, err := splitHostPort(e.client)
	if err != nil {
		return nil, "", fmt.Errorf("-nats-embed: %w", err)
	}
	o := &natsserver.Options{
		ServerName: e.name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(e.dataDir, "nats"),
		SyncAlways: true,
		NoSigs:     true,
		NoLog:      true,
	}
	if e.route != "" || len(e.peers) > 0 {
		if e.route == "" || len(e.peers) < 2 {
			return nil, "", fmt.Errorf("-nats-cluster-addr and -nats-peers (every server's route address, this one's included) go together")
		}
		rhost, rport, err := splitHostPort(e.route)
		if err != nil {
			return nil, "", fmt.Errorf("-nats-cluster-addr: %w", err)
		}
		o.Cluster = natsserver.ClusterOpts{Name: e.cluster, Host: rhost, Port: rport}
		for _, p := range e.peers {
			if p == e.route {
				continue
			}
			o.Routes = append(o.Routes, natsserver.RoutesFromStr("nats://"+p)...)
		}
	}
	// nats-server reports a port in use only in its log: try it first.
	for _, addr := range []string{e.client, e.route} {
		if addr == "" {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, "", fmt.Errorf("embedded NATS: %w", err)
		}
		l.Close()
	}
	srv, err := natsserver.NewServer(o)
	if err != nil {
		return nil, "", fmt.Errorf("embedded NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, "", fmt.Errorf("embedded NATS on %s not ready", e.client)
	}
	url := srv.ClientURL()
	log.Info("poker: embedded NATS server", "url", url, "cluster_routes", len(o.Routes), "store", o.StoreDir)
	return srv, url, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", ps)
	}
	return host, port, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
