package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Job is what a handler gets: the decoded arguments and the job's record.
type Job[A any] struct {
	ID          string
	Kind        string
	Queue       string
	Args        A
	Attempt     int // 1 on the first run
	MaxAttempts int
	Priority    int
	EnqueuedAt  time.Time
	// Errors of the previous attempts, oldest first (at most the last 10).
	Errors []AttemptError
}

// AttemptError records why one attempt failed.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// Kind is a typed job kind, defined once at package level with Define. Its
// name is what the journal and the queue carry: keep it stable.
type Kind[A any] struct {
	name string
	fn   func(context.Context, *Job[A]) error
	def  settings
}

// Option configures a kind (Define: the defaults of its jobs) or one job
// (Enqueue: overrides the kind's defaults).
type Option func(*settings)

type settings struct {
	queue       string
	priority    int
	hasPriority bool
	maxAttempts int
	timeout     time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	runAt       time.Time
	delay       time.Duration
	unique      string
	rate        float64 // RateLimit: jobs per second (0: unlimited)
	burst       int
}

// Queue puts the jobs in the named queue (default "default"). The queue
// must be configured in Config.Queues of the Queues they are enqueued to.
func Queue(name string) Option { return func(s *settings) { s.queue = name } }

// Priority orders runnable jobs: higher first (default 0). Among equal
// priorities the earlier run-at time, then the earlier enqueue, runs first.
func Priority(p int) Option { return func(s *settings) { s.priority, s.hasPriority = p, true } }

// MaxAttempts is how many times a job runs before it is dead-lettered
// (default 25). 1 means no retry.
func MaxAttempts(n int) Option { return func(s *settings) { s.maxAttempts = n } }

// Timeout bounds one attempt: the handler's context ends after d (default:
// none beyond the lease, which heartbeats keep alive).
func Timeout(d time.Duration) Option { return func(s *settings) { s.timeout = d } }

// Backoff sets the retry delay: attempt n waits a uniformly random time in
// [0, min(max, base·2^(n-1))) — exponential backoff with full jitter
// (defaults: base 1s, max 10m).
func Backoff(base, max time.Duration) Option {
	return func(s *settings) { s.backoffBase, s.backoffMax = base, max }
}

// RunAt makes the job runnable no earlier than t.
func RunAt(t time.Time) Option { return func(s *settings) { s.runAt = t } }

// Delay makes the job runnable d after it is enqueued (by the queue's
// clock, or the enqueuing handler's Ctx.Now for a transactional enqueue).
func Delay(d time.Duration) Option { return func(s *settings) { s.delay = d } }

// Unique gives the job a unique key within its queue: while a job with the
// same key is pending or running, enqueueing another returns the existing
// job's id and adds nothing. Once that job finished the key is free again.
func Unique(key string) Option { return func(s *settings) { s.unique = key } }

// runner is the untyped face of a kind, for workers.
type runner interface {
	run(ctx context.Context, info *Info) error
	settings() settings
}

var kinds sync.Map // name → runner

// Define defines a job kind. It panics if the name is empty or taken (like
// reactor.Method): kinds are defined once, at package level.
//
//	var SendEmail = jobs.Define("email.send", func(ctx context.Context, j *jobs.Job[Email]) error { … },
//		jobs.MaxAttempts(5))
func Define[A any](name string, fn func(ctx context.Context, job *Job[A]) error, opts ...Option) *Kind[A] {
	if name == "" || fn == nil {
		panic("jobs: Define needs a name and a handler")
	}
	k := &Kind[A]{name: name, fn: fn}
	for _, o := range opts {
		o(&k.def)
	}
	if _, dup := kinds.LoadOrStore(name, k); dup {
		panic(fmt.Sprintf("jobs: kind %q defined twice", name))
	}
	return k
}

// Name returns the kind's stable name.
func (k *Kind[A]) Name() string { return k.name }

func (k *Kind[A]) settings() settings { return k.def }

func (k *Kind[A]) run(ctx context.Context, info *Info) error {
	j := &Job[A]{ID: info.ID, Kind: info.Kind, Queue: info.Queue, Attempt: info.Attempt, MaxAttempts: info.MaxAttempts,
		Priority: info.Priority, EnqueuedAt: info.EnqueuedAt, Errors: info.Errors}
	if err := json.Unmarshal(info.Args, &j.Args); err != nil {
		return Permanent(fmt.Errorf("jobs: decode %s args: %w", k.name, err))
	}
	return k.fn(ctx, j)
}

// request builds the enqueue request for args with the kind's defaults
// overridden by opts.
func (k *Kind[A]) request(args A, opts []Option) (enqueueReq, settings, error) {
	s := k.def
	for _, o := range opts {
		o(&s)
	}
	if s.queue == "" {
		s.queue = DefaultQueue
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return enqueueReq{}, s, fmt.Errorf("jobs: encode %s args: %w", k.name, err)
	}
	req := enqueueReq{Kind: k.name, Args: raw, Priority: s.priority, MaxAttempts: s.maxAttempts,
		BackoffBase: s.backoffBase, BackoffMax: s.backoffMax, Unique: s.unique, Delay: s.delay}
	if !s.runAt.IsZero() {
		req.RunAt = s.runAt.UnixNano()
	}
	return req, s, nil
}

// EnqueueJSON enqueues a job of the named kind with arguments already
// encoded as JSON: the untyped door for producers that are not Go code in
// this process (jobs/jobshttp). If the kind is defined here its defaults
// apply, then opts; the kind need not be defined in this process (a worker
// elsewhere may run it). queue "" means the kind's queue, or DefaultQueue.
// Like Kind.Enqueue from outside, it returns once the job is durable and
// refuses with a *BusyError beyond MaxDepth.
func (qs *Queues) EnqueueJSON(ctx context.Context, queue, kind string, args json.RawMessage, opts ...Option) (string, error) {
	if kind == "" {
		return "", fmt.Errorf("jobs: enqueue: empty kind: %w", ErrUnknownKind)
	}
	if !json.Valid(args) {
		return "", fmt.Errorf("jobs: enqueue %s: args are not valid JSON", kind)
	}
	var s settings
	if v, ok := kinds.Load(kind); ok {
		s = v.(runner).settings()
	}
	if queue != "" {
		s.queue = queue
	}
	for _, o := range opts {
		o(&s)
	}
	ref, err := qs.ref(s.queue)
	if err != nil {
		return "", err
	}
	req := enqueueReq{Kind: kind, Args: args, Priority: s.priority, MaxAttempts: s.maxAttempts,
		BackoffBase: s.backoffBase, BackoffMax: s.backoffMax, Unique: s.unique, Delay: s.delay}
	if !s.runAt.IsZero() {
		req.RunAt = s.runAt.UnixNano()
	}
	return mEnqueue.TryCall(ctx, ref, req)
}
