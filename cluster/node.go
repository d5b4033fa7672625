package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
)

// NodeConfig configures OpenNode. Zero values of the optional fields are
// usable.
type NodeConfig struct {
	// Conn is the node's NATS connection. Required. The node does not close it.
	Conn *nats.Conn
	// Cluster is the cluster name (prefix of every NATS name). Required.
	Cluster string
	// Node identifies this node (lease entries, membership). Required,
	// unique in the cluster.
	Node string
	// Partitions is the number of partitions of each group. Fixed for the
	// cluster's life. Required.
	Partitions int
	// Groups are the parent addresses of keyed children ("/rooms"): each
	// is split into Partitions partitions.
	Groups []string
	// Services are top-level addresses: each is a partition of one.
	Services []string
	// FrontEnd makes a node that owns no partitions and is not counted as
	// a member: it only routes (Client, Ref) — the stateless front end of
	// an HTTP API. Setup may be nil.
	FrontEnd bool
	// Setup registers the services on a partition's runtime: the same code
	// on every node, called once per partition this node takes over (it
	// registers every service; the runtime serves the addresses of its
	// partition only). Required. Register them Journaled: a partition moves
	// between nodes through its journal and checkpoints.
	Setup func(rt *reactor.Runtime) error
	// Serve, if not nil, starts what works on a partition's runtime besides
	// its services — job workers, say: called after the runtime started
	// (replayed) and before the partition takes requests, with a context
	// that ends when the partition closes. stop is called when the
	// partition closes, before its runtime: it should stop such work,
	// waiting at most until its ctx ends (the runtime then drains and
	// checkpoints while the lease is valid).
	Serve func(ctx context.Context, rt *reactor.Runtime) (stop func(context.Context), err error)
	// LeaseTTL of partition leases and of membership entries (default 6s).
	LeaseTTL time.Duration
	// Replicas of the streams and buckets the node creates: 3 on a NATS
	// cluster. Default 1.
	Replicas int
	// RequestTimeout bounds one attempt of a remote call (default
	// 2×LeaseTTL; a handler that may take longer needs more). After a
	// timeout a call that carries an idempotency key, or of a ReadOnly
	// method, is tried again until the caller's context ends; any other
	// fails (it may have been applied).
	RequestTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *NodeConfig) withDefaults() {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 6 * time.Second
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 2 * c.LeaseTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports whether the config is usable.
func (c NodeConfig) Validate() error {
	if err := validName(c.Cluster); err != nil {
		return err
	}
	switch {
	case c.Conn == nil:
		return fmt.Errorf("%w: node Conn is nil", ErrInvalidConfig)
	case c.Node == "" || strings.ContainsAny(c.Node, ". *>/\\"):
		return fmt.Errorf("%w: node id %q empty or not a valid KV key", ErrInvalidConfig, c.Node)
	case c.Setup == nil && !c.FrontEnd:
		return fmt.Errorf("%w: node Setup is nil", ErrInvalidConfig)
	case len(c.Groups)+len(c.Services) == 0:
		return fmt.Errorf("%w: node has no Groups or Services", ErrInvalidConfig)
	case c.LeaseTTL < 0 || c.RequestTimeout < 0:
		return fmt.Errorf("%w: negative node LeaseTTL or RequestTimeout", ErrInvalidConfig)
	}
	_, err := NewPartitioner(c.Partitions)
	return err
}

// NodesBucket is the KV bucket of the cluster's live nodes (entries expire
// after the lease TTL unless heartbeated).
func NodesBucket(cluster string) string { return cluster + "_nodes" }

// RPCSubject is the subject the owner of partition p answers remote calls on.
func RPCSubject(cluster string, p Partition) string { return cluster + ".rpc." + p.Token() }

// Headers of a remote call request and its error reply.
const (
	hdrAddr   = "Reactor-Addr"
	hdrMethod = "Reactor-Method"
	hdrKey    = "Reactor-Key"
	hdrError  = "Reactor-Error" // reply body is reactor.EncodeError
)

// Node is one member of a cluster: it owns some partitions (a lease, a
// journal stream, a reactor.Runtime and an RPC subscription each) and
// routes messages for the others over NATS. Every node runs the same
// Setup; a partition runs on one node at a time.
//
// Placement: every LeaseTTL/3 the node heartbeats its membership entry
// (with how many partitions it owns) and tries to acquire free partitions
// until it owns ceil(partitions / live nodes). A partition whose lease
// fences is closed at once (its runtime closed, its subscription dropped;
// checkpoint writes are refused once the lease is not valid). A node
// owning more than its share, or the node owning most while another is
// below floor(partitions / live nodes), releases one partition per
// placement round, after two rounds over (three for the node owning most)
// — checkpoint, close, release — so a joining node gets partitions
// without a storm.
type Node struct {
	cfg    NodeConfig
	parts  Partitioner
	groups map[string]bool
	svcs   map[string]bool
	all    []Partition
	rpc    map[Partition]string // RPCSubject of every partition in all
	js     jetstream.JetStream
	leases *Leases
	ckpts  *Checkpoints
	nodes  jetstream.KeyValue
	client *reactor.Runtime
	log    *slog.Logger
	// warnings name the settings under which acknowledged records can be
	// lost (logged at open; Warnings).
	warnings []string

	mu    sync.Mutex
	owned map[Partition]*partition

	// Placement state, of the placement goroutine.
	over       int          // consecutive rounds over the share
	shortSince time.Time    // since when some node is below floor (zero: none)
	fair       atomic.Int64 // floor share at the last round (Serving)
	rounds     atomic.Int64 // placement rounds done

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped sync.Once
}

// partition is one partition this node serves.
type partition struct {
	p     Partition
	lease *Lease
	j     *Journal
	rt    *reactor.Runtime
	sub   *nats.Subscription
	serve func(context.Context) // stop of NodeConfig.Serve, or nil
	ctx   context.Context
	stop  context.CancelFunc
	reqs  sync.WaitGroup // requests being delivered
	once  sync.Once
}

// OpenNode joins the cluster: it opens (or creates) the lease and
// membership buckets and the checkpoint store, starts the client runtime
// and the placement loop, and returns without waiting for partitions.
func OpenNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	parts, _ := NewPartitioner(cfg.Partitions)
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("cluster: open node: %w", err)
	}
	n := &Node{cfg: cfg, parts: parts, js: js, groups: map[string]bool{}, svcs: map[string]bool{},
		owned: map[Partition]*partition{}, rpc: map[Partition]string{}, log: cfg.Logger.With("node", cfg.Node)}
	for _, g := range cfg.Groups {
		n.groups[g] = true
		for i := range parts.Count() {
			n.all = append(n.all, Partition{Group: g, Index: i, Count: parts.Count()})
		}
	}
	for _, s := range cfg.Services {
		n.svcs[s] = true
		n.all = append(n.all, Service(s))
	}
	for _, p := range n.all {
		n.rpc[p] = RPCSubject(cfg.Cluster, p)
	}
	n.leases, err = OpenLeases(ctx, js, LeaseConfig{Cluster: cfg.Cluster, Node: cfg.Node, TTL: cfg.LeaseTTL, Replicas: cfg.Replicas, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n.ckpts, err = OpenCheckpoints(ctx, js, CheckpointConfig{Cluster: cfg.Cluster, Replicas: cfg.Replicas, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n.nodes, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: NodesBucket(cfg.Cluster), Description: "reactor cluster members",
		TTL: cfg.LeaseTTL, History: 1, Storage: jetstream.MemoryStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: open membership bucket: %w", err)
	}
	n.client, err = reactor.New(reactor.Config{Logger: cfg.Logger, Remote: clientRemote{n}})
	if err != nil {
		return nil, err
	}
	if err := n.client.Start(ctx); err != nil {
		return nil, err
	}
	if cfg.Replicas < 3 && !cfg.FrontEnd {
		n.warnings = append(n.warnings, fmt.Sprintf("journals, leases and checkpoints have %d replica(s), fewer than 3: acknowledged records are lost if the NATS server holding them loses its disk (and, with the default lazy sync_interval, on a power failure)", cfg.Replicas))
	}
	for _, w := range n.warnings {
		n.log.Warn("cluster: " + w)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if !cfg.FrontEnd {
		n.wg.Add(1)
		go n.placeLoop()
	}
	return n, nil
}

// Client is a runtime with no services of its own whose every message goes
// to the owner of its address: for callers outside any partition (an HTTP
// handler). m.Call(ctx, node.Client().Ref("/rooms/42"), req) works on any
// node.
func (n *Node) Client() *reactor.Runtime { return n.client }

// Ref is n.Client().Ref(addr).
func (n *Node) Ref(addr string) reactor.Ref { return n.client.Ref(addr) }

// Owned lists the partitions this node serves now, in order.
func (n *Node) Owned() []Partition {
	n.mu.Lock()
	out := make([]Partition, 0, len(n.owned))
	for p := range n.owned {
		out = append(out, p)
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b Partition) int { return cmp.Or(strings.Compare(a.Group, b.Group), a.Index-b.Index) })
	return out
}

// Warnings name this node's settings under which acknowledged records can
// be lost (fewer than 3 replicas), for an operator's status page; they
// were logged when the node opened.
func (n *Node) Warnings() []string { return slices.Clone(n.warnings) }

// FrontEnd reports whether the node only routes (NodeConfig.FrontEnd).
func (n *Node) FrontEnd() bool { return n.cfg.FrontEnd }

// PartitionOf returns the partition of addr, false for an address of no
// configured group or service.
func (n *Node) PartitionOf(addr string) (Partition, bool) {
	if n.svcs[addr] {
		return Service(addr), true
	}
	if i := strings.LastIndexByte(addr, '/'); i > 0 && i < len(addr)-1 && n.groups[addr[:i]] {
		return n.parts.Child(addr[:i], addr[i+1:]), true
	}
	return Partition{}, false
}

// Close leaves the cluster: it stops placement, closes every partition
// (checkpoint, close, release its lease) and the client runtime, and
// removes the membership entry. It returns when done or when ctx ends.
// Safe to call twice.
func (n *Node) Close(ctx context.Context) error {
	var err error
	n.stopped.Do(func() {
		n.cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			n.wg.Wait()
			n.mu.Lock()
			parts := make([]*partition, 0, len(n.owned))
			for _, pt := range n.owned {
				parts = append(parts, pt)
			}
			n.mu.Unlock()
			var wg sync.WaitGroup
			for _, pt := range parts {
				wg.Go(func() { n.closePartition(ctx, pt, true) })
			}
			wg.Wait()
			n.client.Close(ctx)
			if !n.cfg.FrontEnd {
				dctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				n.nodes.Delete(dctx, n.cfg.Node)
			}
		}()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("cluster: close node: %w", ctx.Err())
		}
	})
	return err
}

// placeLoop heartbeats membership and runs placement rounds until Close.
func (n *Node) placeLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		n.place()
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// memberValue is a node's membership entry, rewritten at every placement
// round: how many partitions it owns, so that placement sees who is short.
type memberValue struct {
	Owned int `json:"owned"`
}

// heartbeat writes this node's membership entry.
func (n *Node) heartbeat(ctx context.Context, owned int) error {
	v, _ := json.Marshal(memberValue{Owned: owned})
	_, err := n.nodes.Put(ctx, n.cfg.Node, v)
	return err
}

// members returns how many partitions each live node owns, as of its last
// heartbeat (this node's own count is the caller's to set).
// One pass of a watcher reads every live entry with its value (what Keys
// does, values dropped), not a Get per key.
func (n *Node) members(ctx context.Context) map[string]int {
	counts := map[string]int{}
	w, err := n.nodes.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return counts // a slow read: this node alone
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			break // the entries there are now have all come
		}
		var v memberValue
		_ = json.Unmarshal(e.Value(), &v)
		counts[e.Key()] = v.Owned
	}
	return counts
}

// shares is what placement aims at: with p partitions and live nodes,
// every node owns floor or ceil of p/live. giver is the node that hands a
// partition off while short (a node below floor) is true: the one owning
// most, ties to the smallest id, so that two nodes do not both give.
func shares(p int, counts map[string]int) (floor, ceil int, short bool, giver string) {
	live := max(len(counts), 1)
	floor, ceil = p/live, (p+live-1)/live
	most := -1
	for id, c := range counts {
		short = short || c < floor
		if c > most || c == most && id < giver {
			most, giver = c, id
		}
	}
	return floor, ceil, short, giver
}

// place runs one placement round: heartbeat, hand one partition off if
// this node has been over its share for long enough, or take free
// partitions up to its share.
//
// The share of each node is floor or ceil of partitions/live nodes. A
// node above ceil gives; while a node is below floor (it joined, say 4
// partitions on 3 nodes held 2+2+0), the node owning most gives, and the
// others leave free partitions to the short node for a while (3 lease
// TTLs) instead of taking them back — after that they take them anyway:
// a partition served by the wrong node beats one served by none.
func (n *Node) place() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.LeaseTTL)
	defer cancel()
	n.mu.Lock()
	owned := len(n.owned)
	n.mu.Unlock()
	if err := n.heartbeat(ctx, owned); err != nil {
		n.log.Warn("cluster: membership heartbeat failed", "err", err)
		return
	}
	counts := n.members(ctx)
	counts[n.cfg.Node] = owned
	floor, ceil, short, giver := shares(len(n.all), counts)
	defer func() {
		n.mu.Lock()
		now := len(n.owned)
		n.mu.Unlock()
		n.fair.Store(int64(floor))
		n.rounds.Add(1)
		if now != owned && n.ctx.Err() == nil {
			n.heartbeat(ctx, now) // others see the change this round, not the next
		}
	}()
	if !short {
		n.shortSince = time.Time{}
	} else if n.shortSince.IsZero() {
		n.shortSince = time.Now()
	}
	// Rounds in a row over before giving: 2 above ceil; 3 for a short
	// node, whose count may be a round old (it may have just taken the
	// partition the previous giver released).
	rounds := 0
	switch {
	case owned > ceil:
		rounds = 2
	case short && giver == n.cfg.Node && owned > floor:
		rounds = 3
	}
	if rounds == 0 {
		n.over = 0
	} else if n.over++; n.over >= rounds {
		n.over = 0
		// The last one this node would take (see start): not an
		// arbitrary one, so that handoffs converge instead of moving a
		// partition it just took over.
		var extra *partition
		n.mu.Lock()
		for i := len(n.all) - 1; i >= 0 && extra == nil; i-- {
			extra = n.owned[n.all[(n.start()+i)%len(n.all)]]
		}
		n.mu.Unlock()
		if extra != nil {
			n.log.Info("cluster: handing partition off", "partition", extra.p.String(), "floor", floor, "ceil", ceil)
			hctx, hcancel := context.WithTimeout(n.ctx, n.takeoverTimeout())
			n.closePartition(hctx, extra, true)
			hcancel()
			return
		}
	}
	limit := ceil
	if short && owned >= floor && time.Since(n.shortSince) < 3*n.cfg.LeaseTTL {
		limit = owned // the short node's turn
	}
	began := time.Now()
	start := n.start()
	for i := range n.all {
		// A long round would delay the membership heartbeat: the next
		// round goes on where this one stops.
		if owned >= limit || n.ctx.Err() != nil || time.Since(began) > n.cfg.LeaseTTL/2 {
			return
		}
		p := n.all[(start+i)%len(n.all)]
		n.mu.Lock()
		_, have := n.owned[p]
		n.mu.Unlock()
		if have {
			continue
		}
		// Its own deadline, not the round's: replaying a long journal may
		// take longer than the lease TTL (the lease renews itself meanwhile),
		// and a deadline that always cuts the replay short would leave the
		// partition unserved for good.
		tctx, tcancel := context.WithTimeout(n.ctx, n.takeoverTimeout())
		err := n.takeOver(tctx, p)
		tcancel()
		if err != nil {
			if !errors.Is(err, ErrHeld) {
				n.log.Warn("cluster: take over partition", "partition", p.String(), "err", err)
			}
			continue
		}
		owned++
	}
}

// Serving reports whether this node has done a placement round and owns a
// partition — or none is due to it: more nodes than partitions (floor
// share 0). False while a joining node waits for its first handoff; always
// false on a front end, which serves none.
func (n *Node) Serving() bool {
	if n.cfg.FrontEnd || n.rounds.Load() == 0 {
		return false
	}
	n.mu.Lock()
	owned := len(n.owned)
	n.mu.Unlock()
	return owned > 0 || n.fair.Load() == 0
}

// takeoverTimeout bounds one takeover or handoff: 10 lease TTLs, at least
// 30 s.
func (n *Node) takeoverTimeout() time.Duration { return max(10*n.cfg.LeaseTTL, 30*time.Second) }

// start is where this node's placement order begins in n.all: a
// node-specific offset so that nodes do not all race for the same free
// partitions.
func (n *Node) start() int {
	h := fnv.New32a()
	h.Write([]byte(n.cfg.Node))
	return int(h.Sum32() % uint32(len(n.all)))
}

// takeOver acquires p and starts serving it: lease, journal (fenced),
// runtime (replayed), subscription.
func (n *Node) takeOver(ctx context.Context, p Partition) (err error) {
	// One step: a create whose answer is lost fails here and the next
	// round tries again (if it landed, the lease lapses unrenewed first).
	actx, cancel := context.WithTimeout(ctx, stepTimeout)
	lease, err := n.leases.Acquire(actx, p)
	cancel()
	if err != nil {
		return err
	}
	pt := &partition{p: p, lease: lease}
	pt.ctx, pt.stop = context.WithCancel(n.ctx)
	defer func() {
		if err != nil {
			pt.stop()
			if pt.serve != nil {
				pt.serve(context.WithoutCancel(ctx))
			}
			if pt.rt != nil {
				pt.rt.Close(context.WithoutCancel(ctx))
			}
			if pt.j != nil {
				pt.j.Close()
			}
			lease.Release(context.WithoutCancel(ctx))
		}
	}()
	pt.j, err = OpenJournal(ctx, n.cfg.Conn, JournalConfig{Cluster: n.cfg.Cluster, Partition: p, Lease: lease, Replicas: n.cfg.Replicas, Logger: n.cfg.Logger})
	if err != nil {
		return err
	}
	pt.rt, err = reactor.New(reactor.Config{
		Journal: pt.j,
		Store:   &partitionStore{s: n.ckpts, prefix: p.Token() + ":", lease: lease},
		Logger:  n.cfg.Logger,
		Remote:  partitionRemote{n, p},
	})
	if err != nil {
		return err
	}
	if err := n.cfg.Setup(pt.rt); err != nil {
		return fmt.Errorf("cluster: setup %s: %w", p, err)
	}
	if err := pt.rt.Start(ctx); err != nil {
		return fmt.Errorf("cluster: start %s: %w", p, err)
	}
	if n.cfg.Serve != nil {
		if pt.serve, err = n.cfg.Serve(pt.ctx, pt.rt); err != nil {
			return fmt.Errorf("cluster: serve %s: %w", p, err)
		}
	}
	pt.sub, err = n.cfg.Conn.Subscribe(RPCSubject(n.cfg.Cluster, p), pt.deliver)
	if err != nil {
		return fmt.Errorf("cluster: subscribe %s: %w", p, err)
	}
	n.mu.Lock()
	n.owned[p] = pt
	n.mu.Unlock()
	n.log.Info("cluster: serving partition", "partition", p.String(), "epoch", lease.Epoch())
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-lease.Fenced():
			n.log.Warn("cluster: partition fenced; closing it", "partition", p.String(), "err", lease.Err())
			cctx, cancel := context.WithTimeout(context.Background(), n.cfg.LeaseTTL)
			defer cancel()
			n.closePartition(cctx, pt, false)
		case <-pt.ctx.Done():
		}
	}()
	return nil
}

// closePartition stops serving pt: the subscription first (new callers
// get no responders and retry), then the runtime (it drains until ctx
// ends and checkpoints while the lease is valid), the journal and, if
// release, the lease.
func (n *Node) closePartition(ctx context.Context, pt *partition, release bool) {
	pt.once.Do(func() {
		n.mu.Lock()
		if n.owned[pt.p] == pt {
			delete(n.owned, pt.p)
		}
		n.mu.Unlock()
		pt.sub.Unsubscribe()
		if pt.serve != nil {
			pt.serve(ctx)
		}
		if err := pt.rt.Close(ctx); err != nil {
			n.log.Warn("cluster: close partition runtime", "partition", pt.p.String(), "err", err)
		}
		pt.stop()
		pt.reqs.Wait() // the runtime answered or failed them all
		pt.j.Close()
		if release {
			pt.lease.Release(context.WithoutCancel(ctx))
		}
	})
}

// deliver answers one remote call on the partition's subject. It runs the
// call on its own goroutine: NATS delivers a subscription's messages one
// at a time.
func (pt *partition) deliver(msg *nats.Msg) {
	pt.reqs.Add(1)
	go func() {
		defer pt.reqs.Done()
		out, err := pt.rt.Deliver(pt.ctx, msg.Header.Get(hdrAddr), msg.Header.Get(hdrMethod), msg.Data, msg.Header.Get(hdrKey))
		reply := nats.NewMsg(msg.Reply)
		if err != nil && pt.ctx.Err() != nil {
			// Handed off or fenced while it waited: a keyed caller tries
			// the next owner.
			err = fmt.Errorf("cluster: partition %s closed: %w: %w", pt.p, reactor.ErrClosed, err)
		}
		if err != nil {
			reply.Header.Set(hdrError, "1")
			reply.Data = reactor.EncodeError(err)
		} else {
			reply.Data = out
		}
		msg.RespondMsg(reply)
	}()
}

// call sends a remote call to the owner of addr's partition, retrying
// while no one serves it (a handoff) until ctx ends. A call with a key, or
// of a ReadOnly method, is also retried after a timeout or a refusal by a
// closing or fenced owner (the receiver drops a duplicate; a read changes
// nothing); any other is not, since it may have been applied.
func (n *Node) call(ctx context.Context, addr, method string, payload []byte, key string) ([]byte, error) {
	p, ok := n.PartitionOf(addr)
	if !ok {
		return nil, fmt.Errorf("cluster: %s is in no configured group or service: %w", addr, reactor.ErrNoService)
	}
	msg := nats.NewMsg(n.rpc[p])
	msg.Header.Set(hdrAddr, addr)
	msg.Header.Set(hdrMethod, method)
	if key != "" {
		msg.Header.Set(hdrKey, key)
	}
	msg.Data = payload
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		resp, err := n.cfg.Conn.RequestMsgWithContext(actx, msg)
		cancel()
		if err == nil {
			if resp.Header.Get(hdrError) == "" {
				return resp.Data, nil
			}
			err = reactor.DecodeError(resp.Data)
		}
		if !retryable(err, key != "" || reactor.ReadOnlyMethod(method)) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("cluster: call %s on %s: %w (last: %w)", method, addr, ctx.Err(), err)
			}
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: call %s on %s: %w (last: %w)", method, addr, ctx.Err(), err)
		case <-time.After(backoff(attempt)):
		}
	}
}

// retryable reports whether a call that failed with err may be sent
// again: always when nobody received it, and after a timeout or a refusal
// by a closing owner only when a second run cannot apply it twice (safe:
// it carries an idempotency key, or its method is ReadOnly).
func retryable(err error, safe bool) bool {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return true // nobody received it
	case errors.Is(err, ErrFenced):
		return true // refused by a stale owner: not journaled, not applied
	case !safe:
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, reactor.ErrClosed) || errors.Is(err, ErrFailed)
}

// partitionRemote is the Remote of one partition's runtime.
type partitionRemote struct {
	n *Node
	p Partition
}

// Owns: addresses of p, and addresses of no configured partition (they
// resolve locally, to ErrNoService or a local-only service).
func (r partitionRemote) Owns(addr string) bool {
	p, ok := r.n.PartitionOf(addr)
	return !ok || p == r.p
}

func (r partitionRemote) Call(ctx context.Context, addr, method string, payload []byte, key string) ([]byte, error) {
	return r.n.call(ctx, addr, method, payload, key)
}

// clientRemote is the client runtime's Remote: it owns nothing routable.
type clientRemote struct{ n *Node }

func (r clientRemote) Owns(addr string) bool { _, ok := r.n.PartitionOf(addr); return !ok }

func (r clientRemote) Call(ctx context.Context, addr, method string, payload []byte, key string) ([]byte, error) {
	return r.n.call(ctx, addr, method, payload, key)
}

var (
	_ reactor.Remote   = partitionRemote{}
	_ reactor.Remote   = clientRemote{}
	_ checkpoint.Store = (*partitionStore)(nil)
)

// partitionStore is one partition's view of the cluster's checkpoints:
// keys prefixed by the partition token (the runtime keeps its journal
// floor under a fixed key), and no writes once the lease is not valid.
type partitionStore struct {
	s      *Checkpoints
	prefix string
	lease  *Lease
}

func (ps *partitionStore) Save(ctx context.Context, key string, cp checkpoint.Checkpoint) error {
	if !ps.lease.Valid() {
		return fmt.Errorf("cluster: checkpoint %s: %w", key, ErrFenced)
	}
	// A write still in flight when the lease fences is abandoned: the
	// object store checks ctx before it publishes the metadata that
	// commits the value, so at worst a commit sent just before the fence
	// is still on the wire — the window the lease Margin covers, as for
	// journal appends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ps.lease.Fenced():
			cancel()
		case <-ctx.Done():
		}
	}()
	err := ps.s.Save(ctx, ps.prefix+key, cp)
	if !ps.lease.Valid() {
		return fmt.Errorf("cluster: checkpoint %s: %w (save: %v)", key, ErrFenced, err)
	}
	return err
}

func (ps *partitionStore) Load(ctx context.Context, key string) (checkpoint.Checkpoint, error) {
	return ps.s.Load(ctx, ps.prefix+key)
}

func (ps *partitionStore) Delete(ctx context.Context, key string) error {
	if !ps.lease.Valid() {
		return fmt.Errorf("cluster: delete checkpoint %s: %w", key, ErrFenced)
	}
	return ps.s.Delete(ctx, ps.prefix+key)
}

func (ps *partitionStore) Keys(ctx context.Context) ([]string, error) {
	all, err := ps.s.Keys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range all {
		if rest, ok := strings.CutPrefix(k, ps.prefix); ok {
			out = append(out, rest)
		}
	}
	return out, nil
}

func init() {
	reactor.RegisterError("cluster.fenced", reactor.CodeUnavailable, ErrFenced)
	reactor.RegisterError("cluster.failed", reactor.CodeUnavailable, ErrFailed)
	reactor.RegisterError("cluster.closed", reactor.CodeUnavailable, ErrClosed)
	reactor.RegisterError("cluster.corrupt", reactor.CodeDataLoss, ErrCorrupt)
}
