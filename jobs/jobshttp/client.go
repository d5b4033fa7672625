package jobshttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
)

// Client is a Go client of the protocol, for workers in another process.
type Client struct {
	// URL is where Handler is mounted ("http://host:port/jobs").
	URL string
	// HTTP is the client to use (default http.DefaultClient). Its timeout
	// must exceed the long polls' wait.
	HTTP *http.Client
}

// StatusError is an error answer. errors.Is matches jobs.ErrStaleLease for
// 409 stale_lease, jobs.ErrNotFound for 404 not_found, reactor.ErrNoService
// for 404 no_queue, reactor.ErrBusy for 503 busy; RetryAfter is the
// Retry-After header. An answer that is not this protocol's (no JSON error
// body: a wrong URL, a proxy's error page) has Code "not_jobshttp" and the
// start of the body as Message.
type StatusError struct {
	Status  int
	Code    string
	Message string
	Wait    time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("jobshttp: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is maps the wire codes back to the sentinels.
func (e *StatusError) Is(target error) bool {
	switch e.Code {
	case "stale_lease":
		return target == jobs.ErrStaleLease
	case "not_found":
		return target == jobs.ErrNotFound
	case "busy":
		return target == reactor.ErrBusy
	case "no_queue":
		return target == reactor.ErrNoService
	}
	return false
}

// RetryAfter is the Retry-After the server sent (0: none).
func (e *StatusError) RetryAfter() time.Duration { return e.Wait }

func (c *Client) do(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("jobshttp: encode %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("jobshttp: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("jobshttp: %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("jobshttp: read %s answer: %w", path, err)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			// Not this protocol's answer (a wrong URL, a proxy's page): say
			// what came back rather than an empty message.
			eb.Error, eb.Message = "not_jobshttp", strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		se := &StatusError{Status: resp.StatusCode, Code: eb.Error, Message: eb.Message}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			se.Wait = time.Duration(s) * time.Second
		}
		return se
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("jobshttp: decode %s answer: %w", path, err)
	}
	return nil
}

// Lease takes up to max jobs of queue, waiting up to wait for one.
func (c *Client) Lease(ctx context.Context, queue, worker string, max int, lease, wait time.Duration) ([]Job, error) {
	var resp LeaseResponse
	err := c.do(ctx, "/lease", LeaseRequest{Queue: queue, Worker: worker, Max: max, LeaseMs: lease.Milliseconds(), WaitMs: wait.Milliseconds()}, &resp)
	return resp.Jobs, err
}

// Heartbeat extends j's lease by lease (0: the queue's LeaseTime).
func (c *Client) Heartbeat(ctx context.Context, j Job, lease time.Duration) (time.Time, error) {
	var resp HeartbeatResponse
	err := c.do(ctx, "/heartbeat", TokenRequest{Queue: j.Queue, ID: j.ID, Token: j.Token, LeaseMs: lease.Milliseconds()}, &resp)
	return resp.LeaseUntil, err
}

// Complete reports j done.
func (c *Client) Complete(ctx context.Context, j Job) error {
	return c.do(ctx, "/complete", TokenRequest{Queue: j.Queue, ID: j.ID, Token: j.Token}, &struct{}{})
}

// Fail reports j's attempt failed; permanent dead-letters it.
func (c *Client) Fail(ctx context.Context, j Job, cause string, permanent bool) (FailResponse, error) {
	var resp FailResponse
	err := c.do(ctx, "/fail", FailRequest{Queue: j.Queue, ID: j.ID, Token: j.Token, Error: cause, Permanent: permanent}, &resp)
	return resp, err
}

// Enqueue enqueues a job; a full queue answers with a *StatusError that
// matches reactor.ErrBusy and carries the server's Retry-After.
func (c *Client) Enqueue(ctx context.Context, req EnqueueRequest) (string, error) {
	var resp EnqueueResponse
	err := c.do(ctx, "/enqueue", req, &resp)
	return resp.ID, err
}

// Stats returns every queue's figures.
func (c *Client) Stats(ctx context.Context) ([]QueueStats, error) {
	var resp StatsResponse
	err := c.do(ctx, "/stats", struct{}{}, &resp)
	return resp.Queues, err
}

// Dead lists up to limit dead jobs of queue (0: the server's default, 100)
// and how many it holds in all.
func (c *Client) Dead(ctx context.Context, queue string, limit int) (DeadResponse, error) {
	var resp DeadResponse
	err := c.do(ctx, "/dead", DeadRequest{Queue: queue, Limit: limit}, &resp)
	return resp, err
}

// Job returns one job's record (any state), with its attempts and errors.
func (c *Client) Job(ctx context.Context, queue, id string) (JobInfo, error) {
	var resp JobResponse
	err := c.do(ctx, "/job", JobRequest{Queue: queue, ID: id}, &resp)
	return resp.Job, err
}

// Redrive makes the named dead jobs runnable again with fresh attempts.
func (c *Client) Redrive(ctx context.Context, req IDsRequest) (IDsResponse, error) {
	var resp IDsResponse
	err := c.do(ctx, "/redrive", req, &resp)
	return resp, err
}

// Purge deletes the named dead jobs for good.
func (c *Client) Purge(ctx context.Context, req IDsRequest) (IDsResponse, error) {
	var resp IDsResponse
	err := c.do(ctx, "/purge", req, &resp)
	return resp, err
}
