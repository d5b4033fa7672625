package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reactorgo/reactor"
)

// DefaultQueue is the queue of kinds defined without the Queue option.
const DefaultQueue = "default"

// Config configures a Queues. The zero value is valid: every field
// documents its default.
type Config struct {
	// Prefix is the address under which each queue is registered as a
	// journaled service, Prefix+"/"+name (default "/jobs").
	Prefix string
	// Queues configures the queues by name (default: one queue,
	// DefaultQueue, with a zero QueueConfig).
	Queues map[string]QueueConfig
	// NoJournal registers the queues without reactor.Journaled(): memory
	// only, for tests and caches — jobs are lost on a crash. By default the
	// queues are journaled (the runtime needs a Config.Journal).
	NoJournal bool
	// Clock is the clock workers use to sleep until the next due job
	// (default time.Now). Give it the runtime's Config.Clock when that is a
	// fake one.
	Clock func() time.Time
	// Logger receives the workers' logs (default slog.Default()).
	Logger *slog.Logger
}

// QueueConfig configures one queue and its in-process worker pool.
type QueueConfig struct {
	// Workers is how many jobs of this queue this process runs at once
	// (default 0: none — the process only enqueues).
	Workers int
	// MaxDepth bounds the pending and running jobs: an Enqueue beyond it
	// fails with an error that wraps reactor.ErrBusy (HTTP 503). Enqueues
	// from inside a handler (transactional) are admitted regardless, since
	// their cause is already durable. 0: 100,000.
	MaxDepth int
	// LeaseTime is how long a leased job belongs to its worker without a
	// heartbeat (default 30s). Workers heartbeat every LeaseTime/3.
	LeaseTime time.Duration
	// PollInterval is the longest an idle worker pool waits before asking
	// the queue again (default 1s). Enqueues in this process wake it at once.
	PollInterval time.Duration
	// TickInterval is how often the queue reaps expired leases and prunes
	// finished jobs on its own, without workers asking (default 1s;
	// negative: never).
	TickInterval time.Duration
	// Retention is how long completed and cancelled jobs stay visible to
	// Get (default 1h). Dead jobs stay until purged or redriven.
	Retention time.Duration
	// InboxSize is the queue service's inbox capacity (default: the
	// runtime's).
	InboxSize int
	// MaxRunning caps the jobs of this queue running at once across all
	// workers — every process's pool and the remote workers — where
	// Workers caps one process's pool (default 0: no cap beyond Workers).
	MaxRunning int
	// RetryAfterMax caps the Retry-After that a refused Enqueue carries
	// (default 5m; the floor is 1s). Retry-After is the queue's depth
	// divided by its measured drain rate (Little's law); a queue that
	// drained nothing for a minute answers with this cap.
	RetryAfterMax time.Duration
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	for name, q := range c.Queues {
		switch {
		case name == "" || containsSlash(name):
			return fmt.Errorf("jobs: invalid queue name %q", name)
		case q.Workers < 0 || q.MaxDepth < 0 || q.LeaseTime < 0 || q.PollInterval < 0 || q.Retention < 0 || q.InboxSize < 0 ||
			q.MaxRunning < 0 || q.RetryAfterMax < 0:
			return fmt.Errorf("jobs: queue %q: negative setting", name)
		}
	}
	return nil
}

func containsSlash(s string) bool {
	for i := range len(s) {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func (q *QueueConfig) setDefaults() {
	if q.MaxDepth == 0 {
		q.MaxDepth = 100_000
	}
	if q.LeaseTime == 0 {
		q.LeaseTime = 30 * time.Second
	}
	if q.PollInterval == 0 {
		q.PollInterval = time.Second
	}
	if q.TickInterval == 0 {
		q.TickInterval = time.Second
	}
	if q.Retention == 0 {
		q.Retention = time.Hour
	}
	if q.RetryAfterMax == 0 {
		q.RetryAfterMax = 5 * time.Minute
	}
}

// Queues is a set of durable job queues hosted by one runtime, with their
// in-process worker pools. Create it with New before rt.Start, call Start
// after rt.Start, Close before rt.Close.
type Queues struct {
	rt    *reactor.Runtime
	cfg   Config
	refs  map[string]reactor.Ref
	qcfg  map[string]QueueConfig
	pokes map[string]chan struct{}
	// buckets are the rate-limited kinds' token buckets, made in New
	// from the kinds defined then (Define runs at package init).
	buckets map[string]*bucket
	// wakes is closed and replaced at every poke of a queue: it wakes the
	// long-polling LeaseWait callers (the pool has its own channel).
	wakeMu sync.Mutex
	wakes  map[string]chan struct{}
	log    *slog.Logger
	worker string

	counter  turnCounter
	stopping atomic.Bool
	mu       sync.Mutex
	started  bool
	closed   bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New registers one journaled service per configured queue on rt (which
// must not be started yet).
func New(rt *reactor.Runtime, cfg Config) (*Queues, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/jobs"
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = map[string]QueueConfig{DefaultQueue: {}}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, _ := os.Hostname()
	qs := &Queues{rt: rt, cfg: cfg, refs: map[string]reactor.Ref{}, qcfg: map[string]QueueConfig{},
		pokes: map[string]chan struct{}{}, log: cfg.Logger, worker: host + "/" + strconv.Itoa(os.Getpid()),
		buckets: map[string]*bucket{}, wakes: map[string]chan struct{}{}}
	kinds.Range(func(name, v any) bool {
		if s := v.(runner).settings(); s.rate > 0 {
			qs.buckets[name.(string)] = newBucket(s.rate, s.burst)
		}
		return true
	})
	for name, qc := range cfg.Queues {
		qc.setDefaults()
		opts := []reactor.Option{}
		if !cfg.NoJournal {
			opts = append(opts, reactor.Journaled())
		}
		if qc.InboxSize > 0 {
			opts = append(opts, reactor.InboxSize(qc.InboxSize))
		}
		state := &queue{Name: name, cfg: qc, owner: qs}
		ref, err := reactor.Register(rt, cfg.Prefix+"/"+name, state, opts...)
		if err != nil {
			return nil, fmt.Errorf("jobs: register queue %q: %w", name, err)
		}
		qs.refs[name], qs.qcfg[name] = ref, qc
		qs.pokes[name] = make(chan struct{}, 1)
		qs.wakes[name] = make(chan struct{})
	}
	return qs, nil
}

// poke wakes the queue's worker pool and long-polling workers (it never
// blocks).
func (qs *Queues) poke(queue string) {
	if ch := qs.pokes[queue]; ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	qs.wakeMu.Lock()
	if ch, ok := qs.wakes[queue]; ok {
		close(ch)
		qs.wakes[queue] = make(chan struct{})
	}
	qs.wakeMu.Unlock()
}

// wakeup returns a channel closed at the queue's next poke.
func (qs *Queues) wakeup(queue string) <-chan struct{} {
	qs.wakeMu.Lock()
	defer qs.wakeMu.Unlock()
	return qs.wakes[queue]
}

func (qs *Queues) ref(queue string) (reactor.Ref, error) {
	if queue == "" {
		queue = DefaultQueue
	}
	ref, ok := qs.refs[queue]
	if !ok {
		return reactor.Ref{}, fmt.Errorf("jobs: queue %q not configured: %w", queue, reactor.ErrNoService)
	}
	return ref, nil
}

// Enqueue adds a job and returns its id. From outside the runtime it
// returns once the job is durable (in the fsynced journal); a full queue
// fails with an error wrapping reactor.ErrBusy. Called with a handler's
// *reactor.Ctx, or a context derived from it, it is EnqueueTx.
func (k *Kind[A]) Enqueue(ctx context.Context, qs *Queues, args A, opts ...Option) (string, error) {
	if c := reactor.HandlerOf(ctx); c != nil {
		return k.EnqueueTx(c, qs, args, opts...)
	}
	req, s, err := k.request(args, opts)
	if err != nil {
		return "", err
	}
	ref, err := qs.ref(s.queue)
	if err != nil {
		return "", err
	}
	return mEnqueue.TryCall(ctx, ref, req)
}

// EnqueueTx enqueues from inside a handler, within its turn: the job exists
// if and only if the handler's input is durable. It does not wait for the
// queue: the enqueue is a send from the handler, which the runtime delivers
// exactly once (journaled with an origin key, re-sent after a crash and
// deduplicated by the queue). The returned id is chosen here,
// deterministically from the input's journal sequence number, so a replay
// returns the same id; with a Unique key that is already held, the id is an
// alias that Get and Cancel resolve to the existing job. Delay counts from
// c.Now. The queue's MaxDepth does not apply, and neither does the queue's
// inbox bound when the handler's service is journaled (the runtime admits a
// journaled input's sends regardless: a replay would send them again); from
// an in-memory service a full inbox fails with reactor.ErrBusy.
//
// Pass the handler's *reactor.Ctx itself: a context derived from it would
// not be recognised.
func (k *Kind[A]) EnqueueTx(c *reactor.Ctx, qs *Queues, args A, opts ...Option) (string, error) {
	req, s, err := k.request(args, opts)
	if err != nil {
		return "", err
	}
	ref, err := qs.ref(s.queue)
	if err != nil {
		return "", err
	}
	req.Tx = true
	req.ID = qs.txID(c)
	if req.RunAt == 0 {
		req.RunAt = c.Now().Add(req.Delay).UnixNano()
	}
	if err := mEnqueue.Send(c, ref, req); err != nil {
		return "", err
	}
	return req.ID, nil
}

// txID numbers the enqueues of one input: "t<seq>.<n>" in base 36. Replay
// runs the same handler on the same input with the same sequence number,
// so it chooses the same ids. Inputs that are not journaled get a random id.
func (qs *Queues) txID(c *reactor.Ctx) string {
	seq := c.Seq()
	if seq == 0 {
		var b [12]byte
		rand.Read(b[:])
		return "r" + hex.EncodeToString(b[:])
	}
	return "t" + strconv.FormatUint(seq, 36) + "." + strconv.Itoa(qs.counter.next(c.Self().Addr(), seq))
}

// turnCounter counts the enqueues of the current input of each service.
// A service's inputs are handled one at a time, so (address, seq) changes
// only between inputs. Entries unused for two generations (a minute or
// more) are dropped. There is one per Queues, hence per runtime: a runtime
// replays (and so sees an input's seq a second time) only in its own Start,
// while another runtime in the same process would reuse sequence numbers.
// (A Workers(n) service runs several inputs at once and would interleave
// them: EnqueueTx from such a service is not supported.)
type turnCounter struct {
	mu        sync.Mutex
	cur, prev map[string]seqCount
	rotated   time.Time
}

type seqCount struct {
	seq uint64
	n   int
}

func (t *turnCounter) next(addr string, seq uint64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now := time.Now(); t.cur == nil || now.Sub(t.rotated) > 30*time.Second {
		t.prev, t.cur, t.rotated = t.cur, map[string]seqCount{}, now
	}
	e, ok := t.cur[addr]
	if !ok {
		e = t.prev[addr]
	}
	if e.seq != seq {
		e = seqCount{seq: seq}
	}
	e.n++
	t.cur[addr] = e
	return e.n
}

// Get returns a job's record. Ids of finished jobs are kept for the queue's
// Retention; dead jobs until purged.
func (qs *Queues) Get(ctx context.Context, queue, id string) (Info, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return Info{}, err
	}
	return mGet.Call(ctx, ref, id)
}

// Cancel cancels a pending or running job. A running job's lease is void
// at once: its worker's next heartbeat fails and cancels the handler's
// context, and its completion is rejected.
func (qs *Queues) Cancel(ctx context.Context, queue, id string) error {
	ref, err := qs.ref(queue)
	if err != nil {
		return err
	}
	_, err = mCancel.Call(ctx, ref, id)
	return err
}

// Dead lists the dead-letter set of a queue in enqueue order (at most
// limit; 0: all).
func (qs *Queues) Dead(ctx context.Context, queue string, limit int) ([]Info, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return nil, err
	}
	return mDead.Call(ctx, ref, limit)
}

// Redrive makes the named dead jobs (all, if none named) pending again,
// with a fresh set of attempts. It returns how many it redrove.
func (qs *Queues) Redrive(ctx context.Context, queue string, ids ...string) (int, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return 0, err
	}
	return mRedrive.Call(ctx, ref, idsReq{IDs: ids})
}

// Purge deletes the named dead jobs (all, if none named) for good.
func (qs *Queues) Purge(ctx context.Context, queue string, ids ...string) (int, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return 0, err
	}
	return mPurge.Call(ctx, ref, idsReq{IDs: ids})
}

// Stats returns a snapshot of every queue, sorted by name.
func (qs *Queues) Stats(ctx context.Context) ([]Stats, error) {
	names := make([]string, 0, len(qs.refs))
	for name := range qs.refs {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]Stats, 0, len(names))
	for _, name := range names {
		s, err := mStats.Call(ctx, qs.refs[name], struct{}{})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Start starts the worker pools (queues with Workers > 0). Call it after
// the runtime's Start. Calling it twice is an error.
func (qs *Queues) Start(ctx context.Context) error {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if qs.closed {
		return ErrClosed
	}
	if qs.started {
		return errors.New("jobs: already started")
	}
	qs.started = true
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	qs.cancel = cancel
	for name, qc := range qs.qcfg {
		if qc.Workers <= 0 {
			continue
		}
		p := &pool{qs: qs, name: name, ref: qs.refs[name], cfg: qc, poke: qs.pokes[name], base: base}
		qs.wg.Add(1)
		go func() {
			defer qs.wg.Done()
			p.loop()
		}()
	}
	return nil
}

// Close stops leasing new jobs and waits for running ones to finish until
// ctx ends; then their contexts are cancelled (their leases expire and the
// jobs run again elsewhere or after a restart). Calling it twice is safe.
func (qs *Queues) Close(ctx context.Context) error {
	qs.mu.Lock()
	if qs.closed {
		qs.mu.Unlock()
		return nil
	}
	qs.closed = true
	cancel := qs.cancel
	qs.mu.Unlock()
	if cancel == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { qs.wg.Wait(); close(done) }()
	qs.stopping.Store(true)
	for name := range qs.pokes {
		qs.poke(name) // wakes the pools and the long-polling LeaseWait callers
	}
	select {
	case <-done:
		cancel()
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return fmt.Errorf("jobs: close: %w", ctx.Err())
	}
}

// Now is the time by Config.Clock: what a display should compute a job's
// age from, so that it agrees with Stats under a fake clock too.
func (qs *Queues) Now() time.Time { return qs.cfg.Clock() }
