package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/jobs/jobshttp"
)

// jobsApp is a durable runtime with a "mail" queue, served by jobshttp at
// URL (an httptest server on loopback).
type jobsApp struct {
	qs  *jobs.Queues
	URL string
}

func openJobsApp(t *testing.T) *jobsApp {
	t.Helper()
	var qs *jobs.Queues
	quiet := slog.New(slog.DiscardHandler)
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{}, func(rt *reactor.Runtime) error {
		var err error
		qs, err = jobs.New(rt, jobs.Config{Queues: map[string]jobs.QueueConfig{"mail": {TickInterval: -1}, "default": {TickInterval: -1}}, Logger: quiet})
		return err
	})
	ctx := context.Background()
	if err := qs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/jobs/", http.StripPrefix("/jobs", jobshttp.Handler(qs, jobshttp.Options{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		qs.Close(ctx)
		rt.Close(ctx)
		j.Close()
	})
	return &jobsApp{qs: qs, URL: srv.URL + "/jobs"}
}

// kill makes a dead job in mail whose attempts failed with the errors.
func (a *jobsApp) kill(t *testing.T, args string, errs ...string) string {
	t.Helper()
	ctx := context.Background()
	id, err := a.qs.EnqueueJSON(ctx, "mail", "email.send", []byte(args), jobs.MaxAttempts(len(errs)), jobs.Backoff(time.Nanosecond, time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	for i, msg := range errs {
		var ls []jobs.Lease
		testutil.WaitFor(t, func() bool { // the retry is due within a nanosecond
			ls, err = a.qs.Lease(ctx, "mail", "w", 1, 0)
			return err == nil && len(ls) == 1
		})
		if ls[0].ID != id || ls[0].Attempt != i+1 {
			t.Fatalf("lease: %+v", ls)
		}
		if _, err := a.qs.Fail(ctx, ls[0], errors.New(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if info, _ := a.qs.Get(ctx, "mail", id); info.State != jobs.Dead {
		t.Fatalf("%s not dead: %+v", id, info)
	}
	return id
}

func runJobs(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"jobs"}, args...), &o, &e)
	return code, o.String(), e.String()
}

func TestJobsCLI(t *testing.T) {
	a := openJobsApp(t)
	ctx := context.Background()
	id1 := a.kill(t, `{"to":"ann@example.com"}`, "smtp: 451 try later", "smtp: 550 mailbox unavailable\nsecond line")
	id2 := a.kill(t, `{"to":"bob@example.com"}`, "template missing")
	id3 := a.kill(t, `{"to":"cy@example.com"}`, "boom")
	live, _ := a.qs.EnqueueJSON(ctx, "mail", "email.send", []byte(`{}`))

	// stats: every queue, with its figures.
	code, out, errOut := runJobs("stats", "-url", a.URL)
	if code != 0 || errOut != "" {
		t.Fatalf("stats: %d %s %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "DEPTH") || !strings.Contains(lines[0], "RUN P99") ||
		!strings.HasPrefix(strings.TrimSpace(lines[1]), "default") || !strings.HasPrefix(strings.TrimSpace(lines[2]), "mail") {
		t.Fatalf("stats output:\n%s", out)
	}
	// mail: depth 1 of 100000, 1 due, 0 running, 3 dead, …, 4 attempts, 4 failed.
	if f := strings.Fields(lines[2]); f[1] != "1" || f[2] != "100000" || f[3] != "1" || f[4] != "0" || f[5] != "3" || f[10] != "4" || f[11] != "4" {
		t.Fatalf("mail row: %q", f)
	}
	code, out, _ = runJobs("stats", "-url", a.URL, "-json")
	var sr jobshttp.StatsResponse
	if code != 0 || json.Unmarshal([]byte(out), &sr) != nil || len(sr.Queues) != 2 || sr.Queues[1].Dead != 3 {
		t.Fatalf("stats -json: %d %s", code, out)
	}

	// dead: oldest first, with the last error on one line; -n limits.
	code, out, _ = runJobs("dead", "-url", a.URL, "-queue", "mail")
	if code != 0 {
		t.Fatalf("dead: %d %s", code, out)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[1], id1+" ") || !strings.HasPrefix(lines[2], id2+" ") || !strings.HasPrefix(lines[3], id3+" ") ||
		!strings.Contains(lines[1], "2/2") || !strings.Contains(lines[1], "smtp: 550 mailbox unavailable …") ||
		!strings.Contains(lines[2], "template missing") || lines[4] != "3 of 3 dead letters in queue mail" {
		t.Fatalf("dead output:\n%s", out)
	}
	code, out, _ = runJobs("dead", "-queue", "mail", "-n", "1", "-url", a.URL)
	if code != 0 || !strings.Contains(out, id1) || strings.Contains(out, id2) || !strings.Contains(out, "1 of 3 dead letters") {
		t.Fatalf("dead -n 1: %d\n%s", code, out)
	}
	if code, out, _ = runJobs("dead", "-url", a.URL); code != 0 || out != "no dead letters in queue default\n" {
		t.Fatalf("dead in default: %d %q", code, out)
	}

	// show: every kept error, the arguments.
	code, out, _ = runJobs("show", "-url", a.URL, "-queue", "mail", id1)
	out = regexp.MustCompile(` {2,}`).ReplaceAllString(out, " ") // the column width follows the longest label
	for _, want := range []string{"\nstate dead\n", "\nattempts 2 of 2\n", `args {"to":"ann@example.com"}`,
		"errors (last 2):", "attempt 1 at ", ": smtp: 451 try later", "attempt 2 at ", "smtp: 550 mailbox unavailable\n second line"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show lacks %q: %d\n%s", want, code, out)
		}
	}

	// redrive: ids in any position relative to the flags; an id that is
	// not a dead letter is named, left alone, and the exit code says so.
	code, out, errOut = runJobs("redrive", id1, "-url", a.URL, "-queue", "mail", live, "nope")
	if code != 1 || out != "redriven 1 dead letters in queue mail\n" || !strings.Contains(errOut, "left alone: "+live+" nope") {
		t.Fatalf("redrive: %d %q %q", code, out, errOut)
	}
	if info, _ := a.qs.Get(ctx, "mail", id1); info.State != jobs.Pending || info.Attempt != 0 {
		t.Fatalf("%s after redrive: %+v", id1, info)
	}
	if info, _ := a.qs.Get(ctx, "mail", live); info.State != jobs.Pending || info.Attempt != 0 {
		t.Fatalf("live job after redrive: %+v", info)
	}

	// purge by id, then -all.
	if code, out, errOut = runJobs("purge", "-url", a.URL, "-queue", "mail", id2); code != 0 || out != "purged 1 dead letters in queue mail\n" || errOut != "" {
		t.Fatalf("purge: %d %q %q", code, out, errOut)
	}
	if _, err := a.qs.Get(ctx, "mail", id2); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("purged job: %v", err)
	}
	// Purging a job that is no longer dead does not purge everything.
	if code, _, errOut = runJobs("purge", "-url", a.URL, "-queue", "mail", id1); code != 1 || !strings.Contains(errOut, id1) {
		t.Fatalf("purge of a redriven job: %d %q", code, errOut)
	}
	if info, _ := a.qs.Get(ctx, "mail", id3); info.State != jobs.Dead {
		t.Fatalf("an unrelated dead letter was touched: %+v", info)
	}
	if code, out, _ = runJobs("purge", "-url", a.URL, "-queue", "mail", "-all"); code != 0 || out != "purged 1 dead letters in queue mail\n" {
		t.Fatalf("purge -all: %d %q", code, out)
	}
	if d, _ := a.qs.Dead(ctx, "mail", 0); len(d) != 0 {
		t.Fatalf("dead after purge -all: %+v", d)
	}
}

// TestJobsCLIErrors: usage mistakes exit 2, failures exit 1, each with a
// message that says what went wrong.
func TestJobsCLIErrors(t *testing.T) {
	a := openJobsApp(t)
	// A port nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + l.Addr().String() + "/jobs"
	l.Close()
	notJobs := httptest.NewServer(http.NotFoundHandler())
	defer notJobs.Close()
	t.Setenv(urlEnv, "")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dead", "-queue", "mail"}, 2, "-url is required"},
		{[]string{"dead", "-url", "127.0.0.1:1"}, 2, "want http://host:port/path"},
		{[]string{"dead", "-url", a.URL, "-n", "0"}, 2, "usage: reactor jobs dead"},
		{[]string{"dead", "-url", a.URL, "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"redrive", "-url", a.URL, "-queue", "mail"}, 2, "usage: reactor jobs redrive"},
		{[]string{"purge", "-url", a.URL, "-queue", "mail", "-all", "x"}, 2, "usage: reactor jobs purge"},
		{[]string{"show", "-url", a.URL, "-queue", "mail"}, 2, "usage: reactor jobs show"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"dead", "-url", a.URL, "-queue", "nope"}, 1, `no_queue: jobs: queue "nope" not configured`},
		{[]string{"show", "-url", a.URL, "-queue", "mail", "nope"}, 1, "not_found: jobs: nope: jobs: no such job (HTTP 404)"},
		{[]string{"stats", "-url", closed}, 1, "cannot reach " + closed},
		{[]string{"stats", "-url", notJobs.URL}, 1, "answered 404, not as a jobs endpoint"},
	} {
		code, out, errOut := runJobs(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || (code != 0 && out != "") {
			t.Errorf("%v: %d out %q err %q, want %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	// -url from the environment.
	t.Setenv(urlEnv, a.URL)
	if code, out, _ := runJobs("dead", "-queue", "mail"); code != 0 || out != "no dead letters in queue mail\n" {
		t.Fatalf("with $%s: %d %q", urlEnv, code, out)
	}
	// The top-level usage lists the jobs commands.
	var e bytes.Buffer
	if code := run(context.Background(), []string{"jobs"}, &e, &e); code != 2 || !strings.Contains(e.String(), "reactor jobs redrive") {
		t.Fatalf("usage: %d %s", code, e.String())
	}
}
