package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseConfig configures Leases. Zero values of every field but Cluster and
// Node are usable.
type LeaseConfig struct {
	// Cluster is the cluster name (prefix of the bucket name). Required.
	Cluster string
	// Node identifies this holder in lease entries (for operators). Required.
	Node string
	// TTL is how long a lease lives in NATS without renewal (the bucket's
	// MaxAge). Default 6s; at least 300ms.
	TTL time.Duration
	// Margin is how much earlier than the TTL a holder fences itself: it
	// covers clock-rate differences between this node and the NATS servers
	// and the time between the fence firing and the node noticing.
	// Default TTL/5; must be less than TTL*2/3 so that a renewal at TTL/3
	// happens while the lease is still valid.
	Margin time.Duration
	// Replicas of the lease bucket: 3 on a 3-server cluster. Default 1.
	Replicas int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *LeaseConfig) withDefaults() {
	if c.TTL == 0 {
		c.TTL = 6 * time.Second
	}
	if c.Margin == 0 {
		c.Margin = c.TTL / 5
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports whether the config is usable (after defaults).
func (c LeaseConfig) Validate() error {
	c.withDefaults()
	if err := validName(c.Cluster); err != nil {
		return err
	}
	switch {
	case c.Node == "":
		return fmt.Errorf("%w: lease Node is empty", ErrInvalidConfig)
	case c.TTL < 300*time.Millisecond:
		return fmt.Errorf("%w: lease TTL %v under 300ms", ErrInvalidConfig, c.TTL)
	case c.Margin < 0 || c.Margin >= c.TTL*2/3:
		return fmt.Errorf("%w: lease Margin %v not in [0, TTL*2/3)", ErrInvalidConfig, c.Margin)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("%w: lease Replicas %d not in 1..5", ErrInvalidConfig, c.Replicas)
	}
	return nil
}

// Leases hands out fenced partition leases stored in the JetStream KV
// bucket LeaseBucket(cluster), whose MaxAge is the lease TTL: an entry not
// renewed within the TTL disappears, and the next Acquire (a KV create) of
// the key succeeds for another node.
//
// A lease's epoch is the KV revision of the create that acquired it. KV
// revisions are stream sequences, so a later acquisition always has a
// higher epoch, also after the entry expired.
type Leases struct {
	cfg LeaseConfig
	kv  jetstream.KeyValue
}

// OpenLeases creates the lease bucket if it does not exist (or binds to it)
// and checks that its TTL is the configured one: holders that disagree on
// the TTL would fence at the wrong time.
func OpenLeases(ctx context.Context, js jetstream.JetStream, cfg LeaseConfig) (*Leases, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket(cfg.Cluster),
		Description: "reactor partition leases",
		TTL:         cfg.TTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, LeaseBucket(cfg.Cluster))
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: open lease bucket: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: lease bucket status: %w", err)
	}
	if st.TTL() != cfg.TTL {
		return nil, fmt.Errorf("%w: lease bucket %s has TTL %v, configured %v", ErrInvalidConfig, st.Bucket(), st.TTL(), cfg.TTL)
	}
	return &Leases{cfg: cfg, kv: kv}, nil
}

// leaseValue is the JSON value of a lease entry: who holds it, for operators.
type leaseValue struct {
	Node  string `json:"node"`
	Epoch uint64 `json:"epoch,omitempty"`
}

// Holder returns the node holding p's lease and the entry's current KV
// revision, or "" and 0 when nobody holds it.
func (ls *Leases) Holder(ctx context.Context, p Partition) (node string, revision uint64, err error) {
	e, err := ls.kv.Get(ctx, p.Token())
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("cluster: read lease %s: %w", p, err)
	}
	var v leaseValue
	_ = json.Unmarshal(e.Value(), &v)
	return v.Node, e.Revision(), nil
}

// Acquire takes p's lease for this node, or fails with ErrHeld when another
// holder's entry exists. The returned Lease renews itself at TTL/3 until
// Release, and fences itself (Valid false, Fenced closed) when it cannot
// prove ownership any more.
func (ls *Leases) Acquire(ctx context.Context, p Partition) (*Lease, error) {
	val, _ := json.Marshal(leaseValue{Node: ls.cfg.Node})
	// Validity counts from before the request is sent: the entry's age on
	// the server starts later than that, so our deadline comes first.
	sent := time.Now()
	rev, err := ls.kv.Create(ctx, p.Token(), val)
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err) { // the latter: another node's create won the race
		return nil, fmt.Errorf("%w: %s", ErrHeld, p)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: acquire lease %s: %w", p, err)
	}
	l := &Lease{
		ls:       ls,
		p:        p,
		epoch:    rev,
		rev:      rev,
		acquired: sent,
		fenced:   make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		log:      ls.cfg.Logger.With("partition", p.String(), "epoch", rev),
	}
	l.mu.Lock()
	l.validUntil = sent.Add(ls.cfg.TTL - ls.cfg.Margin)
	l.timer = time.AfterFunc(time.Until(l.validUntil), func() { l.fence(fmt.Errorf("%w: lease %s not renewed in time", ErrFenced, p)) })
	l.mu.Unlock()
	go l.renewLoop()
	return l, nil
}

// Lease is one held partition lease. Its methods are safe for concurrent use.
//
// Valid is the authority: it compares the monotonic clock with the end of
// validity, (send time of the last successful renewal) + TTL − Margin, so it
// turns false in time even if the process was paused and no timer ran.
// Fenced is closed by a timer at that moment (or at once when a renewal
// finds a newer owner), for code that waits.
type Lease struct {
	ls       *Leases
	p        Partition
	epoch    uint64
	acquired time.Time
	log      *slog.Logger

	mu         sync.Mutex
	rev        uint64 // KV revision of our latest write
	validUntil time.Time
	timer      *time.Timer
	err        error // why fenced; nil while valid
	fencedAt   time.Time
	fenced     chan struct{}
	paused     bool // test hook: renewals skipped (a paused holder)

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// Partition is the leased partition.
func (l *Lease) Partition() Partition { return l.p }

// Epoch is the KV revision that created this lease: strictly higher than
// the epoch of every earlier holder of the partition.
func (l *Lease) Epoch() uint64 { return l.epoch }

// Acquired is when the successful acquire request was sent (an instant
// before the lease took effect in NATS).
func (l *Lease) Acquired() time.Time { return l.acquired }

// Valid reports whether the holder may still act as the owner.
func (l *Lease) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil && time.Now().Before(l.validUntil)
}

// ValidUntil is the current end of validity (by this process's clock).
func (l *Lease) ValidUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.validUntil
}

// Fenced is closed when the lease is lost, expired by the holder's clock or
// released.
func (l *Lease) Fenced() <-chan struct{} { return l.fenced }

// FencedAt is when the lease fenced (zero while valid).
func (l *Lease) FencedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fencedAt
}

// Err is nil while the lease is valid, else an error wrapping ErrFenced
// that says why.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil && !time.Now().Before(l.validUntil) {
		return fmt.Errorf("%w: lease %s expired", ErrFenced, l.p)
	}
	return l.err
}

// fence ends the lease (once). A later successful renewal never revives it.
func (l *Lease) fence(why error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = why
	l.fencedAt = time.Now()
	l.timer.Stop()
	close(l.fenced)
	if !errors.Is(why, errReleased) {
		l.log.Warn("cluster: lease fenced", "err", why)
	}
}

var errReleased = fmt.Errorf("%w: lease released", ErrFenced)

func (l *Lease) renewLoop() {
	defer close(l.done)
	ttl := l.ls.cfg.TTL
	every := ttl / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.fenced:
			return
		case <-t.C:
		}
		next := every
		if err := l.renew(); err != nil {
			if errors.Is(err, ErrFenced) {
				l.fence(err)
				return
			}
			l.log.Warn("cluster: lease renewal failed, retrying", "err", err)
			next = every / 3 // retry sooner; the fence timer bounds it all
		}
		t.Reset(next)
	}
}

// renew updates the entry on our last revision. A revision mismatch or a
// missing key means the entry expired or was taken: someone may already
// own the partition, so that is a fence, not a retry.
func (l *Lease) renew() error {
	l.mu.Lock()
	rev, until, paused := l.rev, l.validUntil, l.paused
	l.mu.Unlock()
	if paused {
		return nil
	}
	// Never wait for an answer past validity: after it we are fenced anyway.
	ctx, cancel := context.WithDeadline(context.Background(), until)
	defer cancel()
	val, _ := json.Marshal(leaseValue{Node: l.ls.cfg.Node, Epoch: l.epoch})
	sent := time.Now()
	nrev, err := l.ls.kv.Update(ctx, l.p.Token(), val, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: lease %s taken over or expired (renewal on revision %d: %v)", ErrFenced, l.p, rev, err)
	}
	if err != nil {
		return fmt.Errorf("cluster: renew lease %s: %w", l.p, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil // fenced meanwhile: stays fenced
	}
	l.rev = nrev
	l.validUntil = sent.Add(l.ls.cfg.TTL - l.ls.cfg.Margin)
	l.timer.Reset(time.Until(l.validUntil))
	return nil
}

// Release stops renewing, fences the lease and deletes its entry (on our
// revision, so a newer owner's entry is never touched), letting another
// node acquire at once instead of after the TTL. Safe to call twice.
func (l *Lease) Release(ctx context.Context) error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	rev, wasValid := l.rev, l.err == nil && time.Now().Before(l.validUntil)
	l.mu.Unlock()
	l.fence(errReleased)
	if !wasValid {
		return nil
	}
	err := l.ls.kv.Delete(ctx, l.p.Token(), jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("cluster: release lease %s: %w", l.p, err)
	}
	return nil
}
