package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/poker"
)

// NATS cluster mode (Config.NATS): the rooms are partitioned over the
// nodes of a reactor cluster (package cluster). Each node owns some
// partitions of /rooms — a fenced lease, the partition's journal stream
// and checkpoints in JetStream, a runtime with the rooms registered as
// here — and routes the commands of every other room to its owner. Room
// events go to the cluster's event stream (cluster.Events), which the
// event streams of any node follow, so an SSE client may connect to, and
// resume on, any node. Each partition runtime has its own webhook queue
// (/jobs/webhooks, journaled into the partition's stream like its rooms):
// a room's finished rounds are delivered by the node that owns it, and a
// delivery pending when the partition moves is made by the next owner.
// Commands without an Idempotency-Key get a key of their own
// (autoKeyed) and one attempt of a remote call lasts at most 2 lease TTLs
// (at least 3 s), so a command whose owner dies mid-call is sent again to
// the next owner within the request's deadline, and applied once.

// Defaults of the cluster mode.
const (
	defaultPartitions = 16
	defaultLeaseTTL   = 2 * time.Second
)

// natsRooms is the NATS side of a server in cluster mode.
type natsRooms struct {
	nc       *nats.Conn
	node     *cluster.Node
	events   *cluster.Events
	warnings []string

	mu      sync.Mutex
	set     *partitionHooks       // set up by the takeover under way
	serving map[*jobs.Queues]bool // webhook queues of the partitions served
}

// partitionHooks is the webhook queue registered on a partition runtime.
type partitionHooks struct {
	rt *reactor.Runtime
	qs *jobs.Queues
}

// openNATSRooms connects, opens the event stream and joins the cluster.
// Each partition runtime gets the rooms and a webhook queue, whose workers
// run (with hooks) while the node serves the partition.
func openNATSRooms(ctx context.Context, cfg Config, hooks *webhooks) (*natsRooms, error) {
	if cfg.Node == "" {
		return nil, &configError{"Node", "required with NATS (-node): a name unique in the cluster"}
	}
	nc, err := nats.Connect(cfg.NATS, nats.Name("poker "+cfg.Cluster+"/"+cfg.Node),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				cfg.Logger.Warn("poker: NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { cfg.Logger.Info("poker: NATS reconnected", "url", c.ConnectedUrlRedacted()) }))
	if err != nil {
		return nil, fmt.Errorf("server: connect to NATS %s: %w", cfg.NATS, err)
	}
	r := &natsRooms{nc: nc, serving: map[*jobs.Queues]bool{}}
	fail := func(err error) (*natsRooms, error) {
		r.close(context.Background())
		return nil, err
	}
	// A NATS cluster still forming answers once a majority of its servers
	// is up, and places replicated streams a little later: retry until
	// NATSWait.
	js, err := jetstream.New(nc)
	if err == nil {
		err = retryNATS(ctx, cfg, "reach JetStream", func(ctx context.Context) error {
			_, err := js.AccountInfo(ctx)
			return err
		})
	}
	if err != nil {
		return fail(err)
	}
	replicas := cfg.NATSReplicas
	if replicas == 0 {
		replicas = 1
		if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
			replicas = 3
		}
	}
	r.warnings = natsWarnings(nc, cfg.NATSSyncAlways)
	for _, w := range r.warnings {
		cfg.Logger.Warn("poker: " + w)
	}
	err = retryNATS(ctx, cfg, "open the event stream", func(ctx context.Context) (err error) {
		r.events, err = cluster.OpenEvents(ctx, nc, cluster.EventsConfig{Cluster: cfg.Cluster, PerAddress: eventHistory,
			MaxAge: cfg.RoomTTL + redisGrace, Replicas: replicas, Logger: cfg.Logger})
		return err
	})
	if err != nil {
		return fail(err)
	}
	err = retryNATS(ctx, cfg, "join cluster "+cfg.Cluster, func(ctx context.Context) (err error) {
		r.node, err = cluster.OpenNode(ctx, cluster.NodeConfig{
			Conn: nc, Cluster: cfg.Cluster, Node: cfg.Node, Partitions: cfg.Partitions,
			Groups: []string{poker.Address}, Services: []string{poker.CensusAddress}, FrontEnd: cfg.FrontEnd, LeaseTTL: cfg.LeaseTTL, Replicas: replicas,
			RequestTimeout: max(2*cfg.LeaseTTL, 3*time.Second), Logger: cfg.Logger,
			Setup: func(rt *reactor.Runtime) error { return r.setup(rt, cfg) },
			Serve: func(ctx context.Context, rt *reactor.Runtime) (func(context.Context), error) {
				return r.serve(ctx, rt, hooks)
			},
		})
		return err
	})
	if err != nil {
		return fail(err)
	}
	return r, nil
}

// setup registers the rooms, their webhook queue and the room census
// (-max-rooms across the cluster; a service of its own partition) on a
// partition's runtime. The node sets up and serves one takeover at a time.
func (r *natsRooms) setup(rt *reactor.Runtime, cfg Config) error {
	qs, onFinished, err := registerWebhooks(rt, cfg)
	if err != nil {
		return err
	}
	opt := roomOptions(cfg, onFinished)
	opt.Publish = r.events.Publish
	opt.Census = poker.CensusAddress
	if _, err := poker.Register(rt, opt); err != nil {
		return err
	}
	if err := poker.RegisterCensus(rt); err != nil {
		return err
	}
	r.mu.Lock()
	r.set = &partitionHooks{rt: rt, qs: qs}
	r.mu.Unlock()
	return nil
}

// serve starts the webhook workers of a partition's runtime that setup
// registered; the stop it returns ends them.
func (r *natsRooms) serve(ctx context.Context, rt *reactor.Runtime, hooks *webhooks) (func(context.Context), error) {
	r.mu.Lock()
	ph := r.set
	r.set = nil
	r.mu.Unlock()
	if ph == nil || ph.rt != rt {
		return nil, errors.New("server: partition runtime served without its webhook queue")
	}
	if err := ph.qs.Start(context.WithValue(ctx, webhooksKey{}, hooks)); err != nil {
		return nil, fmt.Errorf("server: start webhook workers: %w", err)
	}
	r.mu.Lock()
	r.serving[ph.qs] = true
	r.mu.Unlock()
	return func(ctx context.Context) {
		r.mu.Lock()
		delete(r.serving, ph.qs)
		r.mu.Unlock()
		_ = ph.qs.Close(ctx) // deliveries still running are made again by the next owner
	}, nil
}

// webhookQueues returns the webhook queues of the partitions served now.
func (r *natsRooms) webhookQueues() []*jobs.Queues {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*jobs.Queues, 0, len(r.serving))
	for qs := range r.serving {
		out = append(out, qs)
	}
	return out
}

// retryNATS runs fn (5 s a try) until it succeeds, fails with a
// configuration error (or finds no JetStream), or cfg.NATSWait passes.
func retryNATS(ctx context.Context, cfg Config, what string, fn func(context.Context) error) error {
	began, told := time.Now(), time.Now()
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(tctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, cluster.ErrInvalidConfig):
			return fmt.Errorf("server: %s: %w", what, err)
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			return fmt.Errorf("server: NATS %s has no JetStream (start nats-server with -js): %w", cfg.NATS, err)
		case time.Since(began) > cfg.NATSWait:
			return fmt.Errorf("server: %s: not done after %v: %w", what, cfg.NATSWait, err)
		case time.Since(told) > 5*time.Second:
			cfg.Logger.Info("poker: NATS not ready yet (a NATS cluster places replicated streams once its servers are up)", "step", what, "err", err)
			told = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server: %s: %w", what, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// natsWarnings names the NATS settings under which JetStream can lose
// acknowledged commands (the node adds its own: fewer than 3 replicas).
func natsWarnings(nc *nats.Conn, syncAlways bool) []string {
	var w []string
	if nc.ConnectedClusterName() == "" {
		w = append(w, "NATS: a single NATS server: when it is down no room can be served, and its loss loses every room")
	}
	if !syncAlways {
		w = append(w, "NATS: sync_interval not known to be \"always\": with NATS's default (lazy fsync) a power failure can lose acknowledged commands (set jetstream { sync_interval: always } and -nats-sync-always)")
	}
	return w
}

// ready reports whether the node serves: a front end once connected, a
// room node once it owns a partition, or none is due to it (more nodes than
// partitions; cluster.Node.Serving).
func (r *natsRooms) ready() bool {
	if r == nil {
		return true
	}
	if r.nc.Status() != nats.CONNECTED {
		return false
	}
	return r.node.FrontEnd() || r.node.Serving()
}

// close leaves the cluster (partitions checkpointed and released) and
// closes the connection; nil: nothing.
func (r *natsRooms) close(ctx context.Context) error {
	if r == nil {
		return nil
	}
	var err error
	if r.node != nil {
		err = r.node.Close(ctx)
	}
	if r.events != nil {
		r.events.Close()
	}
	r.nc.Close()
	return err
}

// clusterStatus is the cluster section of /status.
type clusterStatus struct {
	Cluster    string   `json:"cluster"`
	Node       string   `json:"node"`
	FrontEnd   bool     `json:"frontEnd"`
	Partitions int      `json:"partitions"`
	Owned      []string `json:"owned"`
	NATS       string   `json:"nats"`
	Warnings   []string `json:"warnings"`
}

func (s *Server) clusterStatus() *clusterStatus {
	r := s.nats
	if r == nil {
		return nil
	}
	st := &clusterStatus{Cluster: s.cfg.Cluster, Node: s.cfg.Node, FrontEnd: s.cfg.FrontEnd, Partitions: s.cfg.Partitions,
		Owned: []string{}, NATS: r.nc.ConnectedUrlRedacted(), Warnings: append(r.node.Warnings(), r.warnings...)}
	for _, p := range r.node.Owned() {
		st.Owned = append(st.Owned, p.String())
	}
	if st.Warnings == nil {
		st.Warnings = []string{}
	}
	return st
}
