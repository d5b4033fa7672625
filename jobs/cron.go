package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/reactorgo/reactor"
)

// Schedule is a periodic job: every tick of Spec enqueues a job of Kind
// with Args. Schedules are part of the queue's journaled state, so they
// and the time of their next tick survive restarts.
type Schedule struct {
	Name string `json:"name"`
	// Spec is a cron expression: five fields (minute hour day-of-month
	// month day-of-week), an optional leading seconds field, or a
	// descriptor (@hourly, @daily, @every 90s). Times are UTC unless the
	// spec starts with CRON_TZ=Zone (e.g. "CRON_TZ=Europe/Paris 0 6 * * *").
	Spec        string          `json:"spec"`
	Kind        string          `json:"kind"`
	Args        json.RawMessage `json:"args"`
	Priority    int             `json:"priority,omitempty"`
	MaxAttempts int             `json:"maxAttempts,omitempty"`
	BackoffBase time.Duration   `json:"backoffBase,omitempty"`
	BackoffMax  time.Duration   `json:"backoffMax,omitempty"`
	// Next is the next tick (zero: the spec has no further tick).
	Next time.Time `json:"next,omitzero"`
	// Last is the last tick that enqueued a job, LastJob that job's id.
	Last    time.Time `json:"last,omitzero"`
	LastJob string    `json:"lastJob,omitempty"`
	// Missed counts ticks that enqueued nothing: ticks that passed while the
	// queue was down or late (only the latest of a run of missed ticks is
	// enqueued) and ticks that found the queue full (MaxDepth).
	Missed uint64 `json:"missed,omitempty"`
}

// cronSchedule is what the parser returns.
type cronSchedule interface{ Next(time.Time) time.Time }

// cronParser accepts standard five-field specs, an optional seconds field
// in front, and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec checks a cron spec (see Schedule.Spec) and returns the first
// tick after t (UTC unless the spec names a zone).
func ParseSpec(spec string, t time.Time) (time.Time, error) {
	s, err := cronParser.Parse(spec)
	if err != nil {
		return time.Time{}, fmt.Errorf("jobs: cron spec %q: %w", spec, err)
	}
	return s.Next(t.UTC()), nil
}

type scheduleReq struct {
	Schedule Schedule `json:"schedule"`
}

var (
	mSchedule   = reactor.Method("jobs.schedule", (*queue).schedule)
	mUnschedule = reactor.Method("jobs.unschedule", (*queue).unschedule)
	mSchedules  = reactor.Method("jobs.schedules", (*queue).schedules, reactor.ReadOnly())
)

// Schedule makes the kind run periodically in its queue: at every tick of
// spec (see Schedule.Spec) the queue enqueues a job with args and opts
// (Queue, Priority, MaxAttempts, Backoff apply; RunAt, Delay and Unique
// do not: the job runs at its tick and its unique key is the schedule's
// name and tick).
//
// The schedule is durable, keyed by name: call Schedule at every start —
// an unchanged schedule keeps its next tick, a changed one is replaced
// (and its next tick recomputed if the spec changed). The tick time is
// part of the job's id and unique key, and the queue advances the
// schedule in the same journaled turn that enqueues the job, so a crash
// can neither lose a tick's job nor enqueue it twice. Ticks missed while
// the process was down are coalesced: after a restart the latest missed
// tick runs once, the earlier ones are counted in Missed.
func (k *Kind[A]) Schedule(ctx context.Context, qs *Queues, name, spec string, args A, opts ...Option) error {
	if name == "" {
		return fmt.Errorf("jobs: schedule of %s: empty name", k.name)
	}
	if _, err := ParseSpec(spec, time.Now()); err != nil {
		return err
	}
	req, s, err := k.request(args, opts)
	if err != nil {
		return err
	}
	ref, err := qs.ref(s.queue)
	if err != nil {
		return err
	}
	_, err = mSchedule.Call(ctx, ref, scheduleReq{Schedule{Name: name, Spec: spec, Kind: k.name, Args: req.Args,
		Priority: req.Priority, MaxAttempts: req.MaxAttempts, BackoffBase: req.BackoffBase, BackoffMax: req.BackoffMax}})
	return err
}

// Unschedule removes a periodic schedule; jobs it enqueued already stay.
// Removing an unknown name fails with ErrNotFound.
func (qs *Queues) Unschedule(ctx context.Context, queue, name string) error {
	ref, err := qs.ref(queue)
	if err != nil {
		return err
	}
	_, err = mUnschedule.Call(ctx, ref, name)
	return err
}

// Schedules lists a queue's periodic schedules by name.
func (qs *Queues) Schedules(ctx context.Context, queue string) ([]Schedule, error) {
	ref, err := qs.ref(queue)
	if err != nil {
		return nil, err
	}
	return mSchedules.Call(ctx, ref, struct{}{})
}

func (q *queue) parsed(spec string) (cronSchedule, error) {
	if s, ok := q.crons[spec]; ok {
		return s, nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("jobs: cron spec %q: %w: %w", spec, err, errBadSpec)
	}
	if q.crons == nil {
		q.crons = map[string]cronSchedule{}
	}
	q.crons[spec] = s
	return s, nil
}

var errBadSpec = reactor.NewError("jobs.bad_spec", reactor.CodeInvalidArgument, "jobs: invalid cron spec")

func (q *queue) schedule(c *reactor.Ctx, r scheduleReq) (time.Time, error) {
	n := r.Schedule
	cs, err := q.parsed(n.Spec)
	if err != nil {
		return time.Time{}, err
	}
	old := q.Schedules[n.Name]
	if old != nil {
		n.Next, n.Last, n.LastJob, n.Missed = old.Next, old.Last, old.LastJob, old.Missed
		if old.Spec != n.Spec {
			n.Next = cs.Next(c.Now().UTC())
		}
	} else {
		n.Next = cs.Next(c.Now().UTC())
	}
	q.Schedules[n.Name] = &n
	if !c.Replaying() {
		q.owner.poke(q.Name)
	}
	return n.Next, nil
}

func (q *queue) unschedule(_ *reactor.Ctx, name string) (struct{}, error) {
	if _, ok := q.Schedules[name]; !ok {
		return struct{}{}, fmt.Errorf("jobs: schedule %q: %w", name, ErrNotFound)
	}
	delete(q.Schedules, name)
	return struct{}{}, nil
}

func (q *queue) schedules(*reactor.Ctx, struct{}) ([]Schedule, error) {
	out := make([]Schedule, 0, len(q.Schedules))
	for _, s := range q.Schedules {
		c := *s
		c.Args = slices.Clone(s.Args)
		out = append(out, c)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// maxCatchUp bounds the ticks walked to find the latest missed one (an
// @every 1s schedule down for a day has 86,400).
const maxCatchUp = 1_000_000

// fire enqueues the job of every schedule whose tick is due, in name order
// (replay must enqueue in the same order). It runs inside a journaled turn
// (lease, tick), which is what makes "advance the schedule" and "enqueue
// the tick's job" one atomic step.
func (q *queue) fire(c *reactor.Ctx, now time.Time) {
	var due []*Schedule
	for _, s := range q.Schedules {
		if !s.Next.IsZero() && !s.Next.After(now) {
			due = append(due, s)
		}
	}
	sort.Slice(due, func(a, b int) bool { return due[a].Name < due[b].Name })
	for _, s := range due {
		cs, err := q.parsed(s.Spec)
		if err != nil { // cannot happen: the spec was parsed when it was stored
			s.Next = time.Time{}
			continue
		}
		// The latest tick not after now; the earlier ones are missed.
		tick, next := s.Next, cs.Next(s.Next.UTC())
		for i := 0; !next.IsZero() && !next.After(now); i++ {
			if i == maxCatchUp {
				tick, next = next, cs.Next(now.UTC())
				break
			}
			s.Missed++
			tick, next = next, cs.Next(next.UTC())
		}
		s.Next = next
		stamp := strconv.FormatInt(tick.UnixNano(), 10)
		id, err := q.enqueue(c, enqueueReq{ID: "cron:" + s.Name + ":" + stamp, Kind: s.Kind, Args: s.Args,
			Priority: s.Priority, RunAt: tick.UnixNano(), MaxAttempts: s.MaxAttempts,
			BackoffBase: s.BackoffBase, BackoffMax: s.BackoffMax, Unique: "cron:" + s.Name + ":" + stamp})
		if err != nil { // full: this tick is skipped
			s.Missed++
			continue
		}
		s.Last, s.LastJob = tick, id
	}
}
