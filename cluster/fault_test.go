package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
	"github.com/reactorgo/reactor/journal"
)

// Node-level fault tests: reactor nodes on three clustered NATS servers
// (R3, sync_interval always) with short lease TTLs, under a load of keyed
// commands, while nodes die, are cut off from NATS, are restarted, while a
// NATS server is killed, and with a corrupt record in a partition's
// stream. Each checks at the end that every acknowledged command was
// applied exactly once and in order per sender and key.

// FList is a journaled keyed child of /lists: the command ids appended to
// it, in the order they were applied.
type FList struct {
	IDs     []string
	applied func(id string) // test hook (every run of Append, replays included)
}

func (l *FList) Append(_ *reactor.Ctx, id string) (int, error) {
	if l.applied != nil {
		l.applied(id)
	}
	l.IDs = append(l.IDs, id)
	return len(l.IDs), nil
}

func (l *FList) List(_ *reactor.Ctx, _ struct{}) ([]string, error) { return l.IDs, nil }

var (
	fAppend = reactor.Method("test.fault.append", (*FList).Append)
	fList   = reactor.Method("test.fault.list", (*FList).List, reactor.ReadOnly())
)

const faultPartitions = 6 // of /lists

// logSink keeps the log records of every node of a test (Info and up),
// with the attributes the loggers were given (the node's "tnode", a
// lease's "partition" and "epoch").
type logSink struct {
	mu   sync.Mutex
	recs []logRec
}

type logRec struct {
	at    time.Time
	level slog.Level
	msg   string
	attrs map[string]string
}

type sinkHandler struct {
	s     *logSink
	attrs []slog.Attr
}

func (h *sinkHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *sinkHandler) Handle(_ context.Context, r slog.Record) error {
	m := make(map[string]string, len(h.attrs)+r.NumAttrs())
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	if os.Getenv("REACTOR_TEST_LOG") == "1" {
		fmt.Fprintln(os.Stderr, r.Time.Format("15:04:05.000"), r.Level, r.Message, m)
	}
	h.s.mu.Lock()
	h.s.recs = append(h.s.recs, logRec{at: r.Time, level: r.Level, msg: r.Message, attrs: m})
	h.s.mu.Unlock()
	return nil
}

func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sinkHandler{s: h.s, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *sinkHandler) WithGroup(string) slog.Handler { return h }

// find returns the records whose message is msg and whose attributes
// include every pair of kv.
func (s *logSink) find(msg string, kv ...string) []logRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []logRec
next:
	for _, r := range s.recs {
		if r.msg != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r.attrs[kv[i]] != kv[i+1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// tail formats the last n records, so that a failure in CI comes with the
// nodes' story (takeovers, handoffs, fences).
func (s *logSink) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, r := range s.recs[max(len(s.recs)-n, 0):] {
		fmt.Fprintln(&b, r.at.Format("15:04:05.000"), r.level, r.msg, r.attrs)
	}
	return b.String()
}

// faultEnv opens the nodes of one test's cluster.
type faultEnv struct {
	t    *testing.T
	srvs *clustertest.Servers
	cl   string
	ttl  time.Duration
	logs *logSink

	mu      sync.Mutex
	applied map[string]int // id -> runs of Append with it, on any node
}

func newFaultEnv(t *testing.T, srvs *clustertest.Servers, cl string, ttl time.Duration) *faultEnv {
	e := &faultEnv{t: t, srvs: srvs, cl: cl, ttl: ttl, logs: &logSink{}, applied: map[string]int{}}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("REACTOR_TEST_LOG") != "1" {
			t.Logf("node logs (last 300 records):\n%s", e.logs.tail(300))
		}
	})
	return e
}

// fnode is an open node and its own NATS connection.
type fnode struct {
	*cluster.Node
	id string
	nc *nats.Conn
}

func (e *faultEnv) open(nc *nats.Conn, id string) *fnode {
	e.t.Helper()
	n, err := cluster.OpenNode(ctxT(e.t, 20*time.Second), cluster.NodeConfig{
		Conn: nc, Cluster: e.cl, Node: id, Partitions: faultPartitions, LeaseTTL: e.ttl, Replicas: 3,
		Groups: []string{"/lists"},
		Logger: slog.New(&sinkHandler{s: e.logs}).With("tnode", id),
		Setup: func(rt *reactor.Runtime) error {
			_, err := reactor.RegisterChildren(rt, "/lists", func(string) *FList {
				return &FList{applied: func(id string) {
					e.mu.Lock()
					e.applied[id]++
					e.mu.Unlock()
				}}
			}, reactor.Journaled())
			return err
		},
	})
	if err != nil {
		e.t.Fatalf("open node %s: %v", id, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return &fnode{Node: n, id: id, nc: nc}
}

// waitAllOwned waits until the nodes together own every partition, each
// once (and, with each, every node owns at least one), and returns how
// long that took.
func waitAllOwned(t *testing.T, d time.Duration, each bool, nodes ...*fnode) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		seen := map[cluster.Partition]int{}
		counts := make([]int, len(nodes))
		for i, n := range nodes {
			for _, p := range n.Owned() {
				seen[p]++
				counts[i]++
			}
		}
		ok := len(seen) == faultPartitions
		for _, c := range seen {
			ok = ok && c == 1
		}
		if each {
			for _, c := range counts {
				ok = ok && c > 0
			}
		}
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions owned %v by %v (want all %d once, each node some: %v) after %v", counts, names(nodes), faultPartitions, each, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func names(nodes []*fnode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.id
	}
	return out
}

// fcmd is one command of the load: id appended to /lists/<key>.
type fcmd struct {
	sender, i int
	id, key   string
	acked     bool
	failed    bool // gave up: its fate is unknown
	ackAt     time.Time
	via       string // node that acknowledged it
}

// faultLoad sends keyed commands from several senders, each one command
// at a time (so order per sender and key is defined), through the nodes
// of its pool. A command whose attempt fails is sent again with the same
// idempotency key through another node, until the command's deadline.
type faultLoad struct {
	t        *testing.T
	keys     []string
	attempt  time.Duration // one attempt's timeout
	deadline time.Duration // one command's

	mu     sync.Mutex
	pool   []*fnode
	sent   [][]*fcmd // per sender
	maxLat time.Duration
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newFaultLoad(t *testing.T, senders int, attempt time.Duration, pool ...*fnode) *faultLoad {
	g := &faultLoad{t: t, attempt: attempt, deadline: 30 * time.Second, stop: make(chan struct{}), sent: make([][]*fcmd, senders)}
	for k := range 8 {
		g.keys = append(g.keys, "k"+strconv.Itoa(k))
	}
	g.setPool(pool...)
	for s := range senders {
		g.wg.Go(func() { g.sender(s) })
	}
	return g
}

func (g *faultLoad) setPool(nodes ...*fnode) {
	g.mu.Lock()
	g.pool = slices.Clone(nodes)
	g.mu.Unlock()
}

func (g *faultLoad) pick(n int) *fnode {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pool[n%len(g.pool)]
}

func (g *faultLoad) sender(s int) {
	for i := 0; ; i++ {
		select {
		case <-g.stop:
			return
		default:
		}
		c := &fcmd{sender: s, i: i, id: fmt.Sprintf("s%d-%d", s, i), key: g.keys[(s*3+i*5)%len(g.keys)]}
		g.mu.Lock()
		g.sent[s] = append(g.sent[s], c)
		g.mu.Unlock()
		start := time.Now()
		var lastErr error
		for attempt := 0; ; attempt++ {
			via := g.pick(s + i + attempt)
			ctx, cancel := context.WithTimeout(context.Background(), g.attempt)
			_, err := fAppend.Call(reactor.WithIdempotencyKey(ctx, c.id), via.Ref("/lists/"+c.key), c.id)
			cancel()
			if err == nil {
				lat := time.Since(start)
				g.mu.Lock()
				c.acked, c.ackAt, c.via = true, time.Now(), via.id
				g.maxLat = max(g.maxLat, lat)
				g.mu.Unlock()
				break
			}
			if errors.Is(err, reactor.ErrKeyReused) {
				g.t.Errorf("command %s: %v", c.id, err)
			}
			lastErr = err
			if time.Since(start) > g.deadline {
				g.mu.Lock()
				c.failed = true
				g.mu.Unlock()
				g.t.Errorf("command %s to %s not acknowledged in %v: %v", c.id, c.key, g.deadline, lastErr)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// halt stops the senders and waits for their last commands.
func (g *faultLoad) halt() {
	close(g.stop)
	g.wg.Wait()
}

// acked counts the acknowledged commands so far.
func (g *faultLoad) acked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, cs := range g.sent {
		for _, c := range cs {
			if c.acked {
				n++
			}
		}
	}
	return n
}

// waitAcked waits until n more commands than now are acknowledged.
func (g *faultLoad) waitAcked(n int, d time.Duration) time.Duration {
	g.t.Helper()
	start := time.Now()
	want := g.acked() + n
	for g.acked() < want {
		if time.Since(start) > d {
			g.t.Fatalf("load stalled: %d commands acknowledged, want %d within %v", g.acked(), want, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// maxGap is the longest time without an acknowledgement from since to the
// last acknowledgement.
func (g *faultLoad) maxGap(since time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var at []time.Time
	for _, cs := range g.sent {
		for _, c := range cs {
			if c.acked && c.ackAt.After(since) {
				at = append(at, c.ackAt)
			}
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	prev := since
	for _, a := range at {
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	return gap
}

// verify reads every list through via and checks that each acknowledged
// command is in its list exactly once, every sender's commands to a key
// are in the order it sent them, and nothing else is there (a command
// whose fate is unknown may be there, once).
func (g *faultLoad) verify(via *fnode) {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	byID := map[string]*fcmd{}
	total, acked := 0, 0
	for _, cs := range g.sent {
		for _, c := range cs {
			byID[c.id] = c
			total++
			if c.acked {
				acked++
			}
		}
	}
	ctx := ctxT(g.t, 30*time.Second)
	count := map[string]int{}
	for _, key := range g.keys {
		ids, err := fList.Call(ctx, via.Ref("/lists/"+key), struct{}{})
		if err != nil {
			g.t.Fatalf("list %s: %v", key, err)
		}
		last := map[int]int{} // sender -> i of its last command seen in this list
		for pos, id := range ids {
			c := byID[id]
			switch {
			case c == nil:
				g.t.Errorf("list %s[%d] = %q: never sent", key, pos, id)
				continue
			case c.key != key:
				g.t.Errorf("list %s[%d] = %q: sent to %s", key, pos, id, c.key)
			}
			count[id]++
			if count[id] > 1 {
				g.t.Errorf("list %s: %q applied %d times", key, id, count[id])
			}
			if prev, ok := last[c.sender]; ok && c.i <= prev {
				g.t.Errorf("list %s[%d] = %q after s%d-%d: out of order", key, pos, id, c.sender, prev)
			}
			last[c.sender] = c.i
		}
	}
	lost, unknown := 0, 0
	for _, c := range byID {
		switch {
		case c.acked && count[c.id] != 1:
			lost++
			if lost <= 10 {
				g.t.Errorf("acknowledged command %s (to %s via %s) applied %d times", c.id, c.key, c.via, count[c.id])
			}
		case !c.acked && count[c.id] > 0:
			unknown++
		}
	}
	if lost > 0 {
		g.t.Errorf("%d acknowledged commands not applied exactly once", lost)
	}
	g.t.Logf("load: %d commands sent, %d acknowledged (each applied once, in order per sender and key), %d unacknowledged applied; slowest acknowledgement %v",
		total, acked, unknown, g.maxLat.Round(time.Millisecond))
	if acked == 0 {
		g.t.Fatal("no command was acknowledged")
	}
}

// streamRec is one message of a journal stream.
type streamRec struct {
	seq uint64
	at  time.Time // stored (server clock: the same machine)
	f   cluster.Frame
}

// readStream reads partition p's whole journal stream (what is left of it
// after checkpoint releases) and checks every frame: it decodes (CRC), it
// names p and its own sequence, epochs never go backwards and a new epoch
// starts with a fence.
func readStream(t *testing.T, js jetstream.JetStream, cl string, p cluster.Partition) []streamRec {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	s, err := js.Stream(ctx, cluster.JournalStream(cl, p))
	if err != nil {
		t.Fatalf("stream of %s: %v", p, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		t.Fatalf("read %s: create consumer: %v", p, err)
	}
	// A new consumer may not answer at once (its leader is still being
	// set up, more so right after a server restart): "no responders".
	noResp := 0
	retry := func(err error) bool {
		if errors.Is(err, nats.ErrNoResponders) && noResp < 50 {
			noResp++
			time.Sleep(100 * time.Millisecond)
			return true
		}
		return false
	}
	defer s.DeleteConsumer(context.Background(), cons.CachedInfo().Name)
	var out []streamRec
	var epoch uint64 // 0: the first record left after releases may be of any kind
	var batch jetstream.MessageBatch
	for len(out) == 0 || out[len(out)-1].seq < info.State.LastSeq {
		var m jetstream.Msg
		if batch != nil {
			m = <-batch.Messages()
		}
		if m == nil {
			if batch != nil && batch.Error() != nil && !retry(batch.Error()) {
				t.Fatalf("read %s: fetch: %v", p, batch.Error())
			}
			if batch, err = cons.Fetch(1000, jetstream.FetchMaxWait(10*time.Second)); err != nil && !retry(err) {
				t.Fatalf("read %s: fetch: %v", p, err)
			}
			continue
		}
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		f, err := cluster.DecodeFrame(m.Data())
		seq := meta.Sequence.Stream
		switch {
		case err != nil:
			t.Fatalf("%s seq %d: %v", p, seq, err)
		case f.Token != p.Token() || f.Seq != seq:
			t.Fatalf("%s seq %d: frame of %s for seq %d", p, seq, f.Token, f.Seq)
		case f.Epoch < epoch:
			t.Fatalf("%s seq %d: epoch %d after epoch %d: two owners' records interleaved", p, seq, f.Epoch, epoch)
		case f.Epoch > epoch && epoch != 0 && !f.Fence:
			t.Fatalf("%s seq %d: epoch %d starts without a fence after epoch %d", p, seq, f.Epoch, epoch)
		}
		epoch = f.Epoch
		out = append(out, streamRec{seq: seq, at: meta.Timestamp, f: f})
	}
	return out
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// TestNodeKillCycles: killCycles times, a reactor node dies abruptly
// (its NATS connection closed: no Close, no release, no last checkpoint;
// it is never used again) while six senders keep sending keyed commands
// through the other nodes; a fresh node (the dead one's id every other
// cycle, a new id otherwise) joins and gets partitions. The survivors must
// own every partition within a few lease TTLs, and at the end every
// acknowledged command is applied exactly once, in order per sender and
// key, and every journal stream holds each epoch's records contiguously.
func TestNodeKillCycles(t *testing.T) {
	srvs := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srvs, "kc", ttl)
	live := []*fnode{e.open(srvs.Connect(t), "n0"), e.open(srvs.Connect(t), "n1"), e.open(srvs.Connect(t), "n2")}
	waitAllOwned(t, 20*time.Second, true, live...)
	g := newFaultLoad(t, 6, 5*time.Second, live...)
	g.waitAcked(50, 20*time.Second)

	var failovers []time.Duration
	for c := range killCycles {
		victim := live[0]
		live = slices.Clone(live[1:])
		g.setPool(live...)
		owned := victim.Owned()
		victim.nc.Close() // dies: nothing more reaches NATS
		d := waitAllOwned(t, 8*ttl, false, live...)
		failovers = append(failovers, d)
		id := victim.id
		if c%2 == 1 {
			id = "n" + strconv.Itoa(3+c)
		}
		n := e.open(srvs.Connect(t), id)
		live = append(live, n)
		rejoin := waitAllOwned(t, 10*ttl, true, live...)
		g.setPool(live...)
		t.Logf("cycle %d: killed %s owning %d partitions; survivors own all after %v; %s joined and got partitions after %v",
			c, victim.id, len(owned), d.Round(time.Millisecond), id, rejoin.Round(time.Millisecond))
		g.waitAcked(50, 20*time.Second) // the load goes on before the next kill
	}
	g.halt()
	g.verify(live[0])
	js := jsOf(t, srvs.Connect(t))
	for i := range faultPartitions {
		readStream(t, js, "kc", cluster.Partition{Group: "/lists", Index: i, Count: faultPartitions})
	}
	t.Logf("failover: %d kills of a node owning partitions, lease TTL %v, 3 nodes, %d partitions: p50 %v, max %v (kill to survivors owning every partition)",
		len(failovers), ttl, faultPartitions, percentile(failovers, 0.5).Round(time.Millisecond), slices.Max(failovers).Round(time.Millisecond))
}

// TestNodeCutOff: node x reaches NATS through a proxy and owns partitions;
// the proxy cuts it off while the load goes on through every node, x
// included (its attempts fail and are sent again through another node).
// x must fence each of its partitions before another node takes it over:
// x's "lease fenced" log comes before the new epoch's fence record in the
// partition's stream, no record of x's epochs is stored after x fenced
// (nor after x reconnects and flushes whatever it buffered), and no call
// through x is acknowledged while it is cut off. Then x reconnects and
// rejoins (gets partitions again), and every acknowledged command is
// applied exactly once.
func TestNodeCutOff(t *testing.T) {
	srvs := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srvs, "co", ttl)
	px := newProxy(t, strings.TrimPrefix(srvs.URL(0), "nats://"))
	a := e.open(srvs.Connect(t), "a")
	b := e.open(srvs.Connect(t), "b")
	// Only through the proxy: not to the servers it learns of.
	x := e.open(srvs.ConnectURL(t, px.URL(), nats.IgnoreDiscoveredServers()), "x")
	all := []*fnode{a, b, x}
	waitAllOwned(t, 20*time.Second, true, all...)
	g := newFaultLoad(t, 6, 2*time.Second, all...)
	g.waitAcked(100, 20*time.Second)

	// x's partitions and epochs, from its "serving partition" log.
	waitAllOwned(t, 20*time.Second, true, all...)
	xEpoch := map[cluster.Partition]string{}
	for _, p := range x.Owned() {
		recs := e.logs.find("cluster: serving partition", "tnode", "x", "partition", p.String())
		if len(recs) == 0 {
			t.Fatalf("no serving log of x for %s", p)
		}
		xEpoch[p] = recs[len(recs)-1].attrs["epoch"]
	}
	cut := time.Now()
	px.Cut()
	failover := waitAllOwned(t, 8*ttl, false, a, b)
	t.Logf("x cut off owning %d partitions; a and b own all after %v", len(xEpoch), failover.Round(time.Millisecond))
	g.waitAcked(100, 20*time.Second)

	// Before x comes back (and partitions move again, checkpointed and
	// released), each of x's partitions' streams holds x's last records
	// and the next epoch's fence.
	js := jsOf(t, srvs.Connect(t))
	xFenced := map[cluster.Partition]time.Time{}
	for p, ep := range xEpoch {
		fenced := e.logs.find("cluster: lease fenced", "tnode", "x", "partition", p.String(), "epoch", ep)
		if len(fenced) != 1 {
			t.Fatalf("x's lease %s epoch %s: %d fenced logs", p, ep, len(fenced))
		}
		xFenced[p] = fenced[0].at
		if xFenced[p].Before(cut) {
			t.Fatalf("x's lease %s fenced at %v, before the cut at %v", p, xFenced[p], cut)
		}
		epoch, _ := strconv.ParseUint(ep, 10, 64)
		var next *streamRec
		recs := readStream(t, js, "co", p)
		for i := range recs {
			r := &recs[i]
			if r.f.Epoch == epoch && !r.at.Before(xFenced[p]) {
				t.Errorf("%s: x's record at seq %d stored at %v, after x fenced at %v", p, r.seq, r.at, xFenced[p])
			}
			if r.f.Epoch > epoch && next == nil {
				next = r
			}
		}
		if next == nil || !next.f.Fence {
			t.Fatalf("%s: no later epoch's fence after x's epoch %d", p, epoch)
		}
		if !xFenced[p].Before(next.at) {
			t.Errorf("%s: epoch %d fenced at seq %d (%v) before x stopped (its lease fenced at %v)", p, next.f.Epoch, next.seq, next.at, xFenced[p])
		}
		t.Logf("%s: x (epoch %d) fenced %v after the cut; epoch %d's fence stored %v after that",
			p, epoch, xFenced[p].Sub(cut).Round(time.Millisecond), next.f.Epoch, next.at.Sub(xFenced[p]).Round(time.Millisecond))
	}

	time.Sleep(ttl) // x's buffered attempts time out meanwhile
	heal := time.Now()
	px.Heal()
	rejoin := waitAllOwned(t, 15*ttl, true, all...)
	t.Logf("x reconnected and got partitions after %v", rejoin.Round(time.Millisecond))
	g.waitAcked(100, 20*time.Second)
	g.halt()
	g.verify(a)

	// Replies already in x's socket when it was cut may land in the first
	// moments; none after.
	g.mu.Lock()
	for _, cs := range g.sent {
		for _, c := range cs {
			if c.acked && c.via == "x" && c.ackAt.After(cut.Add(100*time.Millisecond)) && c.ackAt.Before(heal) {
				t.Errorf("command %s acknowledged through x at %v while x was cut off (%v..%v)", c.id, c.ackAt, cut, heal)
			}
		}
	}
	g.mu.Unlock()

	// Whatever x had buffered and flushed when it reconnected was refused.
	for p, ep := range xEpoch {
		epoch, _ := strconv.ParseUint(ep, 10, 64)
		for _, r := range readStream(t, js, "co", p) {
			if r.f.Epoch == epoch && !r.at.Before(xFenced[p]) {
				t.Errorf("%s: x's record at seq %d stored at %v, after x fenced at %v", p, r.seq, r.at, xFenced[p])
			}
		}
	}
	for i := range faultPartitions {
		readStream(t, js, "co", cluster.Partition{Group: "/lists", Index: i, Count: faultPartitions})
	}
}

// TestNATSServerKill: each node is connected to a different one of the
// three NATS servers first (and to the others on reconnect). The leader of
// the lease bucket's stream is killed under load: the load goes on after
// a bounded wait, the server comes back and rejoins, and no acknowledged
// command is lost or applied twice.
func TestNATSServerKill(t *testing.T) {
	srvs := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srvs, "sk", ttl)
	var nodes []*fnode
	for i := range 3 {
		urls := []string{srvs.URL(i)}
		for j := range 3 {
			if j != i {
				urls = append(urls, srvs.URL(j))
			}
		}
		nodes = append(nodes, e.open(srvs.ConnectURL(t, strings.Join(urls, ","), nats.DontRandomize()), "n"+strconv.Itoa(i)))
	}
	waitAllOwned(t, 20*time.Second, true, nodes...)
	g := newFaultLoad(t, 6, 5*time.Second, nodes...)
	g.waitAcked(100, 20*time.Second)

	js := jsOf(t, srvs.Connect(t))
	ls, err := js.Stream(ctxT(t, 5*time.Second), "KV_"+cluster.LeaseBucket("sk"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ls.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	fmt.Sscanf(info.Cluster.Leader, "n%d", &victim)
	if victim < 0 {
		t.Fatalf("lease bucket leader %q", info.Cluster.Leader)
	}
	killed := time.Now()
	srvs.Kill(victim)
	resumed := g.waitAcked(200, 30*time.Second)
	time.Sleep(3 * time.Second) // the load goes on on two servers
	for _, n := range nodes {
		if !n.nc.IsConnected() || n.nc.ConnectedServerName() == info.Cluster.Leader {
			t.Fatalf("%s: connected %v to %q", n.id, n.nc.IsConnected(), n.nc.ConnectedServerName())
		}
	}
	srvs.Restart(victim)
	back := time.Since(killed)
	time.Sleep(2 * time.Second)
	g.waitAcked(200, 30*time.Second)
	g.halt()
	gap := g.maxGap(killed)
	t.Logf("killed NATS server %s (lease bucket leader): 200 more commands acknowledged %v after; it was back after %v; longest time without an acknowledgement from the kill on: %v",
		info.Cluster.Leader, resumed.Round(time.Millisecond), back.Round(time.Millisecond), gap.Round(time.Millisecond))
	waitAllOwned(t, 20*time.Second, false, nodes...)
	g.verify(nodes[0])
	for i := range faultPartitions {
		readStream(t, js, "sk", cluster.Partition{Group: "/lists", Index: i, Count: faultPartitions})
	}
}

// TestNodeAndItsNATSServerKilled: each node talks to one NATS server of
// its own, as a node embedding its server does (cmd/poker -nats-embed), and
// a node dies together with its server — the node whose server leads most
// of its partitions' journal streams. The survivors own every partition
// within 10 s and nothing acknowledged is lost. clustertest's Kill is a
// server Shutdown, which hands stream leadership over; the SIGKILL of a
// process with its server inside, whose leaders vanish mid-request, is
// cmd/poker's TestEmbeddedNATSNodeKill9.
func TestNodeAndItsNATSServerKilled(t *testing.T) {
	srvs := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srvs, "nk", ttl)
	var nodes []*fnode
	for i := range 3 {
		nodes = append(nodes, e.open(srvs.ConnectURL(t, srvs.URL(i)), "n"+strconv.Itoa(i)))
	}
	waitAllOwned(t, 20*time.Second, true, nodes...)
	g := newFaultLoad(t, 6, 5*time.Second, nodes...)
	g.waitAcked(100, 20*time.Second)

	js := jsOf(t, srvs.Connect(t))
	victim, led := 0, -1
	for i, n := range nodes {
		count := 0
		for _, p := range n.Owned() {
			st, err := js.Stream(ctxT(t, 5*time.Second), cluster.JournalStream("nk", p))
			if err == nil && st.CachedInfo().Cluster != nil && st.CachedInfo().Cluster.Leader == srvs.Server(i).Name() {
				count++
			}
		}
		if count > led {
			victim, led = i, count
		}
	}
	survivors := slices.Delete(slices.Clone(nodes), victim, victim+1)
	g.setPool(survivors...)
	nodes[victim].nc.Close()
	srvs.Kill(victim)
	took := waitAllOwned(t, 10*time.Second, false, survivors...)
	t.Logf("killed node %s with its NATS server (leading %d of its partitions' streams): survivors own every partition after %v",
		nodes[victim].id, led, took.Round(time.Millisecond))
	g.waitAcked(100, 20*time.Second)
	g.halt()
	srvs.Restart(victim)
	g.verify(survivors[0])
}

// TestRollingRestart: every node in turn is closed gracefully (its
// partitions checkpointed and handed off) and opened again with the same
// id, under load, twice round: no acknowledged command is lost or applied
// twice.
func TestRollingRestart(t *testing.T) {
	srvs := clustertest.Cluster(t)
	const ttl = time.Second
	e := newFaultEnv(t, srvs, "rr", ttl)
	nodes := []*fnode{e.open(srvs.Connect(t), "n0"), e.open(srvs.Connect(t), "n1"), e.open(srvs.Connect(t), "n2")}
	waitAllOwned(t, 20*time.Second, true, nodes...)
	g := newFaultLoad(t, 6, 5*time.Second, nodes...)
	g.waitAcked(100, 20*time.Second)
	for round := range 2 {
		for i := range nodes {
			others := slices.Concat(nodes[:i], nodes[i+1:])
			g.setPool(others...)
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := nodes[i].Close(ctx)
			cancel()
			if err != nil {
				t.Fatalf("close %s: %v", nodes[i].id, err)
			}
			closed := time.Since(start)
			handoff := waitAllOwned(t, 5*ttl, false, others...)
			nodes[i] = e.open(srvs.Connect(t), nodes[i].id)
			rejoin := waitAllOwned(t, 10*ttl, true, nodes...)
			g.setPool(nodes...)
			t.Logf("round %d: %s closed in %v, others own all %v later; reopened, it got partitions after %v",
				round, nodes[i].id, closed.Round(time.Millisecond), handoff.Round(time.Millisecond), rejoin.Round(time.Millisecond))
			g.waitAcked(100, 20*time.Second)
		}
	}
	g.halt()
	g.verify(nodes[0])
	js := jsOf(t, srvs.Connect(t))
	for i := range faultPartitions {
		readStream(t, js, "rr", cluster.Partition{Group: "/lists", Index: i, Count: faultPartitions})
	}
}

// TestCorruptRecordViaNode: a record in a partition's stream fails
// verification — a flipped bit (CRC) or a valid frame of another
// partition — published with a valid expected-sequence condition, and a
// good record after it. A node taking the partition over refuses it: it
// never serves the partition (calls to it are not answered), it logs the
// refusal with an error naming the stream, the seq and the reason, it
// applies neither the bad record nor the one after it, and no checkpoint
// of the partition moves past the bad record. It serves the other
// partitions.
func TestCorruptRecordViaNode(t *testing.T) {
	srvs := clustertest.Cluster(t)
	const ttl = time.Second
	parts, _ := cluster.NewPartitioner(faultPartitions)
	for ci, tc := range []struct {
		name, reason string
		frame        func(p cluster.Partition, epoch, seq uint64, rec *journal.Record) []byte
	}{
		{"flipped bit", "checksum", func(p cluster.Partition, epoch, seq uint64, rec *journal.Record) []byte {
			b, _ := cluster.EncodeFrame(p.Token(), epoch, seq, false, rec)
			b[26] ^= 0x08 // a bit of the record's time
			return b
		}},
		{"other partition", "partition", func(p cluster.Partition, epoch, seq uint64, rec *journal.Record) []byte {
			q := cluster.Partition{Group: p.Group, Index: (p.Index + 1) % p.Count, Count: p.Count}
			b, _ := cluster.EncodeFrame(q.Token(), epoch, seq, false, rec)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := "cor" + strconv.Itoa(ci)
			e := newFaultEnv(t, srvs, cl, ttl)
			a := e.open(srvs.Connect(t), "a")
			waitAllOwned(t, 20*time.Second, true, a)
			ctx := ctxT(t, 60*time.Second)
			const key = "victim"
			p := parts.Child("/lists", key)
			var other string // a key of another partition
			for i := 0; other == ""; i++ {
				if k := "o" + strconv.Itoa(i); parts.Child("/lists", k) != p {
					other = k
				}
			}
			for i := range 5 {
				for _, k := range []string{key, other} {
					id := fmt.Sprintf("%s-%d", k, i)
					if _, err := fAppend.Call(reactor.WithIdempotencyKey(ctx, id), a.Ref("/lists/"+k), id); err != nil {
						t.Fatal(err)
					}
				}
			}
			// A template of a real input record of p, to forge from.
			js := jsOf(t, srvs.Connect(t))
			recs := readStream(t, js, cl, p)
			var tmpl *streamRec
			for i := range recs {
				if !recs[i].f.Fence && strings.Contains(string(recs[i].f.Rec.Payload), key+"-4") {
					tmpl = &recs[i]
				}
			}
			if tmpl == nil {
				t.Fatalf("no input record of %s-4 in %s", key, p)
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := a.Close(cctx); err != nil {
				t.Fatal(err)
			}
			cancel()

			stream, err := js.Stream(ctx, cluster.JournalStream(cl, p))
			if err != nil {
				t.Fatal(err)
			}
			info, err := stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			last := info.State.LastSeq
			lm, err := stream.GetMsg(ctx, last)
			if err != nil {
				t.Fatal(err)
			}
			lf, err := cluster.DecodeFrame(lm.Data)
			if err != nil {
				t.Fatal(err)
			}
			bad := last + 1
			// Forged commands "evil-0" (the bad record) and "evil-1" (a good
			// one after it), each with its own idempotency key.
			forge := func(id string) *journal.Record {
				r := tmpl.f.Rec
				r.Payload = []byte(strings.Replace(string(r.Payload), key+"-4", id, -1))
				r.Key = strings.Replace(r.Key, key+"-4", id, -1)
				return &r
			}
			if _, err := js.Publish(ctx, cluster.JournalSubject(cl, p), tc.frame(p, lf.Epoch, bad, forge("evil-0")), jetstream.WithExpectLastSequence(last)); err != nil {
				t.Fatal(err)
			}
			good, _ := cluster.EncodeFrame(p.Token(), lf.Epoch, bad+1, false, forge("evil-1"))
			if _, err := js.Publish(ctx, cluster.JournalSubject(cl, p), good, jetstream.WithExpectLastSequence(bad)); err != nil {
				t.Fatal(err)
			}

			b := e.open(srvs.Connect(t), "b")
			// b serves every other partition...
			deadline := time.Now().Add(10 * ttl)
			for len(b.Owned()) < faultPartitions-1 {
				if time.Now().After(deadline) {
					t.Fatalf("b owns %v", b.Owned())
				}
				time.Sleep(10 * time.Millisecond)
			}
			id := other + "-b"
			if _, err := fAppend.Call(reactor.WithIdempotencyKey(ctx, id), b.Ref("/lists/"+other), id); err != nil {
				t.Fatalf("call to a good partition: %v", err)
			}
			// ...but not p, round after round.
			time.Sleep(3 * ttl)
			if slices.Contains(b.Owned(), p) {
				t.Fatalf("b serves %s, whose stream holds a corrupt record at seq %d", p, bad)
			}
			tctx, tcancel := context.WithTimeout(ctx, ttl)
			_, err = fList.Call(tctx, b.Ref("/lists/"+key), struct{}{})
			tcancel()
			if err == nil {
				t.Fatalf("a call to %s was answered", p)
			}
			refusals := e.logs.find("cluster: take over partition", "tnode", "b", "partition", p.String())
			if len(refusals) == 0 {
				t.Fatalf("b logged no refused takeover of %s", p)
			}
			want := fmt.Sprintf("cluster: corrupt record in stream %s at seq %d: ", cluster.JournalStream(cl, p), bad)
			for _, r := range refusals {
				if msg := r.attrs["err"]; !strings.Contains(msg, want) || !strings.Contains(msg, tc.reason) {
					t.Fatalf("takeover refused with %q, want it to name %q and %s", msg, want, tc.reason)
				}
			}
			e.mu.Lock()
			for _, id := range []string{"evil-0", "evil-1"} {
				if e.applied[id] > 0 {
					t.Errorf("%s applied %d times", id, e.applied[id])
				}
			}
			if e.applied[key+"-4"] == 0 {
				t.Errorf("the good records before the bad one were never applied")
			}
			e.mu.Unlock()
			// No checkpoint of p's services covers the bad record.
			ck, err := cluster.OpenCheckpoints(ctx, js, cluster.CheckpointConfig{Cluster: cl, Replicas: 3})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := ck.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if !strings.HasPrefix(k, p.Token()+":") {
					continue
				}
				cp, err := ck.Load(ctx, k)
				if err != nil {
					t.Fatalf("checkpoint %s: %v", k, err)
				}
				if cp.Seq >= bad {
					t.Errorf("checkpoint %s at seq %d, past the bad record at %d", k, cp.Seq, bad)
				}
			}
			t.Logf("b refused %s %d times: %s", p, len(refusals), refusals[0].attrs["err"])
		})
	}
}
