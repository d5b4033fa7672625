package server

// Result webhooks: a room created with "webhook" gets every finished round
// POSTed there, signed with HMAC-SHA256. The delivery is a durable job
// (package jobs) enqueued transactionally from the room's finish turn, so
// it exists iff the finish is durable, survives a kill -9, and is retried
// with exponential backoff and full jitter until it succeeds or is
// dead-lettered (shown on /status, counted on /metrics).
//
// SSRF: a webhook may not point at loopback, private, link-local or other
// non-public addresses unless Config.WebhookAllowPrivate. The host is
// resolved and every address checked when the room is created, again
// before each delivery, and the dialer refuses such an address at connect
// time — the last check is the one DNS rebinding cannot get around, since
// it sees the address actually dialled.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/poker"
)

// Webhook delivery defaults (see Config).
const (
	// WebhookQueue is the jobs queue of the deliveries (service
	// /jobs/webhooks).
	WebhookQueue = "webhooks"
	// SignatureHeader carries "sha256=" + hex(HMAC-SHA256(body, secret)).
	SignatureHeader = "X-Poker-Signature"

	defaultWebhookTimeout    = 10 * time.Second
	defaultWebhookBackoffMax = 5 * time.Minute
	defaultWebhookAttempts   = 10
	defaultWebhookWorkers    = 8
	// webhookBackoffBase is the first retry's window: the delay before
	// attempt n+1 is uniform in [0, min(max, base·2^(n-1))), so the first
	// retry comes within 4 s (the contract says 5) and the delays reach
	// the 5-minute cap from the 8th failure on.
	webhookBackoffBase = 4 * time.Second
	// webhookLease outlives one attempt (the HTTP timeout) with room to
	// spare; the worker heartbeats every third of it anyway. After a
	// kill -9 an attempt that was in flight runs again once it expires.
	webhookLease = 15 * time.Second
	// maxDeadShown bounds the dead letters listed on /status (newest).
	maxDeadShown = 20
)

// webhookArgs is a delivery job's arguments. The body is rendered in the
// room's turn and kept as bytes, so every attempt sends, and signs, the
// same bytes.
type webhookArgs struct {
	Room   string `json:"room"`
	Round  int    `json:"round"`
	URL    string `json:"url"`
	Secret string `json:"secret"`
	Body   []byte `json:"body"`
}

// webhookKind is the delivery job. Its handler finds the process's
// deliverer in its context: the Queues of a server are started with it
// (several servers in one test process each have their own).
var webhookKind = jobs.Define("poker.webhook", func(ctx context.Context, j *jobs.Job[webhookArgs]) error {
	h, _ := ctx.Value(webhooksKey{}).(*webhooks)
	if h == nil {
		return errors.New("webhook: no deliverer in this process's job context")
	}
	return h.deliver(ctx, j)
}, jobs.Queue(WebhookQueue))

type webhooksKey struct{}

// registerWebhooks registers the delivery queue on rt and returns the
// rooms' OnFinished hook, which enqueues a delivery from the finish turn.
func registerWebhooks(rt *reactor.Runtime, cfg Config) (*jobs.Queues, func(*reactor.Ctx, poker.Finished) error, error) {
	qs, err := jobs.New(rt, jobs.Config{Logger: cfg.Logger, Queues: map[string]jobs.QueueConfig{
		WebhookQueue: {
			Workers: cfg.WebhookWorkers, LeaseTime: webhookLease,
			// Housekeeping only prunes finished jobs (expired leases are
			// reaped when workers lease): a journaled tick a minute, not a
			// second, keeps an idle server's journal quiet.
			TickInterval: time.Minute,
			// A transactional enqueue fails only on a full inbox, and then
			// the delivery is lost: make that take a flood of finishes.
			InboxSize: 8192,
		},
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("server: webhook queue: %w", err)
	}
	opts := []jobs.Option{jobs.MaxAttempts(cfg.WebhookAttempts), jobs.Backoff(webhookBackoffBase, cfg.WebhookBackoffMax)}
	onFinished := func(c *reactor.Ctx, f poker.Finished) error {
		body, err := json.Marshal(f.Payload)
		if err != nil {
			return fmt.Errorf("webhook: encode payload: %w", err)
		}
		_, err = webhookKind.EnqueueTx(c, qs, webhookArgs{Room: f.Payload.Room, Round: f.Payload.Round,
			URL: f.Webhook.URL, Secret: f.Webhook.Secret, Body: body}, opts...)
		return err
	}
	return qs, onFinished, nil
}

// Sign returns the X-Poker-Signature value of body: "sha256=" and the hex
// HMAC-SHA256 of the body keyed with the room's webhook secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhooks delivers the webhook jobs of one server.
type webhooks struct {
	allowPrivate bool
	timeout      time.Duration
	client       *http.Client
	lookup       lookupFunc
	log          *slog.Logger

	attemptsOK, attemptsFailed atomic.Uint64 // by this process
}

type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func newWebhooks(cfg Config) *webhooks {
	h := &webhooks{allowPrivate: cfg.WebhookAllowPrivate, timeout: cfg.WebhookTimeout, lookup: lookupHost, log: cfg.Logger}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: h.control}
	h.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, past the address check
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: cfg.WebhookTimeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
		// A redirect is an answer, not a success: following it would let a
		// public host send us to a private one, and would turn the POST
		// into a GET.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return h
}

// control refuses, at connect time, an address a webhook may not reach:
// whatever DNS said when the room was created or a moment ago, this is the
// address actually dialled.
func (h *webhooks) control(_, address string, _ syscall.RawConn) error {
	if h.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: dial %q: %w", address, err)
	}
	if privateAddr(ap.Addr()) {
		return fmt.Errorf("webhook: refusing to connect to %s: %w", ap.Addr(), errPrivateAddr)
	}
	return nil
}

var errPrivateAddr = errors.New("loopback, private or reserved address (start the server with -webhook-allow-private to allow)")

// deliver makes one attempt: POST the body, signed; a 2xx answer within
// the timeout is a success, anything else an error (retried by the queue).
// Errors name the host only: a webhook's path often carries a secret.
func (h *webhooks) deliver(ctx context.Context, j *jobs.Job[webhookArgs]) (err error) {
	defer func() {
		if err != nil {
			h.attemptsFailed.Add(1)
		} else {
			h.attemptsOK.Add(1)
		}
	}()
	a := j.Args
	u, err := url.Parse(a.URL)
	if err != nil {
		return jobs.Permanent(errors.New("webhook: the URL no longer parses"))
	}
	host := u.Hostname()
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if !h.allowPrivate {
		// Before the connection as well as at it, for a clear error; the
		// dialer's check is the one that holds.
		if err := checkHost(ctx, host, h.lookup); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(a.Body))
	if err != nil {
		return jobs.Permanent(fmt.Errorf("webhook: request to %s: %w", host, errors.Unwrap(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reactor-poker-webhook/1")
	req.Header.Set(SignatureHeader, Sign(a.Secret, a.Body))
	// The delivery id is the same on every attempt: receivers deduplicate
	// with it (delivery is at least once).
	req.Header.Set("X-Poker-Delivery", j.ID)
	req.Header.Set("X-Poker-Attempt", strconv.Itoa(j.Attempt))
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: POST to %s: %w", host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: %s answered %s", host, resp.Status)
	}
	h.log.Debug("webhook: delivered", "room", a.Room, "round", a.Round, "host", host, "attempt", j.Attempt)
	return nil
}

// admit checks the webhook of a create request before the room exists:
// its shape, and that every address its host resolves to may be reached.
// It answers 400 invalid_webhook otherwise.
func (h *webhooks) admit(ctx context.Context, raw string) error {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := checkWebhookURL(ctx, raw, h.allowPrivate, h.lookup); err != nil {
		return &gateway.BodyError{Status: http.StatusBadRequest, Code: "invalid_webhook", Field: "webhook", Msg: err.Error()}
	}
	return nil
}

// checkWebhookURL validates a webhook URL: absolute http(s) with a host,
// and unless allowPrivate, a host that resolves only to public addresses.
func checkWebhookURL(ctx context.Context, raw string, allowPrivate bool, lookup lookupFunc) error {
	if len(raw) > poker.MaxWebhookLen {
		return fmt.Errorf("webhook must be at most %d bytes", poker.MaxWebhookLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("webhook is not a valid URL")
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return errors.New("webhook must be an http:// or https:// URL")
	}
	host := u.Hostname()
	if u.Opaque != "" || host == "" {
		return errors.New("webhook must name a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("webhook port must be 1-65535")
		}
	}
	if allowPrivate {
		return nil
	}
	return checkHost(ctx, host, lookup)
}

// checkHost resolves host and refuses it if any of its addresses is not
// public (one private answer is enough for a rebinding resolver to pick).
func checkHost(ctx context.Context, host string, lookup lookupFunc) error {
	addrs, err := lookup(ctx, host)
	if err != nil {
		return fmt.Errorf("webhook host %q does not resolve: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("webhook host %q has no address", host)
	}
	for _, a := range addrs {
		if privateAddr(a) {
			return fmt.Errorf("webhook host %q resolves to %s: %w", host, a.Unmap(), errPrivateAddr)
		}
	}
	return nil
}

// lookupHost resolves with the system's resolver (an IP literal is itself).
func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) {
			return nil, errors.New(de.Err) // without the resolver's address
		}
		return nil, err
	}
	return addrs, nil
}

var (
	// Ranges that are not public beyond what netip's predicates cover.
	reservedPrefixes = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
		netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, shared address space
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // documentation
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // documentation
		netip.MustParsePrefix("203.0.113.0/24"),  // documentation
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
		netip.MustParsePrefix("100::/64"),        // discard
		netip.MustParsePrefix("2001::/32"),       // Teredo: tunnels to an address it hides
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
		netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated, still routed inside some sites)
	}
	// IPv6 forms carrying an IPv4 address: judged by that address.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4compat  = netip.MustParsePrefix("::/96")
)

// privateAddr reports whether a webhook may not reach a: loopback, private
// (RFC 1918, ULA), link-local (169.254.0.0/16 holds cloud metadata
// endpoints), unspecified, multicast, reserved, or an IPv6 address that
// embeds such an IPv4 address.
func privateAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() {
		return true
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, p := range reservedPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64Loc.Contains(a):
			return true // local-use NAT64: its mapping is the site's own
		case nat64.Contains(a), v4compat.Contains(a):
			return privateAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return privateAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return false
}

// --- /status and /metrics ---

// webhookStatus is the /status section of the deliveries.
type webhookStatus struct {
	Stats     jobs.Stats
	Err       string
	Dead      []deadDelivery
	DeadTotal int
	// Attempts made by this process, by outcome.
	AttemptsOK, AttemptsFailed uint64
}

type deadDelivery struct {
	ID        string
	Room      string // a prefix: the status page is public, a room id is a capability
	Host      string
	Round     int
	Attempts  int
	LastError string
	DiedAt    time.Time
}

// webhookStatusPage is the section of the status page; status.go includes
// it with {{template "webhooks" .Webhooks}}.
var webhookStatusPage = template.Must(statusPage.New("webhooks").Parse(`
<h2>Webhook deliveries</h2>
{{if .Err}}<p>unavailable: {{.Err}}</p>{{else}}
<table data-testid="status-webhooks"><tbody>
<tr><th>pending (due now)</th><td>{{.Stats.Pending}} ({{.Stats.Due}})</td></tr>
<tr><th>running</th><td>{{.Stats.Running}}</td></tr>
<tr><th>delivered</th><td>{{.Stats.Completed}}</td></tr>
<tr><th>failed attempts</th><td>{{.Stats.Failed}}</td></tr>
<tr><th>attempts by this process (ok / failed)</th><td>{{.AttemptsOK}} / {{.AttemptsFailed}}</td></tr>
<tr><th>oldest due waits</th><td>{{.Stats.OldestDue}}</td></tr>
<tr><th>dead letters</th><td data-testid="webhook-dead">{{.Stats.Dead}}</td></tr>
</tbody></table>
{{if .Dead}}<table data-testid="status-webhook-dead"><thead><tr><th>delivery</th><th>room</th><th>round</th><th>host</th><th>attempts</th><th>dead since</th><th>last error</th></tr></thead>
<tbody>{{range .Dead}}<tr><td>{{.ID}}</td><td>{{.Room}}…</td><td>{{.Round}}</td><td>{{.Host}}</td><td>{{.Attempts}}</td><td>{{.DiedAt.Format "2006-01-02 15:04:05Z07:00"}}</td><td>{{.LastError}}</td></tr>
{{end}}</tbody></table>{{if gt .DeadTotal (len .Dead)}}<p>the newest {{len .Dead}} of {{.DeadTotal}} shown</p>{{end}}{{end}}
{{end}}`))

func (s *Server) webhookStatus(ctx context.Context) *webhookStatus {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := &webhookStatus{AttemptsOK: s.hooks.attemptsOK.Load(), AttemptsFailed: s.hooks.attemptsFailed.Load()}
	st, err := s.webhookStats(ctx)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Stats = st
	if st.Dead == 0 {
		return out
	}
	var dead []jobs.Info
	for _, qs := range s.webhookQueues() {
		d, err := qs.Dead(ctx, WebhookQueue, 0)
		if err != nil {
			out.Err = err.Error()
			return out
		}
		dead = append(dead, d...)
	}
	slices.SortFunc(dead, func(a, b jobs.Info) int { return a.FinishedAt.Compare(b.FinishedAt) })
	out.DeadTotal = len(dead)
	for i := len(dead) - 1; i >= 0 && len(out.Dead) < maxDeadShown; i-- {
		out.Dead = append(out.Dead, describeDead(dead[i]))
	}
	return out
}

func describeDead(j jobs.Info) deadDelivery {
	d := deadDelivery{ID: j.ID, Attempts: j.Attempt, DiedAt: j.FinishedAt}
	var a webhookArgs
	if json.Unmarshal(j.Args, &a) == nil {
		d.Room, d.Round = a.Room[:min(6, len(a.Room))], a.Round
		if u, err := url.Parse(a.URL); err == nil {
			d.Host = u.Host
		}
	}
	if n := len(j.Errors); n > 0 {
		d.LastError = j.Errors[n-1].Error
	}
	return d
}

// webhookQueues are the queues this server delivers from: its own, or in
// cluster mode those of the partitions it serves now.
func (s *Server) webhookQueues() []*jobs.Queues {
	if s.nats != nil {
		return s.nats.webhookQueues()
	}
	return []*jobs.Queues{s.jobs}
}

// webhookStats sums the webhook queues' figures (in cluster mode: of the
// rooms this node owns now).
func (s *Server) webhookStats(ctx context.Context) (jobs.Stats, error) {
	sum := jobs.Stats{Queue: WebhookQueue}
	for _, qs := range s.webhookQueues() {
		all, err := qs.Stats(ctx)
		if err != nil {
			return jobs.Stats{}, fmt.Errorf("webhook queue stats: %w", err)
		}
		i := slices.IndexFunc(all, func(st jobs.Stats) bool { return st.Queue == WebhookQueue })
		if i < 0 {
			return jobs.Stats{}, errors.New("webhook queue missing")
		}
		st := all[i]
		sum.Pending += st.Pending
		sum.Due += st.Due
		sum.Running += st.Running
		sum.Dead += st.Dead
		sum.Completed += st.Completed
		sum.Failed += st.Failed
		sum.OldestDue = max(sum.OldestDue, st.OldestDue)
	}
	return sum, nil
}

// webhookCollector exports the deliveries on /metrics. The queue's counts
// are durable (they survive restarts); the attempt counters are this
// process's.
type webhookCollector struct{ s *Server }

var (
	descHookJobs     = prometheus.NewDesc("poker_webhook_deliveries", "Webhook deliveries in the queue, by state (pending, running, dead).", []string{"state"}, nil)
	descHookDead     = prometheus.NewDesc("poker_webhook_dead_letters", "Webhook deliveries dead-lettered (out of attempts) and not purged.", nil, nil)
	descHookDone     = prometheus.NewDesc("poker_webhook_delivered_total", "Webhook deliveries completed (a 2xx answer).", nil, nil)
	descHookFailed   = prometheus.NewDesc("poker_webhook_failed_attempts_total", "Webhook delivery attempts that failed (non-2xx, timeout, refused, lease lost).", nil, nil)
	descHookOldest   = prometheus.NewDesc("poker_webhook_oldest_due_seconds", "How long the oldest due webhook delivery has waited.", nil, nil)
	descHookAttempts = prometheus.NewDesc("poker_webhook_attempts_total", "Webhook delivery attempts made by this process, by result (ok, error).", []string{"result"}, nil)
)

func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descHookAttempts, prometheus.CounterValue, float64(c.s.hooks.attemptsOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descHookAttempts, prometheus.CounterValue, float64(c.s.hooks.attemptsFailed.Load()), "error")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.s.webhookStats(ctx)
	if err != nil {
		return // a scrape during shutdown: the queue's series are absent once
	}
	for state, n := range map[string]int{"pending": st.Pending, "running": st.Running, "dead": st.Dead} {
		ch <- prometheus.MustNewConstMetric(descHookJobs, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descHookDead, prometheus.GaugeValue, float64(st.Dead))
	ch <- prometheus.MustNewConstMetric(descHookDone, prometheus.CounterValue, float64(st.Completed))
	ch <- prometheus.MustNewConstMetric(descHookFailed, prometheus.CounterValue, float64(st.Failed))
	ch <- prometheus.MustNewConstMetric(descHookOldest, prometheus.GaugeValue, st.OldestDue.Seconds())
}
