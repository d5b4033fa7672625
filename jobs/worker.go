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
func (qs *Queues) Lease(ctx context.Context, queue, worker string, max int, leaseTime time.Duration) ([]Lease, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return nil, err
	}
	resp, err := mLease.Call(ctx, ref, leaseReq{Worker: worker, Max: max, Lease: leaseTime})
	if err != nil {
		return nil, err
	}
	out := make([]Lease, len(resp.Jobs))
	for i, j := range resp.Jobs {
		out[i] = Lease{j}
	}
	return out, nil
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
		if free > 0 {
			now := p.qs.cfg.Clock().UnixNano()
			peek, err := mPeek.Call(p.base, p.ref, struct{}{})
			switch {
			case err != nil:
				p.qs.log.Warn("jobs: peek failed", "queue", p.name, "err", err)
			case peek.Next != 0 && peek.Next <= now:
				leases, err := p.qs.Lease(p.base, p.name, p.qs.worker, free, p.cfg.LeaseTime)
				if err != nil {
					p.qs.log.Warn("jobs: lease failed", "queue", p.name, "err", err)
					break
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
			default:
				next = peek.Next
			}
		}
		wait := p.cfg.PollInterval
		if free > 0 && next != 0 {
			if d := time.Duration(next - p.qs.cfg.Clock().UnixNano()); d < wait {
				wait = max(d, time.Millisecond)
			}
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
