// Package jobshttp serves the jobs worker protocol over HTTP, so that a
// worker in any language can take jobs from a reactor process: lease the
// next jobs (long poll), heartbeat, complete, fail — and enqueue. Every
// request and answer is JSON; a leased job carries its lease's fencing
// token, and a heartbeat, completion or failure with a token that is no
// longer current (the lease expired, the job was leased again, cancelled
// or finished) is refused with 409 and changes nothing.
//
//	mux.Handle("/jobs/", http.StripPrefix("/jobs", jobshttp.Handler(qs, jobshttp.Options{})))
//
// The same handler serves the operator's side — /stats, and the dead-letter
// set listed, inspected, redriven and purged (/dead, /job, /redrive,
// /purge) — which the reactor jobs command uses, and StatusPage, an HTML
// page with each queue's figures and dead letters (GET /status). Leave
// those out of a worker-facing handler with Options.NoAdmin.
//
// The handler does not authenticate: mount it behind your own middleware,
// or on a listener only workers reach. Client is a Go client of the same
// protocol; docs/JOBS.md describes the wire format for other languages.
package jobshttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
)

// Options configures Handler. The zero value is valid.
type Options struct {
	// MaxWait caps a lease request's long poll (default 30s).
	MaxWait time.Duration
	// MaxLease caps how many jobs one lease request takes (default 100).
	MaxLease int
	// MaxBody caps a request body in bytes (default 1 MiB).
	MaxBody int64
	// MaxList caps how many dead jobs one POST /dead returns (default 1000).
	MaxList int
	// NoAdmin leaves out the operator's endpoints (/dead, /job, /redrive,
	// /purge and the /status page), for a handler mounted where only
	// workers reach. /stats stays: it changes nothing.
	NoAdmin bool
	// Logger receives unexpected errors (default slog.Default()).
	Logger *slog.Logger
}

// LeaseRequest is the body of POST /lease.
type LeaseRequest struct {
	Queue  string `json:"queue"`
	Worker string `json:"worker"`
	// Max is how many jobs to take at most (default 1).
	Max int `json:"max,omitempty"`
	// LeaseMs is the lease length in milliseconds (default: the queue's
	// LeaseTime).
	LeaseMs int64 `json:"leaseMs,omitempty"`
	// WaitMs is how long to wait for a job when none is due (default 0:
	// answer at once; capped by Options.MaxWait).
	WaitMs int64 `json:"waitMs,omitempty"`
}

// LeaseResponse is the answer to POST /lease: the leased jobs, possibly
// none (the wait ended first).
type LeaseResponse struct {
	Jobs []Job `json:"jobs"`
}

// Job is a leased job on the wire.
type Job struct {
	ID          string              `json:"id"`
	Kind        string              `json:"kind"`
	Queue       string              `json:"queue"`
	Args        json.RawMessage     `json:"args"`
	Attempt     int                 `json:"attempt"`
	MaxAttempts int                 `json:"maxAttempts"`
	Priority    int                 `json:"priority,omitempty"`
	EnqueuedAt  time.Time           `json:"enqueuedAt"`
	Errors      []jobs.AttemptError `json:"errors,omitempty"`
	Token       uint64              `json:"token"`
	LeaseUntil  time.Time           `json:"leaseUntil"`
}

// TokenRequest is the body of POST /heartbeat and POST /complete.
type TokenRequest struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	Token uint64 `json:"token"`
	// LeaseMs (heartbeat only) is the new lease length from now (default:
	// the queue's LeaseTime).
	LeaseMs int64 `json:"leaseMs,omitempty"`
}

// HeartbeatResponse is the answer to POST /heartbeat.
type HeartbeatResponse struct {
	LeaseUntil time.Time `json:"leaseUntil"`
}

// FailRequest is the body of POST /fail.
type FailRequest struct {
	Queue string `json:"queue"`
	ID    string `json:"id"`
	Token uint64 `json:"token"`
	Error string `json:"error"`
	// Permanent dead-letters the job without further attempts.
	Permanent bool `json:"permanent,omitempty"`
}

// FailResponse is the answer to POST /fail: when the next attempt is due,
// or dead when there is none.
type FailResponse struct {
	RetryAt time.Time `json:"retryAt,omitzero"`
	Dead    bool      `json:"dead,omitempty"`
}

// EnqueueRequest is the body of POST /enqueue.
type EnqueueRequest struct {
	Queue       string          `json:"queue,omitempty"`
	Kind        string          `json:"kind"`
	Args        json.RawMessage `json:"args"`
	Priority    *int            `json:"priority,omitempty"`
	RunAt       time.Time       `json:"runAt,omitzero"`
	DelayMs     int64           `json:"delayMs,omitempty"`
	Unique      string          `json:"unique,omitempty"`
	MaxAttempts int             `json:"maxAttempts,omitempty"`
}

// EnqueueResponse is the answer to POST /enqueue (201).
type EnqueueResponse struct {
	ID string `json:"id"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// errBadRequest marks a request the handler could not decode or that
// names impossible values.
var errBadRequest = errors.New("bad request")

type handler struct {
	qs   *jobs.Queues
	opts Options
}

// Handler serves the protocol for qs:
//
//	POST /lease      LeaseRequest   → 200 LeaseResponse
//	POST /heartbeat  TokenRequest   → 200 HeartbeatResponse
//	POST /complete   TokenRequest   → 200 {}
//	POST /fail       FailRequest    → 200 FailResponse
//	POST /enqueue    EnqueueRequest → 201 EnqueueResponse
//	POST /stats      {}             → 200 StatsResponse
//
// and, unless Options.NoAdmin, the operator's endpoints:
//
//	POST /dead       DeadRequest    → 200 DeadResponse
//	POST /job        JobRequest     → 200 JobResponse
//	POST /redrive    IDsRequest     → 200 IDsResponse
//	POST /purge      IDsRequest     → 200 IDsResponse
//	GET  /status     the HTML status page (StatusPage), POST from its buttons
//
// Errors are ErrorBody with 400 bad_request, 404 not_found (job) or
// no_queue, 409 stale_lease, 503 busy (with Retry-After from the queue's
// drain rate) or closed, 500 internal.
func Handler(qs *jobs.Queues, opts Options) http.Handler {
	if opts.MaxWait <= 0 {
		opts.MaxWait = 30 * time.Second
	}
	if opts.MaxLease <= 0 {
		opts.MaxLease = 100
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.MaxList <= 0 {
		opts.MaxList = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{qs: qs, opts: opts}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /lease", h.lease)
	mux.HandleFunc("POST /heartbeat", h.heartbeat)
	mux.HandleFunc("POST /complete", h.complete)
	mux.HandleFunc("POST /fail", h.fail)
	mux.HandleFunc("POST /enqueue", h.enqueue)
	h.registerAdmin(mux)
	return mux
}

// Decode reads one JSON value of type T from r (at most max bytes) and
// checks it (see the request types' validate methods). It is what the
// handler runs on every body.
func Decode[T any, P interface {
	*T
	validate() error
}](r io.Reader, max int64) (T, error) {
	var v T
	dec := json.NewDecoder(io.LimitReader(r, max+1))
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("jobshttp: decode body: %w: %w", err, errBadRequest)
	}
	if dec.InputOffset() > max {
		return v, fmt.Errorf("jobshttp: body over %d bytes: %w", max, errBadRequest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, fmt.Errorf("jobshttp: decode body: trailing data: %w", errBadRequest)
	}
	if err := P(&v).validate(); err != nil {
		return v, fmt.Errorf("jobshttp: %w: %w", err, errBadRequest)
	}
	return v, nil
}

func (r *LeaseRequest) validate() error {
	switch {
	case r.Max < 0 || r.LeaseMs < 0 || r.WaitMs < 0:
		return errors.New("negative max, leaseMs or waitMs")
	case r.LeaseMs > int64(24*time.Hour/time.Millisecond):
		return errors.New("leaseMs over a day")
	}
	return nil
}

func (r *TokenRequest) validate() error {
	switch {
	case r.ID == "" || r.Token == 0:
		return errors.New("id and token are required")
	case r.LeaseMs < 0 || r.LeaseMs > int64(24*time.Hour/time.Millisecond):
		return errors.New("leaseMs out of range")
	}
	return nil
}

func (r *FailRequest) validate() error {
	if r.ID == "" || r.Token == 0 {
		return errors.New("id and token are required")
	}
	return nil
}

func (r *EnqueueRequest) validate() error {
	switch {
	case r.Kind == "":
		return errors.New("kind is required")
	case len(r.Args) == 0:
		return errors.New("args are required (null is fine)")
	case r.DelayMs < 0 || r.MaxAttempts < 0:
		return errors.New("negative delayMs or maxAttempts")
	}
	return nil
}

func (h *handler) lease(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[LeaseRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	n := min(max(req.Max, 1), h.opts.MaxLease)
	wait := min(time.Duration(req.WaitMs)*time.Millisecond, h.opts.MaxWait)
	worker := req.Worker
	if worker == "" {
		worker = "http:" + r.RemoteAddr
	}
	leases, err := h.qs.LeaseWait(r.Context(), req.Queue, worker, n, time.Duration(req.LeaseMs)*time.Millisecond, wait)
	if err != nil {
		h.error(w, err)
		return
	}
	resp := LeaseResponse{Jobs: make([]Job, 0, len(leases))}
	for _, l := range leases {
		resp.Jobs = append(resp.Jobs, Job{ID: l.ID, Kind: l.Kind, Queue: l.Queue, Args: l.Args, Attempt: l.Attempt,
			MaxAttempts: l.MaxAttempts, Priority: l.Priority, EnqueuedAt: l.EnqueuedAt, Errors: l.Errors,
			Token: l.Token, LeaseUntil: l.LeaseUntil})
	}
	writeJSON(w, http.StatusOK, resp)
}

func lease(queue, id string, token uint64) jobs.Lease {
	return jobs.Lease{Info: jobs.Info{ID: id, Queue: queue, Token: token}}
}

func (h *handler) heartbeat(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[TokenRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	until, err := h.qs.Heartbeat(r.Context(), lease(req.Queue, req.ID, req.Token), time.Duration(req.LeaseMs)*time.Millisecond)
	if err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusOK, HeartbeatResponse{LeaseUntil: until})
}

func (h *handler) complete(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[TokenRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	if err := h.qs.Complete(r.Context(), lease(req.Queue, req.ID, req.Token)); err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[FailRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	cause := errors.New(req.Error)
	if req.Error == "" {
		cause = errors.New("failed (no reason given)")
	}
	if req.Permanent {
		cause = jobs.Permanent(cause)
	}
	next, err := h.qs.Fail(r.Context(), lease(req.Queue, req.ID, req.Token), cause)
	if err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusOK, FailResponse{RetryAt: next, Dead: next.IsZero()})
}

func (h *handler) enqueue(w http.ResponseWriter, r *http.Request) {
	req, err := Decode[EnqueueRequest](r.Body, h.opts.MaxBody)
	if err != nil {
		h.error(w, err)
		return
	}
	var opts []jobs.Option
	if req.Priority != nil {
		opts = append(opts, jobs.Priority(*req.Priority))
	}
	if !req.RunAt.IsZero() {
		opts = append(opts, jobs.RunAt(req.RunAt))
	}
	if req.DelayMs > 0 {
		opts = append(opts, jobs.Delay(time.Duration(req.DelayMs)*time.Millisecond))
	}
	if req.Unique != "" {
		opts = append(opts, jobs.Unique(req.Unique))
	}
	if req.MaxAttempts > 0 {
		opts = append(opts, jobs.MaxAttempts(req.MaxAttempts))
	}
	id, err := h.qs.EnqueueJSON(r.Context(), req.Queue, req.Kind, req.Args, opts...)
	if err != nil {
		h.error(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, EnqueueResponse{ID: id})
}

// error answers err with its status and code. Messages of known errors
// are the sentinels' own (they name no internals); unexpected errors are
// logged and answered with a generic 500.
func (h *handler) error(w http.ResponseWriter, err error) {
	status, code, msg := http.StatusInternalServerError, "internal", "internal error"
	switch {
	case errors.Is(err, errBadRequest):
		status, code, msg = http.StatusBadRequest, "bad_request", err.Error()
	case errors.Is(err, jobs.ErrStaleLease):
		status, code, msg = http.StatusConflict, "stale_lease", err.Error()
	case errors.Is(err, jobs.ErrNotFound):
		status, code, msg = http.StatusNotFound, "not_found", err.Error()
	case errors.Is(err, reactor.ErrNoService):
		status, code, msg = http.StatusNotFound, "no_queue", err.Error()
	case errors.Is(err, jobs.ErrUnknownKind):
		status, code, msg = http.StatusBadRequest, "bad_request", err.Error()
	case errors.Is(err, reactor.ErrBusy):
		status, code, msg = http.StatusServiceUnavailable, "busy", err.Error()
		w.Header().Set("Retry-After", strconv.Itoa(jobs.RetryAfterSeconds(err)))
	case errors.Is(err, jobs.ErrClosed), errors.Is(err, reactor.ErrClosed):
		status, code, msg = http.StatusServiceUnavailable, "closed", "shutting down, retry later"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, code, msg = http.StatusServiceUnavailable, "timeout", "request ended before an answer"
		w.Header().Set("Retry-After", "1")
	default:
		h.opts.Logger.Error("jobshttp: unexpected error", "err", err)
	}
	writeJSON(w, status, ErrorBody{Error: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal","message":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
