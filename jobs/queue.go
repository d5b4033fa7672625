package jobs

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/reactorgo/reactor"
)

// State is where a job is in its life.
type State string

// The states. Pending, Running are live; the others are final (Dead until
// redriven).
const (
	Pending   State = "pending" // waiting for its run-at time or a worker
	Running   State = "running" // leased to a worker
	Completed State = "completed"
	Cancelled State = "cancelled"
	Dead      State = "dead" // out of attempts, or failed permanently
)

// Info is a job's record as the queue keeps it.
type Info struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Queue       string          `json:"queue"`
	Args        json.RawMessage `json:"args"`
	State       State           `json:"state"`
	Priority    int             `json:"priority,omitempty"`
	RunAt       time.Time       `json:"runAt"`
	Attempt     int             `json:"attempt"` // attempts started so far
	MaxAttempts int             `json:"maxAttempts"`
	Unique      string          `json:"unique,omitempty"`
	EnqueuedAt  time.Time       `json:"enqueuedAt"`
	FinishedAt  time.Time       `json:"finishedAt,omitzero"`
	Errors      []AttemptError  `json:"errors,omitempty"`
	// Token is the fencing token of the current (or last) lease.
	Token uint64 `json:"token,omitempty"`
	// LeaseUntil is the current lease's deadline (Running only).
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// StartedAt is when the current (or last) attempt was leased.
	StartedAt   time.Time     `json:"startedAt,omitzero"`
	Worker      string        `json:"worker,omitempty"`
	Seq         uint64        `json:"seq"` // enqueue order within the queue
	BackoffBase time.Duration `json:"backoffBase,omitempty"`
	BackoffMax  time.Duration `json:"backoffMax,omitempty"`
}

const maxErrors = 10

// queue is one queue's state: a journaled service at Config.Prefix/name.
// Every field that is exported is checkpointed; the heaps are rebuilt from
// Jobs in OnLoad.
type queue struct {
	Name    string
	Jobs    map[string]*Info
	Unique  map[string]string // unique key → id of the live job holding it
	Alias   map[string]string // id proposed by a transactional enqueue that hit a unique key → existing id
	Seq     uint64            // enqueue counter
	Token   uint64            // last fencing token handed out
	Done    uint64            // completed, ever
	Failed  uint64            // failed attempts, ever
	Live    int               // pending + running jobs
	Leased  uint64            // attempts started (leases handed out), ever
	Dropped uint64            // cancelled jobs, ever
	// Schedules are the periodic jobs of this queue, by name (cron.go).
	Schedules map[string]*Schedule

	cfg   QueueConfig
	owner *Queues
	// ready holds the Pending jobs due at the last look, one heap per kind,
	// so that a lease can pass over the kinds a worker is rate-limited on
	// without scanning their jobs.
	ready map[string]*readyHeap
	run   map[string]*Info // Running jobs
	sched runAtHeap        // Pending jobs, by run-at
	timer *reactor.Timer
	crons map[string]cronSchedule // parsed specs, by spec text

	// Measurements for Stats and Retry-After. They are not checkpointed:
	// they are rebuilt from the handlers' journaled times after a replay
	// and start empty after a checkpoint, which only changes the hints
	// they give, never the queue's state.
	drained   meter // jobs that left the live set (completed, dead, cancelled)
	completed meter
	latency   latencies // run time of completed attempts
}

// Requests and replies of the queue's methods.
type enqueueReq struct {
	ID          string          `json:"id,omitempty"` // proposed by a transactional enqueue
	Tx          bool            `json:"tx,omitempty"`
	Kind        string          `json:"kind"`
	Args        json.RawMessage `json:"args"`
	Priority    int             `json:"priority,omitempty"`
	RunAt       int64           `json:"runAt,omitempty"` // unix ns; 0: now + Delay
	Delay       time.Duration   `json:"delay,omitempty"`
	MaxAttempts int             `json:"maxAttempts,omitempty"`
	BackoffBase time.Duration   `json:"backoffBase,omitempty"`
	BackoffMax  time.Duration   `json:"backoffMax,omitempty"`
	Unique      string          `json:"unique,omitempty"`
}

type leaseReq struct {
	Worker string        `json:"worker"`
	Max    int           `json:"max"`
	Lease  time.Duration `json:"lease"`
	// Kinds caps the jobs of some kinds in this lease (a worker's rate
	// limits; 0: none of that kind). Kinds not named are not capped.
	Kinds map[string]int `json:"kinds,omitempty"`
	// MaxRunning caps the queue's running jobs, across all workers
	// (QueueConfig.MaxRunning as the caller saw it; 0: no cap). It travels
	// in the request so that replay leases exactly what was leased.
	MaxRunning int `json:"maxRunning,omitempty"`
}

// peekReq asks whether a job is due, passing over the kinds in Skip.
type peekReq struct {
	Skip []string `json:"skip,omitempty"`
}

type leaseResp struct {
	Jobs []Info `json:"jobs,omitempty"`
	// Next is when the earliest pending job becomes due (unix ns; 0: none).
	Next int64 `json:"next,omitempty"`
}

type tokenReq struct {
	ID    string        `json:"id"`
	Token uint64        `json:"token"`
	Lease time.Duration `json:"lease,omitempty"` // heartbeat: new lease length
}

type failReq struct {
	ID        string `json:"id"`
	Token     uint64 `json:"token"`
	Error     string `json:"error"`
	Permanent bool   `json:"permanent,omitempty"`
}

type idsReq struct {
	IDs []string `json:"ids,omitempty"` // empty: all dead jobs
}

// Stats is a snapshot of one queue.
type Stats struct {
	Queue     string        `json:"queue"`
	Pending   int           `json:"pending"` // including scheduled for later
	Due       int           `json:"due"`     // pending and runnable now
	Running   int           `json:"running"`
	Dead      int           `json:"dead"`
	Completed uint64        `json:"completed"` // ever
	Failed    uint64        `json:"failed"`    // failed attempts, ever
	OldestDue time.Duration `json:"oldestDue"` // how long the oldest runnable job has waited
	// Depth is the pending and running jobs, the number MaxDepth bounds.
	Depth    int `json:"depth"`
	MaxDepth int `json:"maxDepth"`
	// Attempts is the number of attempts started (leases handed out), ever.
	Attempts uint64 `json:"attempts"`
	// Cancelled is the number of cancelled jobs, ever.
	Cancelled uint64 `json:"cancelled"`
	// Throughput is the completions per second over the last minute;
	// Drain counts every job that left the queue (completed, dead or
	// cancelled), the rate Retry-After is computed from.
	Throughput float64 `json:"throughput"`
	Drain      float64 `json:"drain"`
	// RunP50 and RunP99 are percentiles of the run time (lease to
	// completion) of the last 1024 completed attempts.
	RunP50 time.Duration `json:"runP50"`
	RunP99 time.Duration `json:"runP99"`
	// RetryAfter is what a refused enqueue would be told now (Little's
	// law: Depth / Drain, clamped).
	RetryAfter time.Duration `json:"retryAfter"`
	// Schedules is the number of periodic schedules.
	Schedules int `json:"schedules"`
}

var (
	mEnqueue   = reactor.Method("jobs.enqueue", (*queue).enqueue)
	mLease     = reactor.Method("jobs.lease", (*queue).lease)
	mHeartbeat = reactor.Method("jobs.heartbeat", (*queue).heartbeat)
	mComplete  = reactor.Method("jobs.complete", (*queue).complete)
	mFail      = reactor.Method("jobs.fail", (*queue).fail)
	mCancel    = reactor.Method("jobs.cancel", (*queue).cancel)
	mRedrive   = reactor.Method("jobs.redrive", (*queue).redrive)
	mPurge     = reactor.Method("jobs.purge", (*queue).purge)
	mGet       = reactor.Method("jobs.get", (*queue).get, reactor.ReadOnly())
	mDead      = reactor.Method("jobs.dead", (*queue).dead, reactor.ReadOnly())
	mStats     = reactor.Method("jobs.stats", (*queue).stats, reactor.ReadOnly())
	mPeek      = reactor.Method("jobs.peek", (*queue).peek, reactor.ReadOnly())
)

// mTick is set in init: tick re-arms itself through it.
var mTick *reactor.MethodOf[queue, struct{}, struct{}]

func init() { mTick = reactor.Method("jobs.tick", (*queue).tick) }

// OnLoad rebuilds the indexes from the checkpointed jobs.
func (q *queue) OnLoad(*reactor.Ctx) error {
	if q.Jobs == nil {
		q.Jobs = map[string]*Info{}
	}
	if q.Unique == nil {
		q.Unique = map[string]string{}
	}
	if q.Alias == nil {
		q.Alias = map[string]string{}
	}
	if q.Schedules == nil {
		q.Schedules = map[string]*Schedule{}
	}
	q.ready, q.sched, q.run = map[string]*readyHeap{}, q.sched[:0], map[string]*Info{}
	for _, j := range q.Jobs {
		switch j.State {
		case Pending:
			q.sched = append(q.sched, j)
		case Running:
			q.run[j.ID] = j
		}
	}
	heap.Init(&q.sched)
	return nil
}

// OnActive arms the housekeeping timer (timers are not journaled).
func (q *queue) OnActive(c *reactor.Ctx) { q.arm(c) }

func (q *queue) arm(c *reactor.Ctx) {
	if q.cfg.TickInterval > 0 {
		q.timer = mTick.After(c, q.cfg.TickInterval, struct{}{})
	}
}

func (q *queue) enqueue(c *reactor.Ctx, r enqueueReq) (string, error) {
	if r.ID != "" {
		if _, ok := q.Jobs[r.ID]; ok {
			return r.ID, nil // a resent transactional enqueue
		}
		if id, ok := q.Alias[r.ID]; ok {
			return id, nil
		}
	}
	if r.Unique != "" {
		if id, ok := q.Unique[r.Unique]; ok {
			if r.ID != "" {
				q.Alias[r.ID] = id
			}
			return id, nil
		}
	}
	now := c.Now()
	q.drained.touch(now)
	q.completed.touch(now)
	if !r.Tx && q.cfg.MaxDepth > 0 && q.Live >= q.cfg.MaxDepth {
		return "", q.busy(now)
	}
	q.Seq++
	id := r.ID
	if id == "" {
		id = fmt.Sprintf("%s-%d", q.Name, c.Seq())
		if c.Seq() == 0 { // not journaled (a test runtime without journal): still unique
			id = fmt.Sprintf("%s-n%d", q.Name, q.Seq)
		}
	}
	runAt := now.Add(r.Delay)
	if r.RunAt != 0 {
		runAt = time.Unix(0, r.RunAt)
	}
	j := &Info{ID: id, Kind: r.Kind, Queue: q.Name, Args: r.Args, State: Pending, Priority: r.Priority, RunAt: runAt,
		MaxAttempts: r.MaxAttempts, Unique: r.Unique, EnqueuedAt: now, Seq: q.Seq, BackoffBase: r.BackoffBase, BackoffMax: r.BackoffMax}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = 25
	}
	q.Jobs[id] = j
	q.Live++
	if r.Unique != "" {
		q.Unique[r.Unique] = id
	}
	heap.Push(&q.sched, j)
	if !c.Replaying() {
		q.owner.poke(q.Name)
	}
	return id, nil
}

// promote moves pending jobs due at now from the run-at heap to the ready
// heap. Jobs no longer pending (cancelled) are dropped lazily.
func (q *queue) promote(now time.Time) {
	for len(q.sched) > 0 {
		j := q.sched[0]
		if j.State != Pending {
			heap.Pop(&q.sched)
			continue
		}
		if j.RunAt.After(now) {
			break
		}
		heap.Pop(&q.sched)
		h := q.ready[j.Kind]
		if h == nil {
			h = &readyHeap{}
			q.ready[j.Kind] = h
		}
		heap.Push(h, j)
	}
}

// reap ends leases whose deadline passed: the job is runnable again at
// once, or dead if it has no attempt left.
func (q *queue) reap(now time.Time) {
	var expired []*Info
	for _, j := range q.run {
		if now.After(j.LeaseUntil) {
			expired = append(expired, j)
		}
	}
	sort.Slice(expired, func(a, b int) bool { return expired[a].Seq < expired[b].Seq }) // map order is random: keep replay exact
	for _, j := range expired {
		q.Failed++
		q.retry(j, now, now, fmt.Sprintf("lease expired (worker %s, token %d)", j.Worker, j.Token), false)
	}
}

// retry records a failed attempt and schedules the next one at runAt, or
// dead-letters the job.
func (q *queue) retry(j *Info, now, runAt time.Time, msg string, permanent bool) {
	j.Errors = append(j.Errors, AttemptError{Attempt: j.Attempt, At: now, Error: msg})
	if len(j.Errors) > maxErrors {
		j.Errors = j.Errors[len(j.Errors)-maxErrors:]
	}
	j.Worker, j.LeaseUntil = "", time.Time{}
	if permanent || j.Attempt >= j.MaxAttempts {
		q.finish(j, Dead, now)
		return
	}
	j.State, j.RunAt = Pending, runAt
	delete(q.run, j.ID)
	heap.Push(&q.sched, j)
}

func (q *queue) finish(j *Info, s State, now time.Time) {
	q.Live--
	q.drained.add(now)
	switch s {
	case Completed:
		q.completed.add(now)
		if !j.StartedAt.IsZero() {
			q.latency.add(now.Sub(j.StartedAt))
		}
	case Cancelled:
		q.Dropped++
	}
	delete(q.run, j.ID)
	j.State, j.FinishedAt, j.Worker, j.LeaseUntil = s, now, "", time.Time{}
	if j.Unique != "" && q.Unique[j.Unique] == j.ID {
		delete(q.Unique, j.Unique)
	}
}

func (q *queue) lease(c *reactor.Ctx, r leaseReq) (leaseResp, error) {
	now := c.Now()
	q.reap(now)
	q.fire(c, now)
	q.promote(now)
	if r.Lease <= 0 {
		r.Lease = q.cfg.LeaseTime
	}
	if r.MaxRunning > 0 {
		r.Max = min(r.Max, r.MaxRunning-len(q.run))
	}
	var resp leaseResp
	taken := map[string]int{}
	for len(resp.Jobs) < r.Max {
		j := q.popReady(r.Kinds, taken)
		if j == nil {
			break
		}
		taken[j.Kind]++
		q.Token++
		q.Leased++
		j.State, j.Token, j.Worker, j.LeaseUntil, j.StartedAt = Running, q.Token, r.Worker, now.Add(r.Lease), now
		j.Attempt++
		q.run[j.ID] = j
		resp.Jobs = append(resp.Jobs, j.clone())
	}
	resp.Next = q.next()
	return resp, nil
}

// popReady takes the best due job (priority, run-at, enqueue order) among
// the kinds whose cap is not reached. Kinds are few, so comparing their
// heads is cheap; stale heads (cancelled jobs) are dropped on the way.
func (q *queue) popReady(caps map[string]int, taken map[string]int) *Info {
	var best *readyHeap
	for kind, h := range q.ready {
		for h.Len() > 0 && (*h)[0].State != Pending {
			heap.Pop(h)
		}
		if h.Len() == 0 {
			delete(q.ready, kind)
			continue
		}
		if c, ok := caps[kind]; ok && taken[kind] >= c {
			continue
		}
		if best == nil || readyLess((*h)[0], (*best)[0]) {
			best = h
		}
	}
	if best == nil {
		return nil
	}
	return heap.Pop(best).(*Info)
}

// next is when the earliest pending job is due (unix ns), 0 if none.
func (q *queue) next() int64 {
	var first int64
	for _, h := range q.ready {
		if h.Len() > 0 && (first == 0 || (*h)[0].RunAt.UnixNano() < first) {
			first = (*h)[0].RunAt.UnixNano()
		}
	}
	if first != 0 {
		return first
	}
	for len(q.sched) > 0 {
		if q.sched[0].State == Pending {
			return q.sched[0].RunAt.UnixNano()
		}
		heap.Pop(&q.sched) // read-only callers may get here: dropping a stale entry changes no logical state
	}
	return 0
}

// current returns the job if token is its live lease at now.
func (q *queue) current(id string, token uint64, now time.Time) (*Info, error) {
	j, ok := q.Jobs[id]
	if !ok {
		return nil, fmt.Errorf("jobs: %s: %w", id, ErrNotFound)
	}
	if j.State != Running || j.Token != token {
		return nil, fmt.Errorf("jobs: %s token %d (current %d, %s): %w", id, token, j.Token, j.State, ErrStaleLease)
	}
	if now.After(j.LeaseUntil) {
		q.Failed++
		q.retry(j, now, now, fmt.Sprintf("lease expired (worker %s, token %d)", j.Worker, j.Token), false)
		return nil, fmt.Errorf("jobs: %s token %d: lease expired: %w", id, token, ErrStaleLease)
	}
	return j, nil
}

func (q *queue) heartbeat(c *reactor.Ctx, r tokenReq) (time.Time, error) {
	j, err := q.current(r.ID, r.Token, c.Now())
	if err != nil {
		return time.Time{}, err
	}
	if r.Lease <= 0 {
		r.Lease = q.cfg.LeaseTime
	}
	j.LeaseUntil = c.Now().Add(r.Lease)
	return j.LeaseUntil, nil
}

func (q *queue) complete(c *reactor.Ctx, r tokenReq) (struct{}, error) {
	j, err := q.current(r.ID, r.Token, c.Now())
	if err != nil {
		return struct{}{}, err
	}
	q.Done++
	q.finish(j, Completed, c.Now())
	return struct{}{}, nil
}

func (q *queue) fail(c *reactor.Ctx, r failReq) (time.Time, error) {
	now := c.Now()
	j, err := q.current(r.ID, r.Token, now)
	if err != nil {
		return time.Time{}, err
	}
	q.Failed++
	runAt := now.Add(backoff(j, c))
	q.retry(j, now, runAt, r.Error, r.Permanent)
	if j.State == Dead {
		return time.Time{}, nil
	}
	return runAt, nil
}

// backoff is the delay before the attempt after j.Attempt: full jitter over
// an exponentially growing window. The draw comes from Ctx.Rand, which a
// replay repeats.
func backoff(j *Info, c *reactor.Ctx) time.Duration {
	base, ceil := j.BackoffBase, j.BackoffMax
	if base <= 0 {
		base = time.Second
	}
	if ceil <= 0 {
		ceil = 10 * time.Minute
	}
	window := ceil
	if n := j.Attempt - 1; n < 62 {
		if w := base << n; w > 0 && w < ceil && w>>n == base {
			window = w
		}
	}
	return time.Duration(c.Rand().Int64N(int64(window)))
}

func (q *queue) cancel(c *reactor.Ctx, id string) (State, error) {
	j, ok := q.Jobs[q.resolve(id)]
	if !ok {
		return "", fmt.Errorf("jobs: %s: %w", id, ErrNotFound)
	}
	if j.State != Pending && j.State != Running {
		return j.State, fmt.Errorf("jobs: cancel %s (%s): %w", id, j.State, ErrFinished)
	}
	q.finish(j, Cancelled, c.Now()) // a running job's token is dead: its worker's heartbeat fails
	return Cancelled, nil
}

func (q *queue) resolve(id string) string {
	if to, ok := q.Alias[id]; ok {
		return to
	}
	return id
}

// deadIDs returns the ids r names (all dead jobs if none), dead ones only,
// in enqueue order.
func (q *queue) deadIDs(r idsReq) []*Info {
	var out []*Info
	if len(r.IDs) == 0 {
		for _, j := range q.Jobs {
			if j.State == Dead {
				out = append(out, j)
			}
		}
	} else {
		// An id named twice (or a job named by its id and an alias) must
		// be acted on once: a second redrive of the same record would count
		// it twice in Live and push it twice onto the run-at heap.
		named := map[string]bool{}
		for _, id := range r.IDs {
			if j, ok := q.Jobs[q.resolve(id)]; ok && j.State == Dead && !named[j.ID] {
				named[j.ID] = true
				out = append(out, j)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Seq < out[b].Seq })
	return out
}

// redrive makes dead jobs pending again with a fresh set of attempts. A
// unique key taken meanwhile by another live job is dropped from the
// redriven one.
func (q *queue) redrive(c *reactor.Ctx, r idsReq) (int, error) {
	now := c.Now()
	jobs := q.deadIDs(r)
	for _, j := range jobs {
		j.State, j.RunAt, j.Attempt, j.FinishedAt = Pending, now, 0, time.Time{}
		q.Live++
		if j.Unique != "" {
			if _, taken := q.Unique[j.Unique]; taken {
				j.Unique = ""
			} else {
				q.Unique[j.Unique] = j.ID
			}
		}
		heap.Push(&q.sched, j)
	}
	if len(jobs) > 0 && !c.Replaying() {
		q.owner.poke(q.Name)
	}
	return len(jobs), nil
}

// purge deletes dead jobs for good.
func (q *queue) purge(_ *reactor.Ctx, r idsReq) (int, error) {
	jobs := q.deadIDs(r)
	for _, j := range jobs {
		delete(q.Jobs, j.ID)
	}
	return len(jobs), nil
}

// tick is the housekeeping timer: expired leases, and finished jobs past
// the retention.
func (q *queue) tick(c *reactor.Ctx, _ struct{}) (struct{}, error) {
	now := c.Now()
	q.reap(now)
	q.fire(c, now)
	if q.cfg.Retention > 0 {
		for id, j := range q.Jobs {
			if (j.State == Completed || j.State == Cancelled) && now.Sub(j.FinishedAt) > q.cfg.Retention {
				delete(q.Jobs, id)
			}
		}
		for from, to := range q.Alias {
			if _, ok := q.Jobs[to]; !ok {
				delete(q.Alias, from)
			}
		}
	}
	if !c.Replaying() {
		if q.next() != 0 {
			q.owner.poke(q.Name)
		}
		q.arm(c)
	}
	return struct{}{}, nil
}

func (q *queue) get(_ *reactor.Ctx, id string) (Info, error) {
	j, ok := q.Jobs[q.resolve(id)]
	if !ok {
		return Info{}, fmt.Errorf("jobs: %s: %w", id, ErrNotFound)
	}
	return j.clone(), nil
}

// clone copies a record for a reply: the slices the queue appends to later
// must not be shared with a caller on another goroutine.
func (j *Info) clone() Info {
	c := *j
	c.Errors = slices.Clone(j.Errors)
	c.Args = slices.Clone(j.Args) // a worker may keep or change it: never the queue's own bytes
	return c
}

func (q *queue) dead(_ *reactor.Ctx, limit int) ([]Info, error) {
	var out []Info
	for _, j := range q.deadIDs(idsReq{}) {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, j.clone())
	}
	return out, nil
}

func (q *queue) stats(c *reactor.Ctx, _ struct{}) (Stats, error) {
	now := c.Now()
	s := Stats{Queue: q.Name, Completed: q.Done, Failed: q.Failed, Depth: q.Live, MaxDepth: q.cfg.MaxDepth,
		Attempts: q.Leased, Cancelled: q.Dropped, Throughput: q.completed.rate(now), Drain: q.drained.rate(now),
		RetryAfter: q.retryAfter(now), Schedules: len(q.Schedules)}
	s.RunP50, s.RunP99 = q.latency.percentile(0.50), q.latency.percentile(0.99)
	var oldest time.Time
	for _, j := range q.Jobs {
		switch j.State {
		case Pending:
			s.Pending++
			if !j.RunAt.After(now) {
				s.Due++
				if oldest.IsZero() || j.RunAt.Before(oldest) {
					oldest = j.RunAt
				}
			}
		case Running:
			s.Running++
		case Dead:
			s.Dead++
		}
	}
	if !oldest.IsZero() {
		s.OldestDue = now.Sub(oldest)
	}
	return s, nil
}

// peek tells an idle worker whether a job is due (or a lease expired) and
// when the next one will be, without journaling anything.
func (q *queue) peek(_ *reactor.Ctx, r peekReq) (leaseResp, error) {
	var next int64
	consider := func(at int64) {
		if next == 0 || at < next {
			next = at
		}
	}
	for kind, h := range q.ready {
		if h.Len() > 0 && !slices.Contains(r.Skip, kind) {
			consider((*h)[0].RunAt.UnixNano())
		}
	}
	for _, s := range q.Schedules {
		if !s.Next.IsZero() {
			consider(s.Next.UnixNano())
		}
	}
	if len(q.sched) > 0 { // a stale (cancelled) head only makes a worker look early

		consider(q.sched[0].RunAt.UnixNano())
	}
	for _, j := range q.run {
		consider(j.LeaseUntil.UnixNano() + 1)
	}
	return leaseResp{Next: next}, nil
}

// readyHeap orders due jobs: higher priority, earlier run-at, earlier enqueue.
type readyHeap []*Info

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(a, b int) bool { return readyLess(h[a], h[b]) }

func readyLess(x, y *Info) bool {
	if x.Priority != y.Priority {
		return x.Priority > y.Priority
	}
	if !x.RunAt.Equal(y.RunAt) {
		return x.RunAt.Before(y.RunAt)
	}
	return x.Seq < y.Seq
}
func (h readyHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(*Info)) }
func (h *readyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// runAtHeap orders pending jobs by run-at, then enqueue order.
type runAtHeap []*Info

func (h runAtHeap) Len() int { return len(h) }
func (h runAtHeap) Less(a, b int) bool {
	x, y := h[a], h[b]
	if !x.RunAt.Equal(y.RunAt) {
		return x.RunAt.Before(y.RunAt)
	}
	return x.Seq < y.Seq
}
func (h runAtHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *runAtHeap) Push(x any)   { *h = append(*h, x.(*Info)) }
func (h *runAtHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
