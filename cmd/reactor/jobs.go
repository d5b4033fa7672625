package main

// reactor jobs: the operator's side of a running application's job queues,
// through its jobs/jobshttp endpoint (the same URL its remote workers
// use). It lives in its own file and joins the command tree in init, so
// that the journal commands in main.go can change without touching it.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reactorgo/reactor/jobs/jobshttp"
)

func init() {
	commands.sub = append(commands.sub, &command{name: "jobs", usage: "dead letters and figures of a running application's job queues (-url …/jobs)", sub: []*command{
		{name: "stats", usage: "-url URL  every queue: depth, oldest due job, throughput, run p50/p99, attempts, dead", run: jobsStats},
		{name: "dead", usage: "-url URL -queue Q [-n N]  list dead letters (oldest first) with their last error", run: jobsDead},
		{name: "show", usage: "-url URL -queue Q ID  one job: state, attempts, every kept error, arguments", run: jobsShow},
		{name: "redrive", usage: "-url URL -queue Q ID… | -all  make dead letters runnable again, attempts reset", run: jobsRedrive},
		{name: "purge", usage: "-url URL -queue Q ID… | -all  delete dead letters for good", run: jobsPurge},
	}})
}

// urlEnv is the default of -url, so that a shell session can set it once.
const urlEnv = "REACTOR_JOBS_URL"

// jobsFlags are the flags every jobs subcommand takes.
type jobsFlags struct {
	fs      *flag.FlagSet
	url     string
	queue   string
	timeout time.Duration
	json    bool
}

func newJobsFlags(name string, stderr io.Writer) *jobsFlags {
	f := &jobsFlags{fs: flag.NewFlagSet("reactor jobs "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.url, "url", os.Getenv(urlEnv), "where the application serves jobshttp.Handler, e.g. http://127.0.0.1:8080/jobs (default $"+urlEnv+")")
	f.fs.StringVar(&f.queue, "queue", "default", "queue name")
	f.fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
	f.fs.BoolVar(&f.json, "json", false, "print the server's JSON answer instead of a table")
	return f
}

// parse parses flags and positional arguments in any order (an operator
// types "redrive ID -queue mail" as often as the reverse); "--" ends the
// flags, for an id that starts with "-".
func (f *jobsFlags) parse(args []string) ([]string, error) {
	var pos, rest []string
	if i := indexOf(args, "--"); i >= 0 {
		args, rest = args[:i], args[i+1:]
	}
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		args = f.fs.Args()
		for len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-") {
			pos, args = append(pos, args[0]), args[1:]
		}
		if len(args) == 0 {
			break
		}
	}
	pos = append(pos, rest...)
	if f.url == "" {
		return nil, fmt.Errorf("-url is required (or set $%s): where the application mounts jobshttp.Handler, e.g. http://127.0.0.1:8080/jobs", urlEnv)
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port/path", f.url)
	}
	return pos, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func (f *jobsFlags) client() *jobshttp.Client {
	return &jobshttp.Client{URL: f.url, HTTP: &http.Client{Timeout: f.timeout}}
}

// setup parses args; code is non-zero when the command must stop there.
func setup(ctx context.Context, name string, args []string, stderr io.Writer) (*jobsFlags, []string, context.Context, context.CancelFunc, int) {
	f := newJobsFlags(name, stderr)
	pos, err := f.parse(args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "reactor jobs %s: %v\n", name, err)
		}
		return nil, nil, nil, nil, 2
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	return f, pos, ctx, cancel, 0
}

// fail prints err for people and returns the exit code 1.
func fail(stderr io.Writer, name string, f *jobsFlags, err error) int {
	var se *jobshttp.StatusError
	switch {
	case errors.As(err, &se) && se.Code == "not_jobshttp":
		fmt.Fprintf(stderr, "reactor jobs %s: %s answered %d, not as a jobs endpoint (is -url where jobshttp.Handler is mounted, e.g. …/jobs?): %s\n",
			name, f.url, se.Status, se.Message)
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "reactor jobs %s: %s: %s (HTTP %d)\n", name, se.Code, se.Message, se.Status)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(stderr, "reactor jobs %s: no answer from %s within %v: %v\n", name, f.url, f.timeout, err)
	default:
		fmt.Fprintf(stderr, "reactor jobs %s: cannot reach %s: %v\n", name, f.url, err)
	}
	return 1
}

func printJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(w, "%s\n", b)
}

func jobsStats(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, pos, ctx, cancel, code := setup(ctx, "stats", args, stderr)
	if code != 0 {
		return code
	}
	defer cancel()
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "reactor jobs stats: unexpected arguments %q\n", pos)
		return 2
	}
	st, err := f.client().Stats(ctx)
	if err != nil {
		return fail(stderr, "stats", f, err)
	}
	if f.json {
		printJSON(stdout, jobshttp.StatsResponse{Queues: st})
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "QUEUE\tDEPTH\tMAX\tDUE\tRUNNING\tDEAD\tOLDEST DUE\tJOBS/S\tRUN P50\tRUN P99\tATTEMPTS\tFAILED\tCOMPLETED\t")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%.2f\t%s\t%s\t%d\t%d\t%d\t\n", s.Queue, s.Depth, s.MaxDepth, s.Due, s.Running, s.Dead,
			msDur(s.OldestDueMs), s.Throughput, msDur(s.RunP50Ms), msDur(s.RunP99Ms), s.Attempts, s.Failed, s.Completed)
	}
	tw.Flush()
	return 0
}

// msDur prints milliseconds as a rounded duration.
func msDur(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d <= 0:
		return "0"
	case d < time.Second:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

func jobsDead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, n := newJobsFlags("dead", stderr), 0
	f.fs.IntVar(&n, "n", 20, "list at most this many (the server caps it, 1000 by default)")
	pos, err := f.parse(args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "reactor jobs dead: %v\n", err)
		}
		return 2
	}
	if len(pos) > 0 || n <= 0 {
		fmt.Fprintln(stderr, "usage: reactor jobs dead -url URL -queue Q [-n N]  (N > 0)")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	d, err := f.client().Dead(ctx, f.queue, n)
	if err != nil {
		return fail(stderr, "dead", f, err)
	}
	if f.json {
		printJSON(stdout, d)
		return 0
	}
	if len(d.Jobs) == 0 {
		fmt.Fprintf(stdout, "no dead letters in queue %s\n", f.queue)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tATTEMPTS\tDIED\tLAST ERROR")
	for _, j := range d.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.Attempt, j.MaxAttempts, j.FinishedAt.UTC().Format(time.RFC3339), oneLine(j.LastError, 100))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d of %d dead letters in queue %s\n", len(d.Jobs), d.Total, f.queue)
	return 0
}

// oneLine shortens an error for a table row: its first line, at most n
// runes.
func oneLine(s string, n int) string {
	s, _, cut := strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		s, cut = string(r[:n]), true
	}
	if cut {
		s += " …"
	}
	return s
}

func jobsShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, pos, ctx, cancel, code := setup(ctx, "show", args, stderr)
	if code != 0 {
		return code
	}
	defer cancel()
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: reactor jobs show -url URL -queue Q ID")
		return 2
	}
	j, err := f.client().Job(ctx, f.queue, pos[0])
	if err != nil {
		return fail(stderr, "show", f, err)
	}
	if f.json {
		printJSON(stdout, j)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	row("id", j.ID)
	row("queue", j.Queue)
	row("kind", j.Kind)
	row("state", string(j.State))
	row("attempts", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	if j.Priority != 0 {
		row("priority", fmt.Sprint(j.Priority))
	}
	row("unique", j.Unique)
	row("enqueued", ts(j.EnqueuedAt))
	row("run at", ts(j.RunAt))
	row("finished", ts(j.FinishedAt))
	row("worker", j.Worker)
	row("lease until", ts(j.LeaseUntil))
	row("args", string(j.Args))
	tw.Flush()
	if len(j.Errors) > 0 {
		fmt.Fprintf(stdout, "errors (last %d):\n", len(j.Errors))
		for _, e := range j.Errors {
			fmt.Fprintf(stdout, "  attempt %d at %s: %s\n", e.Attempt, ts(e.At), strings.ReplaceAll(e.Error, "\n", "\n    "))
		}
	}
	return 0
}

func jobsRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return deadAction(ctx, "redrive", "redriven", args, stdout, stderr)
}

func jobsPurge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return deadAction(ctx, "purge", "purged", args, stdout, stderr)
}

// deadAction redrives or purges. Ids that were not dead letters are named
// and make the exit code 1: a script that meant to act on them must know
// it did not.
func deadAction(ctx context.Context, name, done string, args []string, stdout, stderr io.Writer) int {
	f, all := newJobsFlags(name, stderr), false
	f.fs.BoolVar(&all, "all", false, "every dead letter of the queue instead of named ids")
	pos, err := f.parse(args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "reactor jobs %s: %v\n", name, err)
		}
		return 2
	}
	if all == (len(pos) > 0) {
		fmt.Fprintf(stderr, "usage: reactor jobs %s -url URL -queue Q ID…  (or -all instead of ids)\n", name)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req := jobshttp.IDsRequest{Queue: f.queue, IDs: pos, All: all}
	c := f.client()
	act := c.Redrive
	if name == "purge" {
		act = c.Purge
	}
	res, err := act(ctx, req)
	if err != nil {
		return fail(stderr, name, f, err)
	}
	if f.json {
		printJSON(stdout, res)
	} else {
		fmt.Fprintf(stdout, "%s %d dead letters in queue %s\n", done, res.Count, f.queue)
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(stderr, "reactor jobs %s: not dead letters (unknown, or not dead), left alone: %s\n", name, strings.Join(res.Skipped, " "))
		return 1
	}
	return 0
}
