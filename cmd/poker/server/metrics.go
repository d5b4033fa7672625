package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector exports the runtime's, the journal's and the rooms' counters
// at scrape time.
type collector struct{ s *Server }

var (
	svcLabels     = []string{"service"}
	descReceived  = prometheus.NewDesc("reactor_service_received_total", "Messages accepted into an inbox.", svcLabels, nil)
	descHandled   = prometheus.NewDesc("reactor_service_handled_total", "Messages handled.", svcLabels, nil)
	descBusy      = prometheus.NewDesc("reactor_service_busy_total", "Sends refused with ErrBusy (inbox full).", svcLabels, nil)
	descPanics    = prometheus.NewDesc("reactor_service_panics_total", "Handler panics.", svcLabels, nil)
	descBatches   = prometheus.NewDesc("reactor_service_batches_total", "Turns that handled at least one message.", svcLabels, nil)
	descMaxBatch  = prometheus.NewDesc("reactor_service_max_batch", "Most messages handled in one turn.", svcLabels, nil)
	descDepth     = prometheus.NewDesc("reactor_service_inbox_depth", "Messages queued now.", svcLabels, nil)
	descResident  = prometheus.NewDesc("reactor_children_resident", "Keyed children in memory.", svcLabels, nil)
	descLoaded    = prometheus.NewDesc("reactor_children_loaded_total", "Keyed children created or loaded.", svcLabels, nil)
	descEvicted   = prometheus.NewDesc("reactor_children_evicted_total", "Keyed children saved and evicted.", svcLabels, nil)
	descSaves     = prometheus.NewDesc("reactor_service_checkpoints_total", "Checkpoints written.", svcLabels, nil)
	descJAppended = prometheus.NewDesc("reactor_journal_appended_total", "Records appended to the journal.", nil, nil)
	descJAcked    = prometheus.NewDesc("reactor_journal_acked_total", "Records made durable.", nil, nil)
	descJFailed   = prometheus.NewDesc("reactor_journal_failed_total", "Records that failed.", nil, nil)
	descJBatches  = prometheus.NewDesc("reactor_journal_commits_total", "Group commits.", nil, nil)
	descJMaxBatch = prometheus.NewDesc("reactor_journal_max_batch", "Most records in one group commit.", nil, nil)
	descJFsyncs   = prometheus.NewDesc("reactor_journal_fsyncs_total", "fdatasync calls.", nil, nil)
	descJFsyncSec = prometheus.NewDesc("reactor_journal_fsync_seconds_total", "Time spent in fdatasync.", nil, nil)
	descJLastSync = prometheus.NewDesc("reactor_journal_last_fsync_seconds", "Latency of the latest fdatasync.", nil, nil)
	descJBytes    = prometheus.NewDesc("reactor_journal_bytes_total", "Bytes written to segments.", nil, nil)
	descJSegments = prometheus.NewDesc("reactor_journal_segments", "Segment files on disk.", nil, nil)
	descJPending  = prometheus.NewDesc("reactor_journal_pending", "Records appended and not yet durable.", nil, nil)
	descJLastSeq  = prometheus.NewDesc("reactor_journal_last_sequence", "Sequence number of the last record.", nil, nil)
	descJUp       = prometheus.NewDesc("reactor_journal_healthy", "1 while the journal accepts writes, 0 once it fail-stopped.", nil, nil)
	descCreated   = prometheus.NewDesc("poker_rooms_created_total", "Rooms created by this process.", nil, nil)
	descClosed    = prometheus.NewDesc("poker_rooms_closed_total", "Rooms closed (idle) by this process.", nil, nil)
	descStreams   = prometheus.NewDesc("poker_event_streams", "Open member event streams.", nil, nil)
	descPooled    = prometheus.NewDesc("poker_event_streams_pooled", "Open event streams served by the stream writers (the others have a goroutine each).", nil, nil)
	descHandoffs  = prometheus.NewDesc("poker_event_stream_handoffs_total", "Event streams handed from the stream writers to a goroutine of their own (a client that did not take a write within the quick-write wait).", nil, nil)
	descLogs      = prometheus.NewDesc("poker_event_logs", "Rooms with an event log in memory.", nil, nil)
	descKnown     = prometheus.NewDesc("poker_rooms", "Rooms that may exist (live, or closed and not loaded since the start).", nil, nil)
	descEvBytes   = prometheus.NewDesc("poker_event_log_bytes", "Bytes of the events all rooms keep for resuming clients.", nil, nil)
	descStorage   = prometheus.NewDesc("poker_storage_failures_total", "Requests refused by a storage failure, by cause (disk_full, journal_failed, checkpoint_corrupt).", []string{"cause"}, nil)
	descDegraded  = prometheus.NewDesc("poker_degraded", "1 while /healthz reports degraded storage, else 0.", nil, nil)
	descOpen      = prometheus.NewDesc("poker_rooms_open", "Open rooms (created, not closed; closed rooms not loaded since the start count until they are).", nil, nil)
	descMembers   = prometheus.NewDesc("poker_members_connected", "Members with at least one open event stream.", nil, nil)
	descCPAge     = prometheus.NewDesc("reactor_checkpoint_age_seconds", "Seconds since the last successful checkpoint save (absent before the first).", nil, nil)
	descCPLast    = prometheus.NewDesc("reactor_checkpoint_last_success_timestamp_seconds", "Unix time of the last successful checkpoint save (0: none yet).", nil, nil)
	descCPSaves   = prometheus.NewDesc("reactor_checkpoint_saves_total", "Checkpoints saved (room states and journal floors).", nil, nil)
	descCPFails   = prometheus.NewDesc("reactor_checkpoint_failures_total", "Checkpoint saves that failed.", nil, nil)
	descJDisk     = prometheus.NewDesc("reactor_journal_disk_bytes", "Bytes of the journal's segment files on disk.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, st := range c.s.rt.Stats() {
		a := st.Addr
		counter(descReceived, float64(st.Received), a)
		counter(descHandled, float64(st.Handled), a)
		counter(descBusy, float64(st.Busy), a)
		counter(descPanics, float64(st.Panics), a)
		counter(descBatches, float64(st.Batches), a)
		gauge(descMaxBatch, float64(st.MaxBatch), a)
		gauge(descDepth, float64(st.InboxDepth), a)
		counter(descSaves, float64(st.Saves), a)
		if st.Children {
			gauge(descResident, float64(st.Resident), a)
			counter(descLoaded, float64(st.Loaded), a)
			counter(descEvicted, float64(st.Evicted), a)
		}
	}
	j := c.s.journal.Stats()
	counter(descJAppended, float64(j.Appended))
	counter(descJAcked, float64(j.Acked))
	counter(descJFailed, float64(j.Failed))
	counter(descJBatches, float64(j.Batches))
	gauge(descJMaxBatch, float64(j.MaxBatch))
	counter(descJFsyncs, float64(j.Fsyncs))
	counter(descJFsyncSec, j.TotalFsync.Seconds())
	gauge(descJLastSync, j.LastFsync.Seconds())
	counter(descJBytes, float64(j.Bytes))
	gauge(descJSegments, float64(j.Segments))
	gauge(descJPending, float64(j.Pending))
	gauge(descJLastSeq, float64(j.LastSeq))
	up := 1.0
	if j.Err != nil {
		up = 0
	}
	gauge(descJUp, up)
	p := c.s.rooms.Counters()
	counter(descCreated, float64(p.Created))
	counter(descClosed, float64(p.Closed))
	gauge(descStreams, float64(p.Streams))
	gauge(descPooled, float64(c.s.streams.open()))
	counter(descHandoffs, float64(c.s.streams.handoffs.Load()))
	gauge(descLogs, float64(p.Logs))
	gauge(descKnown, float64(p.Known))
	gauge(descEvBytes, float64(p.EventBytes))
	h := c.s.health
	counter(descStorage, float64(h.diskFull.Load()), "disk_full")
	counter(descStorage, float64(h.journalFailed.Load()), "journal_failed")
	counter(descStorage, float64(h.corruptLoads.Load()), "checkpoint_corrupt")
	degraded := 0.0
	if len(h.problems()) > 0 {
		degraded = 1
	}
	gauge(descDegraded, degraded)
	gauge(descOpen, float64(p.Known))
	gauge(descMembers, float64(p.Members))
	st := c.s.store
	last := st.lastSave()
	if !last.IsZero() {
		gauge(descCPAge, time.Since(last).Seconds())
		gauge(descCPLast, float64(last.UnixNano())/1e9)
	} else {
		gauge(descCPLast, 0)
	}
	counter(descCPSaves, float64(st.saves.Load()))
	counter(descCPFails, float64(st.failures.Load()))
	gauge(descJDisk, float64(journalDiskBytes(c.s.journalDir())))
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// For the /status charts: all requests, those answered 503, and the
	// member commands (and joins) with their summed latency.
	total, unavailable, commands, commandNanos atomic.Uint64
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poker_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "poker_http_request_duration_seconds", Help: "HTTP request latency by route (event streams: their lifetime).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5, 30, 300},
		}, []string{"route"}),
	}
}

func (m *httpMetrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
	m.total.Add(1)
	if code == http.StatusServiceUnavailable {
		m.unavailable.Add(1)
	}
	if isCommand(route) {
		m.commands.Add(1)
		m.commandNanos.Add(uint64(d))
	}
}

// isCommand reports whether route is a member command or a join (a
// write on one room).
func isCommand(route string) bool {
	method, path, _ := strings.Cut(route, " ")
	return method != http.MethodGet && strings.HasPrefix(path, "/api/rooms/{room}")
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: nil})
}
