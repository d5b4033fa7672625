package jobshttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/reactorgo/reactor/jobs"
)

// The operator's side of the protocol: the dead-letter set (list, inspect,
// redrive, purge) and the queues' figures. The same handler serves it,
// because an operator's tool (reactor jobs …) and a worker reach the same
// process; Options.NoAdmin leaves it out of a handler mounted where only
// workers should reach.

// DeadRequest is the body of POST /dead.
type DeadRequest struct {
	Queue string `json:"queue"`
	// Limit is how many dead jobs to return at most, oldest enqueue first
	// (default 100; capped by Options.MaxList).
	Limit int `json:"limit,omitempty"`
}

// DeadResponse is the answer to POST /dead: the first Limit dead jobs and
// how many the queue holds in all.
type DeadResponse struct {
	Jobs  []JobInfo `json:"jobs"`
	Total int       `json:"total"`
}

// JobRequest is the body of POST /job.
type JobRequest struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
}

// JobResponse is the answer to POST /job.
type JobResponse struct {
	Job JobInfo `json:"job"`
}

// JobInfo is a job's record on the wire (jobs.Info, durations in
// milliseconds).
type JobInfo struct {
	ID          string              `json:"id"`
	Kind        string              `json:"kind"`
	Queue       string              `json:"queue"`
	Args        json.RawMessage     `json:"args"`
	State       jobs.State          `json:"state"`
	Priority    int                 `json:"priority,omitempty"`
	RunAt       time.Time           `json:"runAt"`
	Attempt     int                 `json:"attempt"`
	MaxAttempts int                 `json:"maxAttempts"`
	Unique      string              `json:"unique,omitempty"`
	EnqueuedAt  time.Time           `json:"enqueuedAt"`
	FinishedAt  time.Time           `json:"finishedAt,omitzero"`
	Errors      []jobs.AttemptError `json:"errors,omitempty"`
	// LastError is the error of the last failed attempt ("" if none): what
	// an operator looks at first.
	LastError  string    `json:"lastError,omitempty"`
	Token      uint64    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	Worker     string    `json:"worker,omitempty"`
}

// FromInfo converts a job's record to its wire form.
func FromInfo(i jobs.Info) JobInfo {
	j := JobInfo{ID: i.ID, Kind: i.Kind, Queue: i.Queue, Args: i.Args, State: i.State, Priority: i.Priority, RunAt: i.RunAt,
		Attempt: i.Attempt, MaxAttempts: i.MaxAttempts, Unique: i.Unique, EnqueuedAt: i.EnqueuedAt, FinishedAt: i.FinishedAt,
		Errors: i.Errors, Token: i.Token, LeaseUntil: i.LeaseUntil, Worker: i.Worker}
	if n := len(i.Errors); n > 0 {
		j.LastError = i.Errors[n-1].Error
	}
	return j
}

// IDsRequest is the body of POST /redrive and POST /purge: the dead jobs
// to act on, or All. An empty list without All is refused rather than
// read as "all": a client that lost its list must not purge everything.
type IDsRequest struct {
	Queue string   `json:"queue"`
	IDs   []string `json:"ids,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// IDsResponse is the answer to POST /redrive and POST /purge: how many
// dead jobs were acted on, and the named ids that were not dead letters
// (unknown, or not dead: nothing was done to them).
type IDsResponse struct {
	Count   int      `json:"count"`
	Skipped []string `json:"skipped,omitempty"`
}

// StatsResponse is the answer to POST /stats (body {} or empty).
type StatsResponse struct {
	Queues []QueueStats `json:"queues"`
}

// QueueStats is jobs.Stats on the wire: durations in milliseconds.
type QueueStats struct {
	Queue        string  `json:"queue"`
	Depth        int     `json:"depth"`
	MaxDepth     int     `json:"maxDepth"`
	Pending      int     `json:"pending"`
	Due          int     `json:"due"`
	Running      int     `json:"running"`
	Dead         int     `json:"dead"`
	Completed    uint64  `json:"completed"`
	Failed       uint64  `json:"failed"`
	Attempts     uint64  `json:"attempts"`
	Cancelled    uint64  `json:"cancelled"`
	OldestDueMs  float64 `json:"oldestDueMs"`
	Throughput   float64 `json:"throughput"`
	Drain        float64 `json:"drain"`
	RunP50Ms     float64 `json:"runP50Ms"`
	RunP99Ms     float64 `json:"runP99Ms"`
	RetryAfterMs float64 `json:"retryAfterMs"`
	Schedules    int     `json:"schedules"`
}

// FromStats converts a queue's snapshot to its wire form.
func FromStats(s jobs.Stats) QueueStats {
	return QueueStats{Queue: s.Queue, Depth: s.Depth, MaxDepth: s.MaxDepth, Pending: s.Pending, Due: s.Due, Running: s.Running,
		Dead: s.Dead, Completed: s.Completed, Failed: s.Failed, Attempts: s.Attempts, Cancelled: s.Cancelled,
		OldestDueMs: ms(s.OldestDue), Throughput: s.Throughput, Drain: s.Drain, RunP50Ms: ms(s.RunP50), RunP99Ms: ms(s.RunP99),
		RetryAfterMs: ms(s.RetryAfter), Schedules: s.Schedules}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// statsRequest is the (empty) body of POST /stats; an object is accepted
// so that filters can be added later without breaking clients.
type statsRequest struct{}

func (*statsRequest) validate() error { return nil }

// maxIDs bounds one redrive or purge: a body of a million ids would hold
// the queue's turn for long (the queue does one lookup per id).
const maxIDs = 10_000

func (r *DeadRequest) validate() error {
	if r.Limit < 0 {
		return errors.New("negative limit")
	}
	return nil
}

func (r *JobRequest) validate() error {
	if r.ID == "" {
		return errors.New("id is required")
	}
	return nil
}

func (r *IDsRequest) validate() error {
	switch {
	case r.All && len(r.IDs) > 0:
		return errors.New("ids and all are exclusive")
	case !r.All && len(r.IDs) == 0:
		return errors.New("ids are required (or all: true)")
	case len(r.IDs) > maxIDs:
		return fmt.Errorf("more than %d ids", maxIDs)
	}
	for _, id := range r.IDs {
		if id == "" {
			return errors.New("empty id")
		}
	}
	return nil
}

func (h *handler) registerAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /stats", h.stats)
	if h.opts.NoAdmin {
		return
	}
	mux.HandleFunc("POST /dead", h.dead)
	mux.HandleFunc("POST /job", h.job)
	mux.HandleFunc("POST /redrive", h.redrive)
	mux.HandleFunc("POST /purge", h.purge)
	status := StatusPage(h.qs, StatusOptions{Logger: h.opts.Logger})
	mux.Handle("GET /status", status)
	mux.Handle("POST /status", status)
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 { // curl -X POST without a body is fine
		if _, err := Decode[statsRequest](r.Body, h.opts.MaxBody); err != nil {
			h.error(w, err)
			return
		}
	}
	st, err := h.qs.Stats(r.Context())
	if err != nil {
		h.error(w, err)
		return
	}
	resp := StatsResponse{Queues: make([]QueueStats, 0, len(st))}
	for _, s := range st {
		resp.Queues = append(resp.Queues, FromStats(s))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) dead(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[DeadRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	limit := req.Limit
	if limit == 0 {
		limit = 100
	}
	limit = min(limit, h.opts.MaxList)
	resp, err := deadList(r.Context(), h.qs, req.Queue, limit)
	if err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// deadList is the first limit dead jobs of queue and their total.
func deadList(ctx context.Context, qs *jobs.Queues, queue string, limit int) (DeadResponse, error) {
	dead, err := qs.Dead(ctx, queue, limit)
	if err != nil {
		return DeadResponse{}, err
	}
	st, err := queueStats(ctx, qs, queue)
	if err != nil {
		return DeadResponse{}, err
	}
	resp := DeadResponse{Jobs: make([]JobInfo, 0, len(dead)), Total: max(st.Dead, len(dead))}
	for _, i := range dead {
		resp.Jobs = append(resp.Jobs, FromInfo(i))
	}
	return resp, nil
}

func queueStats(ctx context.Context, qs *jobs.Queues, queue string) (jobs.Stats, error) {
	if queue == "" {
		queue = jobs.DefaultQueue
	}
	st, err := qs.Stats(ctx)
	if err != nil {
		return jobs.Stats{}, err
	}
	for _, s := range st {
		if s.Queue == queue {
			return s, nil
		}
	}
	return jobs.Stats{}, nil // Dead above already refused an unknown queue
}

func (h *handler) job(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[JobRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	info, err := h.qs.Get(r.Context(), req.Queue, req.ID)
	if err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusOK, JobResponse{Job: FromInfo(info)})
}

func (h *handler) redrive(w http.ResponseWriter, r *http.Request) {
	h.deadAction(w, r, (*jobs.Queues).Redrive)
}

func (h *handler) purge(w http.ResponseWriter, r *http.Request) {
	h.deadAction(w, r, (*jobs.Queues).Purge)
}

type deadFunc func(qs *jobs.Queues, ctx context.Context, queue string, ids ...string) (int, error)

func (h *handler) deadAction(w http.ResponseWriter, r *http.Request, act deadFunc) {
	req, err := Decode[IDsRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	resp, err := applyDead(r.Context(), h.qs, req, act)
	if err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// applyDead runs act on the dead jobs req names. The Go API reads an empty
// id list as "all", so the named ids are first narrowed to the dead ones
// (resolving aliases to the jobs' own ids), and act is not called at all
// when none is left: a purge of three ids that were all redriven meanwhile
// must not become a purge of everything. A job that stops being dead
// between the check and act is skipped by the queue itself.
func applyDead(ctx context.Context, qs *jobs.Queues, req IDsRequest, act deadFunc) (IDsResponse, error) {
	if req.All {
		n, err := act(qs, ctx, req.Queue)
		return IDsResponse{Count: n}, err
	}
	var resp IDsResponse
	ids := make([]string, 0, len(req.IDs))
	for _, id := range req.IDs {
		info, err := qs.Get(ctx, req.Queue, id)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			resp.Skipped = append(resp.Skipped, id)
		case err != nil:
			return IDsResponse{}, err
		case info.State != jobs.Dead:
			resp.Skipped = append(resp.Skipped, id)
		default:
			ids = append(ids, info.ID)
		}
	}
	if len(ids) == 0 {
		return resp, nil
	}
	n, err := act(qs, ctx, req.Queue, ids...)
	if err != nil {
		return IDsResponse{}, err
	}
	resp.Count = n
	return resp, nil
}
