package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/reactorgo/reactor"
)

// Lease is a job handed to a worker: the record plus the fencing token that
// its heartbeats and its completion or failure must carry.
type Lease struct {
	Info
}

// Lease takes up to max runnable jobs of a queue for worker, for leaseTime
// (0: the queue's LeaseTime). Each lease gets a new fencing token, higher
// than every token before it. This and Heartbeat, Complete and Fail are the
// protocol the in-process workers use; remote workers would use the same.
//
// Lease does not apply the kinds' rate limits (LeaseWait does).
func (qs *Queues) Lease(ctx context.Context, queue, worker string, max int, leaseTime time.Duration) ([]Lease, error) {
	leases, _, err := qs.lease(ctx, queue, leaseReq{Worker: worker, Max: max, Lease: leaseTime})
	return leases, err
}

func (qs *Queues) lease(ctx context.Context, queue string, r leaseReq) ([]Lease, int64, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return nil, 0, err
	}
	if queue == "" {
		queue = DefaultQueue
	}
	r.MaxRunning = qs.qcfg[queue].MaxRunning
	resp, err := mLease.Call(ctx, ref, r)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Lease, len(resp.Jobs))
	for i, j := range resp.Jobs {
		out[i] = Lease{j}
	}
	return out, resp.Next, nil
}

// tryLease is one round of the workers' protocol: peek (read-only, not
// journaled) whether a job is due, passing over the kinds out of rate
// tokens; if one is, lease up to free jobs within the rate limits. It
// returns the leases, or when to look again (a due time by Config.Clock,
// or 0: nothing pending) and how long until a throttled kind has a token
// (0: none is throttled).
func (qs *Queues) tryLease(ctx context.Context, queue string, ref reactor.Ref, worker string, free int, leaseTime time.Duration) (leases []Lease, next int64, wake time.Duration, err error) {
	now := qs.cfg.Clock()
	lim := qs.limitsFor(now, free)
	peek, err := mPeek.Call(ctx, ref, peekReq{Skip: lim.skip})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("jobs: peek %s: %w", queue, err)
	}
	if peek.Next == 0 || peek.Next > now.UnixNano() {
		return nil, peek.Next, lim.wake, nil
	}
	leases, next, err = qs.lease(ctx, queue, leaseReq{Worker: worker, Max: free, Lease: leaseTime, Kinds: lim.caps})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("jobs: lease %s: %w", queue, err)
	}
	qs.spend(now, leases)
	if len(leases) == 0 && next != 0 && next <= now.UnixNano() {
		// Due jobs, none leasable: throttled kinds, or MaxRunning. Look
		// again at the next token or poll, not in a busy loop.
		next = 0
	}
	return leases, next, lim.wake, nil
}

// LeaseWait is Lease with long polling and the kinds' rate limits: it
// returns as soon as at least one job could be leased, or with none once
// wait has passed (or ctx ended). It is what remote workers call (see
// jobs/jobshttp). After Close it fails with ErrClosed.
func (qs *Queues) LeaseWait(ctx context.Context, queue, worker string, max int, leaseTime, wait time.Duration) ([]Lease, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return nil, err
	}
	if queue == "" {
		queue = DefaultQueue
	}
	if max <= 0 {
		max = 1
	}
	poll := qs.qcfg[queue].PollInterval
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		if qs.stopping.Load() {
			return nil, ErrClosed
		}
		woken := qs.wakeup(queue) // before looking, so a poke in between is not lost
		leases, next, wake, err := qs.tryLease(ctx, queue, ref, worker, max, leaseTime)
		if err != nil || len(leases) > 0 {
			return leases, err
		}
		d := qs.sleepFor(poll, next, wake)
		t := time.NewTimer(d)
		select {
		case <-woken:
		case <-t.C:
		case <-deadline.C:
			t.Stop()
			return nil, nil
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// sleepFor is how long an idle worker waits: until the next due job (by
// Config.Clock), a throttled kind's next token, or poll, whichever is
// first.
func (qs *Queues) sleepFor(poll time.Duration, next int64, wake time.Duration) time.Duration {
	d := poll
	if next != 0 {
		d = min(d, max(time.Duration(next-qs.cfg.Clock().UnixNano()), time.Millisecond))
	}
	if wake > 0 {
		d = min(d, wake)
	}
	return d
}

// Heartbeat extends a lease by leaseTime (0: the queue's LeaseTime) from
// now and returns the new deadline. A token that is not the job's current
// lease fails with ErrStaleLease.
func (qs *Queues) Heartbeat(ctx context.Context, l Lease, leaseTime time.Duration) (time.Time, error) {
	ref, err := qs.ref(l.Queue)
	if err != nil {
		return time.Time{}, err
	}
	return mHeartbeat.Call(ctx, ref, tokenReq{ID: l.ID, Token: l.Token, Lease: leaseTime})
}

// Complete reports a leased job done. A stale token (the lease expired, the
// job was leased again, or cancelled) fails with ErrStaleLease and changes
// nothing.
func (qs *Queues) Complete(ctx context.Context, l Lease) error {
	ref, err := qs.ref(l.Queue)
	if err != nil {
		return err
	}
	_, err = mComplete.Call(ctx, ref, tokenReq{ID: l.ID, Token: l.Token})
	return err
}

// Fail reports a leased job's attempt failed with cause. The job is retried
// after a backoff, or dead-lettered when it is out of attempts or cause
// wraps ErrPermanent. It returns when the next attempt is due (zero: dead).
// A stale token fails with ErrStaleLease and changes nothing.
func (qs *Queues) Fail(ctx context.Context, l Lease, cause error) (time.Time, error) {
	ref, err := qs.ref(l.Queue)
	if err != nil {
		return time.Time{}, err
	}
	msg := "failed"
	if cause != nil {
		msg = cause.Error()
	}
	return mFail.Call(ctx, ref, failReq{ID: l.ID, Token: l.Token, Error: msg, Permanent: errors.Is(cause, ErrPermanent)})
}

// pool runs one queue's jobs in this process, at most cfg.Workers at once.
type pool struct {
	qs   *Queues
	name string
	ref  reactor.Ref
	cfg  QueueConfig
	poke chan struct{}
	base context.Context
}

func (p *pool) loop() {
	freed := make(chan struct{}, p.cfg.Workers)
	running := 0
	defer func() {
		for ; running > 0; running-- {
			<-freed
		}
	}()
	for !p.qs.stopping.Load() {
		free := p.cfg.Workers - running
		var next int64
		var wake time.Duration
		if free > 0 {
			leases, n, w, err := p.qs.tryLease(p.base, p.name, p.ref, p.qs.worker, free, p.cfg.LeaseTime)
			if err != nil {
				p.qs.log.Warn("jobs: lease failed", "queue", p.name, "err", err)
			}
			for _, l := range leases {
				running++
				go func() {
					defer func() { freed <- struct{}{} }()
					p.run(l)
				}()
			}
			if len(leases) > 0 {
				continue // look again: more may be due
			}
			next, wake = n, w
		}
		wait := p.cfg.PollInterval
		if free > 0 {
			wait = p.qs.sleepFor(wait, next, wake)
		}
		t := time.NewTimer(wait)
		select {
		case <-freed:
			running--
		case <-p.poke:
		case <-t.C:
		case <-p.base.Done():
		}
		t.Stop()
	drain:
		for {
			select {
			case <-freed:
				running--
			default:
				break drain
			}
		}
	}
}

// run runs one leased job: heartbeats while the handler runs, then reports.
func (p *pool) run(l Lease) {
	log := p.qs.log.With("queue", p.name, "job", l.ID, "kind", l.Kind, "attempt", l.Attempt, "token", l.Token)
	v, ok := kinds.Load(l.Kind)
	if !ok {
		if _, err := p.qs.Fail(p.base, l, Permanent(fmt.Errorf("jobs: kind %q: %w", l.Kind, ErrUnknownKind))); err != nil {
			log.Warn("jobs: failing a job of unknown kind", "err", err)
		}
		return
	}
	k := v.(runner)
	ctx, cancel := context.WithCancel(p.base)
	defer cancel()
	if t := k.settings().timeout; t > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, t)
		defer c2()
	}
	stop := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		every := max(p.cfg.LeaseTime/3, time.Millisecond)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if _, err := p.qs.Heartbeat(p.base, l, p.cfg.LeaseTime); err != nil {
					if errors.Is(err, ErrStaleLease) || errors.Is(err, ErrNotFound) {
						log.Warn("jobs: lease lost, cancelling the handler", "err", err)
						cancel()
						return
					}
					log.Warn("jobs: heartbeat failed", "err", err)
				}
			}
		}
	}()
	err := safely(func() error { return k.run(ctx, &l.Info) })
	close(stop)
	<-hbDone
	if err == nil {
		err = p.qs.Complete(p.base, l)
		if err != nil {
			log.Warn("jobs: completion not recorded", "err", err)
		}
		return
	}
	if _, ferr := p.qs.Fail(p.base, l, err); ferr != nil {
		log.Warn("jobs: failure not recorded", "cause", err, "err", ferr)
	}
}

// safely runs fn, turning a panic into an error carrying the stack.
func safely(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("jobs: handler panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return fn()
}
