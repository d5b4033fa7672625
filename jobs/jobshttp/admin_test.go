package jobshttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobshttp"
)

// killJobs makes n dead jobs in queue (each failed once, permanently, with
// "boom i") and returns their ids in enqueue order.
func killJobs(t *testing.T, qs *jobs.Queues, queue string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		id, err := qs.EnqueueJSON(ctx, queue, "resize", []byte(fmt.Sprintf(`{"img":%d}`, i)), jobs.MaxAttempts(3))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		ls, err := qs.Lease(ctx, queue, "w", 1, 0)
		if err != nil || len(ls) != 1 || ls[0].ID != id {
			t.Fatalf("lease %s: %+v %v", id, ls, err)
		}
		if _, err := qs.Fail(ctx, ls[0], jobs.Permanent(fmt.Errorf("boom %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestDeadLettersOverHTTP: list with a limit and a total, inspect one
// with its attempts and last error, redrive and purge by id; ids that are
// not dead are reported and nothing else is touched (an empty list is not
// "all").
func TestDeadLettersOverHTTP(t *testing.T) {
	clock := testutil.NewClock()
	qs, c := serve(t, clock.Now, remote)
	ctx := context.Background()
	ids := killJobs(t, qs, "remote", 5)
	live, _ := qs.EnqueueJSON(ctx, "remote", "resize", []byte(`{}`))

	d, err := c.Dead(ctx, "remote", 2)
	if err != nil || d.Total != 5 || len(d.Jobs) != 2 || d.Jobs[0].ID != ids[0] || d.Jobs[1].ID != ids[1] {
		t.Fatalf("dead -n 2: %+v %v", d, err)
	}
	if j := d.Jobs[1]; j.State != jobs.Dead || j.Attempt != 1 || j.MaxAttempts != 3 || j.LastError != "boom 1" ||
		len(j.Errors) != 1 || j.Errors[0].Attempt != 1 || string(j.Args) != `{"img":1}` || j.Kind != "resize" || j.FinishedAt.IsZero() {
		t.Fatalf("dead job on the wire: %+v", j)
	}
	if d, _ := c.Dead(ctx, "remote", 0); len(d.Jobs) != 5 {
		t.Fatalf("dead, default limit: %d", len(d.Jobs))
	}
	j, err := c.Job(ctx, "remote", ids[3])
	if err != nil || j.ID != ids[3] || j.LastError != "boom 3" || j.Attempt != 1 {
		t.Fatalf("job: %+v %v", j, err)
	}
	if j, err := c.Job(ctx, "remote", live); err != nil || j.State != jobs.Pending || j.LastError != "" {
		t.Fatalf("live job: %+v %v", j, err)
	}
	if _, err := c.Job(ctx, "remote", "nope"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := c.Dead(ctx, "nope", 0); !errors.Is(err, reactor.ErrNoService) {
		t.Fatalf("unknown queue: %v", err)
	}

	// Redrive two dead ones, one of them named twice, plus a live job and
	// an unknown id: two redriven, the others skipped and untouched.
	r, err := c.Redrive(ctx, jobshttp.IDsRequest{Queue: "remote", IDs: []string{ids[0], ids[2], ids[0], live, "nope"}})
	if err != nil || r.Count != 2 || fmt.Sprint(r.Skipped) != fmt.Sprint([]string{live, "nope"}) {
		t.Fatalf("redrive: %+v %v", r, err)
	}
	for _, id := range []string{ids[0], ids[2]} {
		if i, _ := qs.Get(ctx, "remote", id); i.State != jobs.Pending || i.Attempt != 0 {
			t.Fatalf("%s after redrive: %+v", id, i)
		}
	}
	st, _ := c.Stats(ctx)
	if len(st) != 1 || st[0].Queue != "remote" || st[0].Dead != 3 || st[0].Pending != 3 || st[0].Depth != 3 {
		t.Fatalf("stats after redrive: %+v", st)
	}
	// The redriven jobs run again from attempt 1.
	ls, _ := qs.Lease(ctx, "remote", "w", 10, 0)
	if len(ls) != 3 {
		t.Fatalf("leased %d after redrive", len(ls))
	}

	// Naming only ids that are not dead does nothing (not "purge all").
	if r, err := c.Purge(ctx, jobshttp.IDsRequest{Queue: "remote", IDs: []string{ids[0], "nope"}}); err != nil || r.Count != 0 || len(r.Skipped) != 2 {
		t.Fatalf("purge of no dead job: %+v %v", r, err)
	}
	if d, _ := c.Dead(ctx, "remote", 0); d.Total != 3 {
		t.Fatalf("dead after a purge of nothing: %d", d.Total)
	}
	if r, err := c.Purge(ctx, jobshttp.IDsRequest{Queue: "remote", IDs: []string{ids[1]}}); err != nil || r.Count != 1 || len(r.Skipped) != 0 {
		t.Fatalf("purge: %+v %v", r, err)
	}
	if _, err := c.Job(ctx, "remote", ids[1]); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("purged job: %v", err)
	}
	if r, err := c.Purge(ctx, jobshttp.IDsRequest{Queue: "remote", All: true}); err != nil || r.Count != 2 {
		t.Fatalf("purge all: %+v %v", r, err)
	}
	if d, _ := c.Dead(ctx, "remote", 0); d.Total != 0 || len(d.Jobs) != 0 {
		t.Fatalf("dead after purge all: %+v", d)
	}

	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/redrive", `{"queue":"remote"}`, 400, "bad_request"},
		{"/redrive", `{"queue":"remote","ids":[]}`, 400, "bad_request"},
		{"/purge", `{"queue":"remote","ids":["a"],"all":true}`, 400, "bad_request"},
		{"/purge", `{"queue":"remote","ids":[""]}`, 400, "bad_request"},
		{"/purge", `{"queue":"nope","all":true}`, 404, "no_queue"},
		{"/dead", `{"queue":"remote","limit":-1}`, 400, "bad_request"},
		{"/job", `{"queue":"remote"}`, 400, "bad_request"},
		{"/stats", `[1]`, 400, "bad_request"},
	} {
		resp, err := http.Post(c.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), `"error":"`+tc.code+`"`) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.path, tc.body, resp.StatusCode, b, tc.status, tc.code)
		}
	}
	// /stats without a body (curl -X POST).
	if resp, err := http.Post(c.URL+"/stats", "", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats without a body: %v %v", resp, err)
	}
}

// TestNoAdmin: a worker-facing handler serves the protocol and /stats, not
// the operator's endpoints.
func TestNoAdmin(t *testing.T) {
	h := jobshttp.Handler(nil, jobshttp.Options{NoAdmin: true, Logger: quiet})
	for _, p := range []string{"/dead", "/job", "/redrive", "/purge", "/status"} {
		req, _ := http.NewRequest(http.MethodPost, p, strings.NewReader(`{}`))
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		if rec.code != http.StatusNotFound {
			t.Errorf("%s with NoAdmin: %d", p, rec.code)
		}
	}
}

type recorder struct {
	h    http.Header
	code int
	body strings.Builder
}

func newRecorder() *recorder                    { return &recorder{h: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }

// TestStatusPage: the page shows each queue's figures and dead letters;
// its buttons redrive and purge, from the same origin only.
func TestStatusPage(t *testing.T) {
	clock := testutil.NewClock()
	qs, c := serve(t, clock.Now, map[string]jobs.QueueConfig{"remote": remote["remote"], "other": {TickInterval: -1}})
	ctx := context.Background()
	ids := killJobs(t, qs, "remote", 3)
	// Some completed work for the figures: runs of 40, 60 and 80ms.
	for _, d := range []time.Duration{40 * time.Millisecond, 60 * time.Millisecond, 80 * time.Millisecond} {
		qs.EnqueueJSON(ctx, "remote", "resize", []byte(`{}`))
		ls, _ := qs.Lease(ctx, "remote", "w", 1, 0)
		clock.Advance(d)
		if err := qs.Complete(ctx, ls[0]); err != nil {
			t.Fatal(err)
		}
	}
	qs.EnqueueJSON(ctx, "remote", "resize", []byte(`{}`)) // one due job, waiting
	clock.Advance(90 * time.Second)
	page := c.URL + "/status"
	u, _ := url.Parse(page)
	origin := u.Scheme + "://" + u.Host

	get := func() string {
		t.Helper()
		resp, err := http.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("GET status: %d %v", resp.StatusCode, resp.Header)
		}
		return string(b)
	}
	body := get()
	for _, want := range []string{
		`name="viewport"`, `<h2 id="q-other">other</h2>`, `<h2 id="q-remote">remote</h2>`,
		`<dt>depth</dt><dd>1 / 100000</dd>`, `<dt>oldest due job</dt><dd>1m30s</dd>`,
		`<dt>run p50 · p99</dt><dd>60ms · 80ms</dd>`, `<dt>attempts</dt><dd>6</dd>`, `<dt>completed</dt><dd>3</dd>`,
		`class="bad"><dt>dead letters</dt><dd>3</dd>`, `<dt>throughput</dt><dd>`,
		ids[0], ids[2], "boom 2", `value="redrive"`, `value="purge"`, `method="post"`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("status page lacks %q:\n%s", want, body)
		}
	}

	post := func(action, id string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, page, strings.NewReader(url.Values{"action": {action}, "queue": {"remote"}, "id": {id}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Cross-site form posts (a page elsewhere submitting to this one) are
	// refused, by Sec-Fetch-Site or, from older browsers, by Origin.
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	} {
		if resp := post("purge", ids[0], hdr); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin purge %v: %d", hdr, resp.StatusCode)
		}
	}
	if i, _ := qs.Get(ctx, "remote", ids[0]); i.State != jobs.Dead {
		t.Fatalf("a refused purge changed the job: %+v", i)
	}
	// GET does not act.
	if resp, _ := http.Get(page + "?action=purge&queue=remote&id=" + ids[0]); resp.StatusCode != 200 {
		t.Fatalf("GET with an action: %d", resp.StatusCode)
	}
	if i, _ := qs.Get(ctx, "remote", ids[0]); i.State != jobs.Dead {
		t.Fatalf("a GET changed the job: %+v", i)
	}

	// Same origin: a browser's button, then the redirect back to the page.
	resp := post("redrive", ids[0], map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": origin})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "?") {
		t.Fatalf("redrive: %d %v", resp.StatusCode, resp.Header)
	}
	if i, _ := qs.Get(ctx, "remote", ids[0]); i.State != jobs.Pending {
		t.Fatalf("after redrive: %+v", i)
	}
	resp = post("purge", ids[1], map[string]string{"Origin": origin}) // a browser without Sec-Fetch-Site
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("purge: %d", resp.StatusCode)
	}
	if _, err := qs.Get(ctx, "remote", ids[1]); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("after purge: %v", err)
	}
	// The page after the redirect says what happened.
	resp, err := http.Get(page + resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Purged: ") || !strings.Contains(string(b), ids[1]) || strings.Contains(string(b), `value="`+ids[1]+`"`) {
		t.Fatalf("page after purge:\n%s", b)
	}
	// A job no longer dead: nothing done, said so.
	if resp := post("purge", ids[0], map[string]string{"Origin": origin}); resp.StatusCode != http.StatusSeeOther ||
		!strings.Contains(resp.Header.Get("Location"), "done=skipped") {
		t.Fatalf("purge of a redriven job: %d %v", resp.StatusCode, resp.Header)
	}
	if i, _ := qs.Get(ctx, "remote", ids[0]); i.State != jobs.Pending {
		t.Fatalf("a purge of a live job changed it: %+v", i)
	}
	for _, bad := range []string{"delete", ""} {
		if resp := post(bad, ids[2], map[string]string{"Origin": origin}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("action %q: %d", bad, resp.StatusCode)
		}
	}

	// Read-only: no buttons, POST refused.
	ro := jobshttp.StatusPage(qs, jobshttp.StatusOptions{ReadOnly: true, Title: "Ops <jobs>", Logger: quiet})
	rec := newRecorder()
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	ro.ServeHTTP(rec, req)
	if rec.code != 200 || strings.Contains(rec.body.String(), "<form") || !strings.Contains(rec.body.String(), "Ops &lt;jobs&gt;") {
		t.Fatalf("read-only page: %d\n%s", rec.code, rec.body.String())
	}
	rec = newRecorder()
	req, _ = http.NewRequest(http.MethodPost, "/", strings.NewReader("action=purge&queue=remote&id="+ids[2]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ro.ServeHTTP(rec, req)
	if rec.code != http.StatusForbidden {
		t.Fatalf("read-only POST: %d", rec.code)
	}
}
