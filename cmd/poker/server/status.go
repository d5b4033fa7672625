package server

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// statusPage is the operator's status page. The figures are rendered on
// the server; /status.js (the CSP forbids inline scripts) draws the charts
// from /status.json every 2 s and refreshes the figures; without
// JavaScript the page reloads itself every 5 s.
var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"avg": func(n, d uint64) string {
		if d == 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", float64(n)/float64(d))
	},
	"plural": plural,
	"dur":    humanDuration,
	"bytes": func(n any) string {
		switch v := n.(type) {
		case int64:
			return humanBytes(v)
		case uint64:
			return humanBytes(v)
		}
		return fmt.Sprint(n)
	},
	"num": func(n any) string { return thousands(fmt.Sprint(n)) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="5"></noscript>
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Status · Planning poker</title>
<link rel="stylesheet" href="/app.css">
<script src="/status.js" defer></script></head>
<body><main class="status-page" id="main">
<h1>Planning poker — status</h1>
<div id="status-live" data-testid="status-live">
<p class="status-health" data-testid="status-health" data-healthy="{{if .Problems}}false{{else}}true{{end}}">{{if .Problems}}<strong>Degraded:</strong> {{range $i, $p := .Problems}}{{if $i}}; {{end}}{{$p}}{{end}}{{else}}<strong>Healthy.</strong> Journal accepting writes, no storage problem.{{end}}</p>
<dl class="status-grid" data-testid="status-summary">
<div><dt>Version</dt><dd data-testid="status-version">{{.Version}}</dd></div>
<div><dt>Up for</dt><dd>{{dur .Uptime}}</dd></div>
<div><dt>Open rooms</dt><dd data-testid="status-rooms">{{plural .Rooms.Known "room" "rooms"}}</dd></div>
<div><dt>Connected</dt><dd data-testid="status-members">{{plural .Rooms.Members "member" "members"}} · {{plural .Rooms.Streams "stream" "streams"}}</dd></div>
<div><dt>Since start</dt><dd data-testid="status-totals">{{plural .Rooms.Created "room" "rooms"}} created, {{num .Rooms.Closed}} closed · {{plural .Requests "request" "requests"}}, {{num .Busy}} answered 503</dd></div>
<div><dt>Last checkpoint</dt><dd data-testid="status-checkpoint">{{if .LastCheckpoint.IsZero}}none yet (every {{dur .CheckpointEvery}}){{else}}{{dur .CheckpointAge}} ago ({{.LastCheckpoint.UTC.Format "15:04:05 UTC"}}){{end}}{{if .CheckpointFailures}} · <strong>{{plural .CheckpointFailures "failure" "failures"}}</strong>{{end}}</dd></div>
<div><dt>Data directory</dt><dd data-testid="status-datadir"><code>{{.DataDir}}</code></dd></div>
<div><dt>Disk use</dt><dd data-testid="status-disk">{{bytes .DiskBytes}} in all, journal {{bytes .JournalDisk}} in {{plural .Journal.Segments "segment" "segments"}}</dd></div>
<div><dt>Process</dt><dd>{{plural .Goroutines "goroutine" "goroutines"}}, heap {{bytes .Heap}}</dd></div>
</dl>
<h2>Last minutes</h2>
<p class="muted small">One point every 2 s, the last 10 minutes. Needs JavaScript; the figures are in <a href="/status.json">/status.json</a> and Prometheus metrics at <a href="/metrics">/metrics</a>.</p>
</div>
<div class="charts" id="charts" data-testid="status-charts">
<figure class="chart" data-series="requests" data-unit="/s"><figcaption>Requests per second</figcaption></figure>
<figure class="chart" data-series="busy" data-unit="/s"><figcaption>503 answers per second</figcaption></figure>
<figure class="chart" data-series="commandMs" data-unit=" ms"><figcaption>Command latency (request → durable, applied, delivered)</figcaption></figure>
<figure class="chart" data-series="inbox" data-unit=""><figcaption>Messages queued in inboxes</figcaption></figure>
<figure class="chart" data-series="fsyncMs" data-unit=" ms"><figcaption>Journal fsync latency</figcaption></figure>
<figure class="chart" data-series="rooms,members" data-unit=""><figcaption>Open rooms and connected members</figcaption></figure>
</div>
<div id="status-tables">
<h2>Services</h2>
<div class="table-scroll" tabindex="0" role="region" aria-label="Services (scrolls sideways)"><table data-testid="status-services"><thead><tr><th>service</th><th>received</th><th>handled</th><th>inbox</th>
<th>busy (503)</th><th>batches</th><th>avg batch</th><th>max batch</th><th>resident</th><th>loaded</th><th>evicted</th><th>checkpoints</th><th>panics</th></tr></thead>
<tbody>{{range .Services}}<tr><td>{{.Addr}}{{if .Children}}/*{{end}}</td><td>{{num .Received}}</td><td>{{num .Handled}}</td><td>{{num .InboxDepth}}</td>
<td>{{num .Busy}}</td><td>{{num .Batches}}</td><td>{{avg .Handled .Batches}}</td><td>{{num .MaxBatch}}</td><td>{{num .Resident}}</td><td>{{num .Loaded}}</td><td>{{num .Evicted}}</td><td>{{num .Saves}}</td><td>{{num .Panics}}</td></tr>
{{end}}</tbody></table></div>
<h2>Journal</h2>
<div class="table-scroll" tabindex="0" role="region" aria-label="Journal"><table class="kv" data-testid="status-journal"><tbody>
<tr><th>last sequence</th><td>{{num .Journal.LastSeq}}</td></tr>
<tr><th>records appended / durable / failed</th><td>{{num .Journal.Appended}} / {{num .Journal.Acked}} / {{num .Journal.Failed}}</td></tr>
<tr><th>pending</th><td>{{num .Journal.Pending}}</td></tr>
<tr><th>group commits (avg / max records)</th><td>{{num .Journal.Batches}} ({{printf "%.1f" .Journal.AvgBatch}} / {{num .Journal.MaxBatch}})</td></tr>
<tr><th>fsyncs (last latency, total time)</th><td>{{num .Journal.Fsyncs}} ({{dur .Journal.LastFsync}}, {{dur .Journal.TotalFsync}})</td></tr>
<tr><th>bytes written</th><td>{{bytes .Journal.Bytes}}</td></tr>
<tr><th>segments</th><td>{{num .Journal.Segments}}</td></tr>
<tr><th>state</th><td>{{if .Journal.Err}}FAILED: {{.Journal.Err}}{{else}}healthy{{end}}</td></tr>
</tbody></table></div>
{{with .Webhooks}}{{template "webhooks" .}}{{end}}
{{with .Cluster}}<h2>Cluster</h2>
<div class="table-scroll" tabindex="0" role="region" aria-label="Cluster"><table class="kv" data-testid="status-cluster"><tbody>
<tr><th>cluster / node</th><td>{{.Cluster}} / {{.Node}}{{if .FrontEnd}} (front end: owns no rooms){{end}}</td></tr>
<tr><th>NATS</th><td>{{.NATS}}</td></tr>
<tr><th>partitions owned</th><td>{{len .Owned}} of {{.Partitions}}: {{range $i, $p := .Owned}}{{if $i}}, {{end}}{{$p}}{{end}}</td></tr>
{{range .Warnings}}<tr><th>warning</th><td data-testid="status-cluster-warning">{{.}}</td></tr>{{end}}
</tbody></table></div>{{end}}
</div>
</main></body></html>
`))

type statusData struct {
	Version            string
	Uptime             time.Duration
	Goroutines         int
	Heap               uint64
	Services           []reactor.ServiceStats
	Journal            journal.Stats
	Rooms              poker.Counters
	Requests, Busy     uint64
	DataDir            string
	DiskBytes          int64
	JournalDisk        int64
	LastCheckpoint     time.Time
	CheckpointAge      time.Duration
	CheckpointEvery    time.Duration
	CheckpointFailures uint64
	Problems           []string
	Webhooks           *webhookStatus
	Cluster            *clusterStatus
}

func (s *Server) statusData(ctx context.Context) statusData {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	d := statusData{
		Version:            s.cfg.Version,
		Uptime:             time.Since(s.started),
		Goroutines:         runtime.NumGoroutine(),
		Heap:               ms.HeapAlloc,
		Services:           s.rt.Stats(),
		Journal:            s.journal.Stats(),
		Rooms:              s.rooms.Counters(),
		Requests:           s.http.total.Load(),
		Busy:               s.http.unavailable.Load(),
		DataDir:            s.cfg.DataDir,
		DiskBytes:          s.sampler.diskBytes.Load(),
		JournalDisk:        journalDiskBytes(s.journalDir()),
		LastCheckpoint:     s.store.lastSave(),
		CheckpointEvery:    s.cfg.CheckpointInterval,
		CheckpointFailures: s.store.failures.Load(),
		Problems:           s.health.problems(),
		Webhooks:           s.webhookStatus(ctx),
		Cluster:            s.clusterStatus(),
	}
	if d.CheckpointEvery <= 0 {
		d.CheckpointEvery = 30 * time.Second // the runtime's default
	}
	if !d.LastCheckpoint.IsZero() {
		d.CheckpointAge = time.Since(d.LastCheckpoint)
	}
	return d
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, s.statusData(r.Context())); err != nil {
		s.log.Warn("poker: status page", "err", err)
	}
}

// statusJSONBody is GET /status.json: the samples of the charts, oldest
// first, and the figures of the page.
type statusJSONBody struct {
	Version             string   `json:"version"`
	UptimeSeconds       float64  `json:"uptimeSeconds"`
	DataDir             string   `json:"dataDir"`
	DiskBytes           int64    `json:"diskBytes"`
	JournalDiskBytes    int64    `json:"journalDiskBytes"`
	LastCheckpoint      *string  `json:"lastCheckpoint"` // RFC 3339, null before the first
	CheckpointAgeSecond *float64 `json:"checkpointAgeSeconds"`
	CheckpointFailures  uint64   `json:"checkpointFailures"`
	RoomsOpen           int      `json:"roomsOpen"`
	MembersConnected    int      `json:"membersConnected"`
	Streams             int      `json:"streams"`
	RoomsCreated        uint64   `json:"roomsCreated"`
	RoomsClosed         uint64   `json:"roomsClosed"`
	Requests            uint64   `json:"requests"`
	Busy                uint64   `json:"busy"`
	Problems            []string `json:"problems"`
	IntervalSeconds     float64  `json:"intervalSeconds"`
	Samples             []Sample `json:"samples"`
	// Cluster is set in NATS cluster mode.
	Cluster *clusterStatus `json:"cluster,omitempty"`
}

func (s *Server) statusJSON(w http.ResponseWriter, r *http.Request) {
	d := s.statusData(r.Context())
	b := statusJSONBody{
		Version: d.Version, UptimeSeconds: d.Uptime.Seconds(), DataDir: d.DataDir, DiskBytes: d.DiskBytes,
		JournalDiskBytes: d.JournalDisk, CheckpointFailures: d.CheckpointFailures,
		RoomsOpen: d.Rooms.Known, MembersConnected: d.Rooms.Members, Streams: d.Rooms.Streams,
		RoomsCreated: d.Rooms.Created, RoomsClosed: d.Rooms.Closed, Requests: d.Requests, Busy: d.Busy,
		Problems: d.Problems, IntervalSeconds: sampleEvery.Seconds(), Samples: s.sampler.samples(),
		Cluster: d.Cluster,
	}
	if b.Problems == nil {
		b.Problems = []string{}
	}
	if !d.LastCheckpoint.IsZero() {
		t, age := d.LastCheckpoint.UTC().Format(time.RFC3339Nano), d.CheckpointAge.Seconds()
		b.LastCheckpoint, b.CheckpointAgeSecond = &t, &age
	}
	w.Header().Set("Cache-Control", "no-store")
	gateway.JSON(w, http.StatusOK, b)
}

// plural says "1 room", "2 rooms", "1,024 rooms".
func plural(n any, one, many string) string {
	s := fmt.Sprint(n)
	if s == "1" {
		return "1 " + one
	}
	return thousands(s) + " " + many
}

// thousands puts commas between groups of three digits of an integer.
func thousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if _, err := strconv.ParseUint(s, 10, 64); err != nil || len(s) <= 3 {
		if neg {
			return "-" + s
		}
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// humanDuration rounds d for people: "0.4 ms", "12 ms", "3.2 s", "5 min
// 3 s", "2 h 5 min", "3 d 4 h".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 s"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Round(time.Second).Seconds())) + " s"
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// humanBytes says "512 B", "3.4 KiB", "12 MiB", "1.2 GiB".
func humanBytes[T int64 | uint64](n T) string {
	f := float64(n)
	for _, unit := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if f < 1024 || unit == "TiB" {
			if unit == "B" || f >= 10 {
				return strconv.FormatFloat(f, 'f', 0, 64) + " " + unit
			}
			return strconv.FormatFloat(f, 'f', 1, 64) + " " + unit
		}
		f /= 1024
	}
	return ""
}
