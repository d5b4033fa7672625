// Package server is the planning-poker HTTP server: the JSON API described
// in docs/POKER.md over the poker domain, the embedded web UI, Server-Sent
// Events, /healthz, /metrics and a live /status page. cmd/poker wires it to
// flags and signals.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 16 << 10

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// DataDir holds the journal (DataDir/journal) and the checkpoints
	// (DataDir/checkpoints). Required.
	DataDir string
	// RoomTTL closes a room after this long without a command (default 24h).
	RoomTTL time.Duration
	// Heartbeat is the interval of keep-alive comments on event streams
	// (default 15s).
	Heartbeat time.Duration
	// CheckpointInterval is how often rooms are checkpointed and the journal
	// trimmed (default: the runtime's, 30s).
	CheckpointInterval time.Duration
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
	// RequestTimeout bounds the work of one API request (default 10s): a
	// command still waiting for its room when it ends answers 504 timeout.
	// Event streams are not bounded by it.
	RequestTimeout time.Duration
	// WriteTimeout bounds writing a response (default 15s), so a client
	// that never reads cannot hold a connection and its goroutine: it is
	// the http.Server's WriteTimeout (see HTTPServer) and, for event
	// streams, the limit of each write.
	WriteTimeout time.Duration
	// CreatesPerMinute is how many rooms one client address may create a
	// minute (token bucket, as many saved up; default 30; negative: no
	// limit). Beyond it: 429 rate_limited with Retry-After.
	CreatesPerMinute int
	// MaxRooms bounds the rooms that exist at once (default 1,000,000).
	// Beyond it, creating a room answers 503 too_many_rooms.
	MaxRooms int
	// EventLogBytes bounds the events one room keeps for resuming clients
	// (default 256 KiB), EventLogTotalBytes those of all rooms together
	// (default 256 MiB): beyond them the oldest events go first (a client
	// that needed them reconnects to a snapshot).
	EventLogBytes, EventLogTotalBytes int64
	// StreamsPerMember bounds one member's open event streams (default 4);
	// one more answers 429 too_many_streams.
	StreamsPerMember int
	// FS is the file system of the journal and the checkpoints (default:
	// the operating system's). Tests inject journal/faultfs to fill the
	// disk or fail an fsync.
	FS journal.FS
	// CheckShared is passed to the runtime (reactor.Config.CheckShared):
	// tests set reactortest.NoAliasing to check that no reply or message
	// shares memory with a room's state.
	CheckShared func(addr, what string, state, value any)

	// WebhookAllowPrivate lets room webhooks reach loopback, private and
	// other non-public addresses (refused by default: SSRF).
	WebhookAllowPrivate bool
	// WebhookTimeout bounds one delivery attempt (default 10s).
	WebhookTimeout time.Duration
	// WebhookBackoffMax caps the delay between two delivery attempts
	// (default 5m); the first retry comes within 4s.
	WebhookBackoffMax time.Duration
	// WebhookAttempts is how many times a delivery is tried before it is
	// dead-lettered (default 10).
	WebhookAttempts int
	// WebhookWorkers is how many deliveries run at once (default 8).
	WebhookWorkers int
	// PublicURL is the base of the invite links the UI shows, e.g.
	// "https://poker.example.com" (default "": the address the browser
	// used). See ValidatePublicURL.
	PublicURL string
	// Admin says who may use the operator endpoints (/status, /status.json,
	// /metrics, /debug/pprof/) on Handler: AdminLoopback (default),
	// AdminPublic or AdminOff (serve AdminHandler elsewhere).
	Admin string
	// Version is shown on /status (default: from the build information).
	Version string

	// RedisURL, if set ("redis://host:6379/0"), keeps the rooms in Redis
	// instead of this process's journal: any number of servers with the
	// same RedisURL and Cluster serve any room (see docs/POKER.md, "Redis
	// mode"). DataDir still holds this server's webhook queue.
	RedisURL string
	// Cluster names the deployment in Redis: every key and stream starts
	// with Cluster + ":" (default "poker"), so deployments share a Redis.
	Cluster string

	// NATS, if set ("nats://host:4222", comma-separated for several
	// servers), makes this server a node of the reactor cluster Cluster
	// over NATS JetStream: the rooms are partitioned over the nodes, any
	// node serves every room (see docs/CLUSTER.md). DataDir keeps the
	// node's local journal.
	NATS string
	// Node names this node in the cluster (required with NATS; unique).
	Node string
	// FrontEnd makes a node that serves HTTP only and owns no rooms.
	FrontEnd bool
	// Partitions is the number of room partitions (default 16); fixed when
	// the cluster is first created: every node must use the same.
	Partitions int
	// LeaseTTL is how long a dead node's rooms stay unserved at most,
	// before another node takes them over (default 2s).
	LeaseTTL time.Duration
	// NATSReplicas of the streams and buckets (default: 3 on a NATS
	// cluster of 3 or more servers, else 1).
	NATSReplicas int
	// NATSSyncAlways says the NATS servers run with sync_interval: always
	// (only a warning depends on it).
	NATSSyncAlways bool
	// NATSWait bounds the wait for JetStream at start (default 2m).
	NATSWait time.Duration

	// SingleGoroutine runs every service of the server on one goroutine
	// (reactor.Config.SingleGoroutine): the deployment with no parallelism
	// at all, same code.
	SingleGoroutine bool

	shared *poker.Shared // set by New in Redis mode
}

// redisGrace is how much longer than RoomTTL a room's keys live in Redis
// after its last command: a process that has the room loaded closes it at
// RoomTTL (its streams get room_closed); the keys then expire with nobody
// needing them. A room no process has loaded simply expires.
const redisGrace = time.Minute

// Server is a running planning-poker server: runtime, journal, rooms and
// the HTTP handler. Close it to stop.
type Server struct {
	cfg     Config
	log     *slog.Logger
	journal *journal.Journal
	rt      *reactor.Runtime
	rooms   *poker.Rooms
	mux     *http.ServeMux
	errs    *gateway.ErrorMapper
	reg     *prometheus.Registry
	http    *httpMetrics
	started time.Time
	beat    *heartbeat
	streams *streamWriters // detached event streams
	health  *health
	failLog gateway.LogLimiter // 5xx request lines
	creates *limiter
	jobs    *jobs.Queues // webhook deliveries
	hooks   *webhooks
	store   *trackedStore
	sampler *sampler
	redis   *redisRooms // Redis mode only
	nats    *natsRooms  // NATS cluster mode only

	closeOnce sync.Once
	closeErr  error
}

// New opens the journal and checkpoints under cfg.DataDir, restores every
// room (checkpoints, then journal replay) and returns a server ready to
// serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: Config.DataDir is required")
	}
	cfg = cfg.withDefaults()
	mkdir := os.MkdirAll
	if cfg.FS != nil {
		mkdir = cfg.FS.MkdirAll
	}
	if err := mkdir(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("server: create data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, started: time.Now()}
	var err error
	if cfg.PublicURL, err = ValidatePublicURL(cfg.PublicURL); err != nil {
		return nil, err
	}
	if cfg.Admin != AdminLoopback && cfg.Admin != AdminPublic && cfg.Admin != AdminOff {
		return nil, &configError{"Admin", fmt.Sprintf("%q: want %q, %q or %q", cfg.Admin, AdminLoopback, AdminPublic, AdminOff)}
	}
	s.cfg = cfg
	files, err := file.Open(file.Options{Dir: filepath.Join(cfg.DataDir, "checkpoints"), FS: cfg.FS})
	if err != nil {
		return nil, fmt.Errorf("server: open checkpoints: %w", err)
	}
	store := &trackedStore{Store: files}
	s.store = store
	s.journal, err = journal.Open(ctx, journal.Options{Dir: s.journalDir(), Logger: cfg.Logger, FS: cfg.FS})
	if err != nil {
		return nil, fmt.Errorf("server: open journal: %w", err)
	}
	s.rt, err = reactor.New(reactor.Config{
		Store: store, Journal: s.journal, Logger: cfg.Logger, CheckpointInterval: cfg.CheckpointInterval,
		CheckShared: cfg.CheckShared, SingleGoroutine: cfg.SingleGoroutine,
	})
	if err != nil {
		s.journal.Close()
		return nil, fmt.Errorf("server: runtime: %w", err)
	}
	if cfg.RedisURL != "" {
		if s.redis, err = openRedisRooms(ctx, cfg); err != nil {
			_ = s.rt.Close(context.Background())
			s.journal.Close()
			return nil, err
		}
		cfg.shared = s.redis.shared()
		s.cfg = cfg
	}
	s.hooks = newWebhooks(cfg)
	if cfg.NATS != "" {
		if cfg.RedisURL != "" {
			s.journal.Close()
			return nil, &configError{"NATS", "excludes RedisURL: rooms live in one place"}
		}
		// Webhook deliveries are queued in the partitions (openNATSRooms):
		// s.jobs stays nil.
		s.nats, err = openNATSRooms(ctx, cfg, s.hooks)
		if err == nil {
			opt := roomOptions(cfg, nil)
			opt.Shared = &poker.Shared{Events: s.nats.events, Census: poker.CensusOf(s.nats.node.Client())}
			s.rooms, err = poker.Front(s.nats.node.Client(), opt)
		}
	} else {
		s.rooms, s.jobs, err = register(s.rt, cfg)
	}
	if err != nil {
		_ = s.nats.close(context.Background())
		s.redis.close()
		s.journal.Close()
		return nil, err
	}
	began := time.Now()
	if err := s.rt.Start(ctx); err != nil {
		_ = s.rt.Close(context.Background())
		_ = s.nats.close(context.Background())
		s.redis.close()
		s.journal.Close()
		return nil, fmt.Errorf("server: start runtime: %w", err)
	}
	s.log.Info("poker: rooms restored", "took", time.Since(began).Round(time.Millisecond), "data", cfg.DataDir)
	if err := s.startJobs(ctx); err != nil {
		_ = s.rt.Close(context.Background())
		_ = s.nats.close(context.Background())
		s.redis.close()
		s.journal.Close()
		return nil, fmt.Errorf("server: start webhook workers: %w", err)
	}
	s.errs = newErrorMapper(cfg.Logger)
	s.health = newHealth(cfg.Logger, s.journal)
	if cfg.CreatesPerMinute > 0 {
		s.creates = newLimiter(cfg.CreatesPerMinute)
	}
	s.beat = newHeartbeat(cfg.Heartbeat)
	s.streams = newStreamWriters(s)
	s.reg = prometheus.NewRegistry()
	s.http = newHTTPMetrics()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{s: s}, &webhookCollector{s: s}, s.http.requests, s.http.latency)
	s.routes()
	s.sampler = newSampler(s)
	go s.sampler.run()
	return s, nil
}

// withDefaults fills in the documented defaults of the zero fields.
func (cfg Config) withDefaults() Config {
	if cfg.RoomTTL <= 0 {
		cfg.RoomTTL = 24 * time.Hour
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = gateway.DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CreatesPerMinute == 0 {
		cfg.CreatesPerMinute = 30
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 15 * time.Second
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = defaultWebhookTimeout
	}
	if cfg.WebhookBackoffMax <= 0 {
		cfg.WebhookBackoffMax = defaultWebhookBackoffMax
	}
	if cfg.WebhookAttempts <= 0 {
		cfg.WebhookAttempts = defaultWebhookAttempts
	}
	if cfg.WebhookWorkers <= 0 {
		cfg.WebhookWorkers = defaultWebhookWorkers
	}
	if cfg.Admin == "" {
		cfg.Admin = AdminLoopback
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "poker"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = defaultPartitions
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = defaultLeaseTTL
	}
	if cfg.NATSWait <= 0 {
		cfg.NATSWait = 2 * time.Minute
	}
	if cfg.Version == "" {
		cfg.Version = buildVersion()
	}
	return cfg
}

// HTTPServer returns an http.Server for the server's Handler with the
// timeouts a public listener needs: 10s to send the headers, 30s to send
// a request, cfg.WriteTimeout to read a response (event streams set their
// own deadline per write), 2 minutes idle between requests, 32 KiB of
// headers, errors logged at WARN. Streams are closed on Shutdown.
func (s *Server) HTTPServer() *http.Server {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(s.CloseStreams)
	return hs
}

// startJobs starts the webhook workers of this server's own queue, if it
// has one (not in cluster mode: each partition has its own).
func (s *Server) startJobs(ctx context.Context) error {
	if s.jobs == nil {
		return nil
	}
	return s.jobs.Start(context.WithValue(ctx, webhooksKey{}, s.hooks))
}

// Register registers the poker rooms on rt (before rt.Start) exactly as
// the server does: journaled, with cfg.RoomTTL and every other room option
// the server uses (cfg.DataDir is not looked at). New calls it, and so
// does the offline replay (poker journal replay), so a journal is always
// replayed by the registrations that wrote it.
//
// The webhook delivery queue (/jobs/webhooks) is registered with the rooms:
// rooms enqueue into it from their turns, so a replay needs it too.
func Register(rt *reactor.Runtime, cfg Config) (*poker.Rooms, error) {
	rooms, _, err := register(rt, cfg)
	return rooms, err
}

func register(rt *reactor.Runtime, cfg Config) (*poker.Rooms, *jobs.Queues, error) {
	cfg = cfg.withDefaults()
	qs, onFinished, err := registerWebhooks(rt, cfg)
	if err != nil {
		return nil, nil, err
	}
	opt := roomOptions(cfg, onFinished)
	opt.Shared = cfg.shared
	rooms, err := poker.Register(rt, opt)
	return rooms, qs, err
}

// roomOptions are the room options of every mode.
func roomOptions(cfg Config, onFinished func(*reactor.Ctx, poker.Finished) error) poker.Options {
	return poker.Options{
		TTL: cfg.RoomTTL, Logger: cfg.Logger, Extra: []reactor.Option{reactor.Journaled()},
		MaxRooms: cfg.MaxRooms, EventLogBytes: cfg.EventLogBytes, EventLogTotalBytes: cfg.EventLogTotalBytes,
		StreamsPerMember: cfg.StreamsPerMember, OnFinished: onFinished,
	}
}

// Handler returns the server's HTTP handler. Serve it with the timeouts of
// HTTPServer.
func (s *Server) Handler() http.Handler { return s.deadline(s.logRequests(s.mux)) }

// deadline bounds the work of every request but an event stream by
// cfg.RequestTimeout.
func (s *Server) deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/events") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// journalDir is where the journal's segments are.
func (s *Server) journalDir() string { return filepath.Join(s.cfg.DataDir, "journal") }

// Rooms returns the domain the server exposes.
func (s *Server) Rooms() *poker.Rooms { return s.rooms }

// CloseStreams ends every open event stream (clients reconnect), so that
// http.Server.Shutdown does not wait for them. Register it with
// http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() { s.rooms.CloseStreams() }

// Close stops the rooms (saving their state), the runtime and the journal.
// Shut the HTTP server down first. Calling Close again returns the first
// result.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.rooms.Close()
		s.streams.close()
		s.beat.Stop()
		// Deliveries in flight get a moment; one cut short is retried
		// (after a restart if need be): the queue is durable.
		jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if s.jobs != nil {
			_ = s.jobs.Close(jctx)
		}
		cancel()
		s.sampler.close()
		err := s.nats.close(ctx)
		err = errors.Join(err, s.rt.Close(ctx))
		s.redis.close()
		if jerr := s.journal.Close(); jerr != nil {
			err = errors.Join(err, fmt.Errorf("server: close journal: %w", jerr))
		}
		s.closeErr = err
	})
	return s.closeErr
}

// logRequests logs each request's method, route, status and duration. It
// never logs the query string or headers (tokens travel there).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(began)
		s.http.observe(route, sw.status, d)
		if strings.HasPrefix(route, "GET /api/rooms/{room}/events") || route == "GET /metrics" || route == "GET /healthz" {
			return
		}
		if sw.status < 500 {
			s.log.Debug("http", "method", r.Method, "route", route, "status", sw.status, "took", d)
			return
		}
		// Under overload every request may fail alike: one line per route
		// and status per second, counting the rest (all are in /metrics).
		if ok, n := s.failLog.Allow(route + " " + strconv.Itoa(sw.status)); ok {
			s.log.Warn("http", "method", r.Method, "route", route, "status", sw.status, "took", d, "suppressed", n)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
