package server

import (
	"fmt"
	"html/template"
	"net/http"
	"runtime"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// statusPage is the live status page. It refreshes itself with a meta
// refresh (the CSP forbids inline scripts) and uses the UI's stylesheet.
var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"avg": func(n, d uint64) string {
		if d == 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", float64(n)/float64(d))
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Status · Planning poker</title>
<link rel="stylesheet" href="/app.css"></head>
<body><main class="status-page">
<h1>Planning poker — status</h1>
<p>Up {{.Uptime}} · {{.Goroutines}} goroutines · heap {{.HeapMiB}} MiB · {{.Rooms.Streams}} open event streams ·
{{.Rooms.Logs}} rooms with live logs · {{.Rooms.Created}} rooms created, {{.Rooms.Closed}} closed since start.
Refreshes every 2 s. Prometheus metrics at <a href="/metrics">/metrics</a>.</p>
<h2>Services</h2>
<table data-testid="status-services"><thead><tr><th>service</th><th>received</th><th>handled</th><th>inbox depth</th>
<th>busy (503)</th><th>batches</th><th>avg batch</th><th>max batch</th><th>resident</th><th>loaded</th><th>evicted</th><th>checkpoints</th><th>panics</th></tr></thead>
<tbody>{{range .Services}}<tr><td>{{.Addr}}{{if .Children}}/*{{end}}</td><td>{{.Received}}</td><td>{{.Handled}}</td><td>{{.InboxDepth}}</td>
<td>{{.Busy}}</td><td>{{.Batches}}</td><td>{{avg .Handled .Batches}}</td><td>{{.MaxBatch}}</td><td>{{.Resident}}</td><td>{{.Loaded}}</td><td>{{.Evicted}}</td><td>{{.Saves}}</td><td>{{.Panics}}</td></tr>
{{end}}</tbody></table>
<h2>Journal</h2>
<table data-testid="status-journal"><tbody>
<tr><th>last sequence</th><td>{{.Journal.LastSeq}}</td></tr>
<tr><th>records appended / durable / failed</th><td>{{.Journal.Appended}} / {{.Journal.Acked}} / {{.Journal.Failed}}</td></tr>
<tr><th>pending</th><td>{{.Journal.Pending}}</td></tr>
<tr><th>group commits (avg / max records)</th><td>{{.Journal.Batches}} ({{printf "%.1f" .Journal.AvgBatch}} / {{.Journal.MaxBatch}})</td></tr>
<tr><th>fsyncs (last latency, total time)</th><td>{{.Journal.Fsyncs}} ({{.Journal.LastFsync}}, {{.Journal.TotalFsync}})</td></tr>
<tr><th>bytes written</th><td>{{.Journal.Bytes}}</td></tr>
<tr><th>segments</th><td>{{.Journal.Segments}}</td></tr>
<tr><th>state</th><td>{{if .Journal.Err}}FAILED: {{.Journal.Err}}{{else}}healthy{{end}}</td></tr>
</tbody></table>
{{with .Webhooks}}{{template "webhooks" .}}{{end}}
</main></body></html>
`))

type statusData struct {
	Uptime     time.Duration
	Goroutines int
	HeapMiB    string
	Services   []reactor.ServiceStats
	Journal    journal.Stats
	Rooms      poker.Counters
	Webhooks   *webhookStatus
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	d := statusData{
		Uptime:     time.Since(s.started).Round(time.Second),
		Goroutines: runtime.NumGoroutine(),
		HeapMiB:    fmt.Sprintf("%.1f", float64(ms.HeapAlloc)/(1<<20)),
		Services:   s.rt.Stats(),
		Journal:    s.journal.Stats(),
		Rooms:      s.rooms.Counters(),
		Webhooks:   s.webhookStatus(r.Context()),
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, d); err != nil {
		s.log.Warn("poker: status page", "err", err)
	}
}
