package jobshttp

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/reactorgo/reactor/jobs"
)

// StatusOptions configures StatusPage. The zero value is valid.
type StatusOptions struct {
	// Title heads the page (default "Jobs").
	Title string
	// DeadLimit is how many dead letters the page lists per queue (default
	// 20; the CLI and POST /dead reach the rest).
	DeadLimit int
	// ReadOnly shows no redrive and purge buttons and refuses every POST.
	ReadOnly bool
	// Logger receives unexpected errors (default slog.Default()).
	Logger *slog.Logger
}

// StatusPage serves a small HTML page with each queue's figures — depth,
// age of the oldest due job, throughput, run time p50/p99, attempts,
// failures — and its dead letters, each with redrive and purge buttons.
// It is plain server-rendered HTML (no script), readable on a phone.
//
// The buttons POST a form to the page itself. Changes are accepted only
// from the page's own origin (net/http's CrossOriginProtection: the
// browser's Sec-Fetch-Site, else Origin against Host), so another site
// cannot make an operator's browser purge dead letters; the page also
// refuses to be framed (clickjacking). Like Handler it does not
// authenticate: mount it behind your middleware.
//
//	mux.Handle("/jobs/status", jobshttp.StatusPage(qs, jobshttp.StatusOptions{}))
func StatusPage(qs *jobs.Queues, opts StatusOptions) http.Handler {
	if opts.Title == "" {
		opts.Title = "Jobs"
	}
	if opts.DeadLimit <= 0 {
		opts.DeadLimit = 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &statusPage{qs: qs, opts: opts}
	return http.NewCrossOriginProtection().Handler(p)
}

type statusPage struct {
	qs   *jobs.Queues
	opts StatusOptions
}

func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p.render(w, r)
	case http.MethodPost:
		p.act(w, r)
	default:
		h.Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// act runs one button's action and redirects back to the page (POST,
// redirect, GET: a reload does not repeat the action).
func (p *statusPage) act(w http.ResponseWriter, r *http.Request) {
	if p.opts.ReadOnly {
		http.Error(w, "read-only status page", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	queue, id, action := r.PostForm.Get("queue"), r.PostForm.Get("id"), r.PostForm.Get("action")
	var act deadFunc
	switch action {
	case "redrive":
		act = (*jobs.Queues).Redrive
	case "purge":
		act = (*jobs.Queues).Purge
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	if id == "" || queue == "" {
		http.Error(w, "queue and id are required", http.StatusBadRequest)
		return
	}
	res, err := applyDead(r.Context(), p.qs, IDsRequest{Queue: queue, IDs: []string{id}}, act)
	if err != nil {
		p.opts.Logger.Warn("jobshttp: status page action failed", "action", action, "queue", queue, "id", id, "err", err)
		http.Error(w, action+" failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	done := action
	if res.Count == 0 {
		done = "skipped"
	}
	// A relative reference: the page may be mounted under any prefix
	// (http.Redirect would resolve it against the stripped path).
	w.Header().Set("Location", "?"+url.Values{"done": {done}, "queue": {queue}, "id": {id}}.Encode())
	w.WriteHeader(http.StatusSeeOther)
}

type statusQueue struct {
	jobs.Stats
	DeadJobs []JobInfo
	More     int // dead letters not listed
}

type statusData struct {
	Title    string
	Now      time.Time
	Queues   []statusQueue
	Done     string
	DoneID   string
	DoneQ    string
	ReadOnly bool
	Error    string
}

func (p *statusPage) render(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d := statusData{Title: p.opts.Title, Now: p.qs.Now(), ReadOnly: p.opts.ReadOnly}
	q := r.URL.Query()
	switch q.Get("done") {
	case "redrive", "purge", "skipped":
		d.Done, d.DoneID, d.DoneQ = q.Get("done"), q.Get("id"), q.Get("queue")
	}
	status := http.StatusOK
	st, err := p.qs.Stats(ctx)
	if err != nil {
		// Still a page: an operator looking at a struggling process wants
		// to see that, not a blank 500.
		p.opts.Logger.Warn("jobshttp: status page stats", "err", err)
		d.Error, status = "the queues did not answer: "+err.Error(), http.StatusServiceUnavailable
	}
	for _, s := range st {
		sq := statusQueue{Stats: s}
		if s.Dead > 0 {
			dead, err := p.qs.Dead(ctx, s.Queue, p.opts.DeadLimit)
			if err != nil {
				d.Error, status = "dead letters of "+s.Queue+": "+err.Error(), http.StatusServiceUnavailable
			}
			for _, i := range dead {
				sq.DeadJobs = append(sq.DeadJobs, FromInfo(i))
			}
			sq.More = max(s.Dead-len(dead), 0)
		}
		d.Queues = append(d.Queues, sq)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if err := statusTmpl.Execute(w, d); err != nil {
		p.opts.Logger.Warn("jobshttp: status page render", "err", err)
	}
}

// human formats a duration for people: 0, 850ms, 12.3s, 4m05s, 3h12m.
func human(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return d.Truncate(time.Second).String()
	case d < 48*time.Hour:
		return d.Truncate(time.Minute).String()
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	}
}

var statusTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"human": human,
	"rate":  func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return human(now.Sub(t)) + " ago"
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { color-scheme: light dark; --line: #8884; --warn: #b3261e; }
body { font: 16px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 12px; max-width: 960px; }
h1 { font-size: 1.4rem; margin: 0 0 4px; }
h2 { font-size: 1.15rem; margin: 0 0 8px; overflow-wrap: anywhere; }
h3 { font-size: 1rem; margin: 12px 0 6px; }
.sub { color: GrayText; font-size: .9rem; margin: 0 0 12px; }
section.q { border: 1px solid var(--line); border-radius: 8px; padding: 12px; margin: 0 0 16px; }
dl.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px; margin: 0; }
dl.figs div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; }
dt { font-size: .8rem; color: GrayText; }
dd { margin: 0; font-size: 1.15rem; font-variant-numeric: tabular-nums; }
.bad dd { color: var(--warn); font-weight: 600; }
ul.dead { list-style: none; padding: 0; margin: 0; }
ul.dead li { border-top: 1px solid var(--line); padding: 8px 0; }
.id { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.err { font-family: ui-monospace, monospace; font-size: .85rem; white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; max-height: 8em; overflow: auto; }
form { display: inline; }
button { font: inherit; min-height: 44px; min-width: 88px; margin: 4px 8px 0 0; border-radius: 6px; border: 1px solid var(--line); padding: 6px 12px; cursor: pointer; }
button.purge { color: var(--warn); }
.note { border-left: 4px solid; padding: 6px 10px; margin: 0 0 12px; }
.error { border-color: var(--warn); }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="sub">{{rfc3339 .Now}} · <a href="?">refresh</a></p>
{{with .Error}}<p class="note error" role="alert">{{.}}</p>{{end}}
{{if .Done}}<p class="note" role="status">{{if eq .Done "redrive"}}Redriven: {{else if eq .Done "purge"}}Purged: {{else}}Not a dead letter any more (nothing done): {{end}}<span class="id">{{.DoneQ}} / {{.DoneID}}</span></p>{{end}}
{{range .Queues}}
<section class="q" aria-labelledby="q-{{.Queue}}">
<h2 id="q-{{.Queue}}">{{.Queue}}</h2>
<dl class="figs">
<div><dt>depth</dt><dd>{{.Depth}} / {{.MaxDepth}}</dd></div>
<div><dt>due · running</dt><dd>{{.Due}} · {{.Running}}</dd></div>
<div><dt>pending (incl. later)</dt><dd>{{.Pending}}</dd></div>
<div><dt>oldest due job</dt><dd>{{human .OldestDue}}</dd></div>
<div><dt>throughput</dt><dd>{{rate .Throughput}}/s</dd></div>
<div><dt>run p50 · p99</dt><dd>{{human .RunP50}} · {{human .RunP99}}</dd></div>
<div><dt>attempts</dt><dd>{{.Attempts}}</dd></div>
<div><dt>failed attempts</dt><dd>{{.Failed}}</dd></div>
<div><dt>completed</dt><dd>{{.Completed}}</dd></div>
<div{{if .Dead}} class="bad"{{end}}><dt>dead letters</dt><dd>{{.Dead}}</dd></div>
<div><dt>retry-after if full</dt><dd>{{human .RetryAfter}}</dd></div>
<div><dt>schedules</dt><dd>{{.Schedules}}</dd></div>
</dl>
{{if .DeadJobs}}
<h3>Dead letters</h3>
<ul class="dead">
{{range .DeadJobs}}
<li>
<div><span class="id">{{.ID}}</span> · {{.Kind}} · {{.Attempt}}/{{.MaxAttempts}} attempts · died {{ago $.Now .FinishedAt}}</div>
{{with .LastError}}<div class="err">{{.}}</div>{{end}}
{{if not $.ReadOnly}}
<form method="post"><input type="hidden" name="queue" value="{{.Queue}}"><input type="hidden" name="id" value="{{.ID}}"><button name="action" value="redrive">Redrive</button></form>
<form method="post"><input type="hidden" name="queue" value="{{.Queue}}"><input type="hidden" name="id" value="{{.ID}}"><button name="action" value="purge" class="purge">Purge</button></form>
{{end}}
</li>
{{end}}
</ul>
{{if .More}}<p class="sub">{{.More}} more: <code>reactor jobs dead -queue {{.Queue}} -n …</code></p>{{end}}
{{end}}
</section>
{{else}}
<p>No queues.</p>
{{end}}
</body>
</html>
`))
