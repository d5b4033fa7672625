// Command poker is the planning-poker server: a web UI and a JSON + Server-
// Sent-Events API whose rooms live in memory on the reactor runtime, made
// durable by a journal of every accepted command plus checkpoints.
//
//	go run ./cmd/poker                  # http://127.0.0.1:8080, this machine only
//	go run ./cmd/poker -addr :8080      # colleagues join over the network
//	go run ./cmd/poker -addr :8080 -public-url https://poker.example.com -admin-addr 127.0.0.1:9090
//	go run ./cmd/poker journal verify /var/lib/poker
//	go run ./cmd/poker journal replay /var/lib/poker -room-ttl 8h
//
// A 201 or 202 answer means the command is in the fsynced journal: after a
// crash (kill -9) and a restart on the same -data directory, every room,
// member, token, session and vote that was answered is there.
//
// The operator pages (/status, /status.json, /metrics, /debug/pprof/) are
// served on the public listener to loopback clients only, unless
// -admin-public; with -admin-addr they move to a listener of their own.
//
// "poker journal replay" is the determinism check of package replay on a
// (stopped or copied) data directory: it replays the checkpoints and
// journal twice offline, on copies, with the server's own registration
// (server.Register, the same -room-ttl) and compares the states. "poker
// journal inspect" and "verify" read the journal (as cmd/reactor's do);
// all three take the data directory or its journal/ directory.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "poker:", err)
		os.Exit(1)
	}
}

// roomFlags defines the flags that decide where the data lives and how the
// rooms are registered. The server and "poker journal replay" both use
// them, so a replay runs with the options the server ran with.
func roomFlags(fs *flag.FlagSet) (data *string, ttl *time.Duration) {
	data = fs.String("data", "./data", "`directory` for durable state: the journal in DIR/journal, checkpoints in DIR/checkpoints")
	ttl = fs.Duration("room-ttl", 24*time.Hour, "close and remove a room after this `duration` without activity (e.g. 30m, 8h)")
	return data, ttl
}

// defaultAddr serves this machine only: the operator opts into the network
// with -addr :8080.
const defaultAddr = "127.0.0.1:8080"

func run(args []string) error {
	if len(args) > 0 && args[0] == "journal" {
		return runJournal(context.Background(), args[1:], os.Stdout, os.Stderr)
	}
	fs := flag.NewFlagSet("poker", flag.ContinueOnError)
	addr := fs.String("addr", defaultAddr, "`address` to listen on (host:port; the default serves this machine only: use :8080 to let colleagues join; port 0 picks a free one)")
	publicURL := fs.String("public-url", "", "base `URL` of the invite links, e.g. https://poker.example.com (default: the listen address as colleagues reach it when -addr binds every interface, else the browser's address)")
	adminAddr := fs.String("admin-addr", "", "serve /status, /metrics and pprof on this `address` only (e.g. 127.0.0.1:9090), not on -addr")
	adminPublic := fs.Bool("admin-public", false, "serve /status, /metrics and pprof on -addr to every client (default: to loopback clients only)")
	data, ttl := roomFlags(fs)
	cpEvery := fs.Duration("checkpoint-interval", 30*time.Second, "how often modified rooms are checkpointed and the journal trimmed")
	verbose := fs.Bool("v", false, "log every HTTP request (never tokens)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this `address` (e.g. 127.0.0.1:6060; off by default, never on the public listener)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this `file`")
	createRate := fs.Int("create-rate", 30, "rooms one client address may create a `minute` (token bucket; -1: no limit)")
	maxRooms := fs.Int("max-rooms", 1_000_000, "most rooms that may exist at once")
	logBytes := fs.Int64("event-log-bytes", 256<<10, "bytes of events one room keeps for resuming clients")
	logTotal := fs.Int64("event-log-total-bytes", 256<<20, "bytes of events all rooms keep together")
	streams := fs.Int("streams-per-member", 4, "open event streams one member may have")
	reqTimeout := fs.Duration("request-timeout", 10*time.Second, "bound on one API request's work (504 beyond)")
	writeTimeout := fs.Duration("write-timeout", 15*time.Second, "bound on writing a response, and on each write of an event stream")
	hookPrivate := fs.Bool("webhook-allow-private", false, "let room webhooks reach loopback and private addresses (refused by default: SSRF)")
	redisURL := fs.String("redis", "", "keep the rooms in the Redis at this `URL` (redis://host:6379/0) instead of the journal: any number of servers with the same -redis and -cluster serve any room")
	cluster := fs.String("cluster", "poker", "`name` of this deployment in Redis or NATS (every key, stream and subject starts with it); with -redis or -nats")
	natsURL := fs.String("nats", "", "join the cluster -cluster over the NATS JetStream server(s) at this `URL` (nats://host:4222, comma-separated): rooms are partitioned over every node started with the same -nats and -cluster, any node serves every room")
	node := fs.String("node", "", "`id` of this node in the cluster (unique; with -nats or -nats-embed)")
	frontEnd := fs.Bool("front-end", false, "serve HTTP only and own no rooms (a stateless front end of the cluster)")
	partitions := fs.Int("partitions", 16, "`number` of room partitions, fixed when the cluster is first created (every node must use the same)")
	leaseTTL := fs.Duration("lease-ttl", 2*time.Second, "how long a dead node's rooms may go unserved before another node takes them over")
	natsEmbed := fs.String("nats-embed", "", "run a NATS server with JetStream in this process, clients at this `address` (host:port), store in DATA/nats, sync_interval always; this node connects to it unless -nats is given")
	natsRoute := fs.String("nats-cluster-addr", "", "route `address` (host:port) of the embedded NATS server, to cluster it with -nats-peers")
	natsPeers := fs.String("nats-peers", "", "route addresses of every embedded NATS server of the cluster, this one's included (`list`: host:port,host:port,...)")
	natsReplicas := fs.Int("nats-replicas", 0, "`replicas` of the cluster's streams and buckets (default: 3 with 3 or more NATS servers, else 1)")
	natsSync := fs.Bool("nats-sync-always", false, "the NATS servers of -nats run with jetstream { sync_interval: always } (silences the warning; set by -nats-embed)")
	hookBackoff := fs.Duration("webhook-max-backoff", 5*time.Minute, "cap on the delay between two attempts of a webhook delivery")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: poker [flags]\n       poker journal inspect|verify|replay [flags] [DIR]\n\nServes the planning-poker web UI and API. Rooms survive crashes: every\ncommand answered 201/202 is in the fsynced journal under -data.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *adminPublic && *adminAddr != "" {
		return errors.New("-admin-public and -admin-addr exclude each other")
	}
	if _, err := server.ValidatePublicURL(*publicURL); err != nil {
		return fmt.Errorf("-public-url: %w", err)
	}
	if err := server.ValidateCluster(*cluster); err != nil {
		return fmt.Errorf("-cluster: %w", err)
	}
	syncAlways := *natsSync
	if *natsEmbed != "" {
		if *node == "" {
			return errors.New("-nats-embed needs -node")
		}
		ns, url, err := embeddedNATS{client: *natsEmbed, route: *natsRoute, peers: splitList(*natsPeers),
			dataDir: *data, name: *node, cluster: *cluster}.start(log)
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		if *natsURL == "" {
			*natsURL = url
			syncAlways = true
		}
		if *natsReplicas == 0 && len(splitList(*natsPeers)) >= 3 {
			*natsReplicas = 3
		}
	} else if *natsRoute != "" || *natsPeers != "" {
		return errors.New("-nats-cluster-addr and -nats-peers configure -nats-embed")
	}
	// Listen before opening the data: the address decides the default
	// public URL, and a port in use fails fast.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	admin := server.AdminLoopback
	switch {
	case *adminPublic:
		admin = server.AdminPublic
	case *adminAddr != "":
		admin = server.AdminOff
	}
	local, shared := listenURLs(ln.Addr())
	public := *publicURL
	if public == "" {
		public = shared // "": the browser's own address
	}
	srv, err := server.New(ctx, server.Config{DataDir: *data, RoomTTL: *ttl, CheckpointInterval: *cpEvery, Logger: log,
		CreatesPerMinute: *createRate, MaxRooms: *maxRooms, EventLogBytes: *logBytes, EventLogTotalBytes: *logTotal,
		StreamsPerMember: *streams, RequestTimeout: *reqTimeout, WriteTimeout: *writeTimeout,
		PublicURL: public, Admin: admin, WebhookAllowPrivate: *hookPrivate, WebhookBackoffMax: *hookBackoff,
		RedisURL: *redisURL, Cluster: *cluster, NATS: *natsURL, Node: *node, FrontEnd: *frontEnd,
		Partitions: *partitions, LeaseTTL: *leaseTTL, NATSSyncAlways: syncAlways, NATSReplicas: *natsReplicas})
	if err != nil {
		ln.Close()
		return err
	}
	var adminSrv *http.Server
	if *adminAddr != "" {
		if adminSrv, err = serveAdmin(*adminAddr, srv.AdminHandler(), log); err != nil {
			ln.Close()
			_ = srv.Close(context.Background())
			return err
		}
	}
	hs := srv.HTTPServer()
	log.Info("poker: listening", "addr", ln.Addr().String(), "url", local, "invite_links", cmp.Or(public, "the browser's address"),
		"admin", cmp.Or(*adminAddr, admin), "data", *data, "room_ttl", *ttl, "redis", *redisURL != "", "nats", *natsURL != "", "cluster", *cluster, "node", *node)
	printBanner(os.Stderr, local, shared, public)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("poker: shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		log.Warn("poker: http shutdown", "err", serr)
	}
	if adminSrv != nil {
		_ = adminSrv.Shutdown(sctx)
	}
	if cerr := srv.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("poker: stopped")
	return err
}

// serveAdmin serves the operator endpoints on their own listener.
func serveAdmin(addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	log.Info("poker: operator pages", "url", "http://"+ln.Addr().String()+"/status")
	return serveOperator(ln, h, log), nil
}

// serveOperator serves h on ln, for the operator, with the public
// listener's timeouts and room for a 60 s profile.
func serveOperator(ln net.Listener, h http.Handler, log *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = hs.Serve(ln) }()
	return hs
}

// listenURLs returns the URL to open on this machine and the one
// colleagues can open: "" for a loopback listener (nobody else can
// connect), the listener's address when it binds one address, and this
// machine's first non-loopback address (else its host name) when it binds
// every interface.
func listenURLs(a net.Addr) (local, shared string) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String(), ""
	}
	port := strconv.Itoa(ta.Port)
	switch {
	case ta.IP.IsLoopback():
		return "http://" + net.JoinHostPort(ta.IP.String(), port), ""
	case !ta.IP.IsUnspecified():
		u := "http://" + net.JoinHostPort(ta.IP.String(), port)
		return u, u
	}
	local = "http://localhost:" + port
	if ip := lanAddress(); ip != "" {
		return local, "http://" + net.JoinHostPort(ip, port)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return local, "http://" + net.JoinHostPort(h, port)
	}
	return local, ""
}

// lanAddress returns this machine's first global unicast IPv4 address, or "".
func lanAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// printBanner tells the person who started the server where to point a
// browser and what link colleagues get.
func printBanner(w io.Writer, local, shared, public string) {
	fmt.Fprintf(w, "\nPlanning poker is running: open %s\n", local)
	switch {
	case public != "":
		fmt.Fprintf(w, "Invite links point to %s\n", public)
	case shared == "":
		fmt.Fprintf(w, "Only this machine can connect. To let colleagues join: -addr :%s (and -public-url if they reach it by another name)\n", portOf(local))
	}
	fmt.Fprintln(w)
}

func portOf(u string) string {
	if i := strings.LastIndexByte(u, ':'); i >= 0 {
		return u[i+1:]
	}
	return "8080"
}

// servePprof serves the profiling endpoints on their own listener, so they
// are never reachable through the public address.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", httppprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	log.Info("poker: pprof", "addr", ln.Addr().String())
	serveOperator(ln, m, log)
	return nil
}
