package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cmd/poker/web"
	"github.com/reactorgo/reactor/eventlog"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/poker"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	ui := gateway.SecureHeaders(http.HandlerFunc(s.index))
	m.Handle("GET /{$}", ui)
	m.Handle("GET /r/{room}", ui)
	static := gateway.SecureHeaders(http.FileServerFS(web.FS))
	for _, name := range []string{"/app.js", "/app.css", "/favicon.svg"} {
		m.Handle("GET "+name, static)
	}
	m.HandleFunc("POST /api/rooms", s.createRoom)
	m.HandleFunc("GET /api/rooms/{room}", s.getRoom)
	m.HandleFunc("POST /api/rooms/{room}/members", s.join)
	m.HandleFunc("DELETE /api/rooms/{room}/members/{member}", s.removeMember)
	m.HandleFunc("POST /api/rooms/{room}/session", s.startSession)
	m.HandleFunc("POST /api/rooms/{room}/session/finish", s.finishSession)
	m.HandleFunc("POST /api/rooms/{room}/votes", s.vote)
	m.HandleFunc("POST /api/rooms/{room}/session/revote", s.revote)
	m.HandleFunc("POST /api/rooms/{room}/session/next", s.nextStory)
	m.HandleFunc("POST /api/rooms/{room}/queue", s.queueAppend)
	m.HandleFunc("PUT /api/rooms/{room}/queue", s.queueReplace)
	m.HandleFunc("POST /api/rooms/{room}/estimate", s.estimate)
	m.HandleFunc("POST /api/rooms/{room}/leader", s.handOver)
	m.HandleFunc("POST /api/rooms/{room}/members/{member}/role", s.setRole)
	m.HandleFunc("GET /api/rooms/{room}/history", s.history)
	m.HandleFunc("GET /api/rooms/{room}/events", s.events)
	m.HandleFunc("POST /api/rooms/{room}/settings", s.settings)
	m.HandleFunc("POST /api/rooms/{room}/session/timer", s.timer)
	m.HandleFunc("GET /api/config", s.config)
	m.HandleFunc("/api/", s.noRoute)
	m.Handle("/", gateway.SecureHeaders(http.HandlerFunc(s.noRoute)))
	m.HandleFunc("GET /healthz", s.healthz)
	s.adminRoutes(m, s.adminGate)
	s.mux = m
}

// noRoute answers a request no route took: 405 with Allow when the path
// exists for other methods; otherwise 404, as JSON under /api/ and as a
// page a person can use elsewhere (a mistyped or truncated link).
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := s.mux.Handler(probe); pattern != "/api/" && pattern != "/" && pattern != "" {
			allow = append(allow, method)
		}
	}
	if len(allow) == 0 {
		if strings.HasPrefix(r.URL.Path, "/api/") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			gateway.Error(w, http.StatusNotFound, "not_found", "no such API endpoint")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(notFoundPage)
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	gateway.Error(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+strings.Join(allow, " or "))
}

// notFoundPage is the page of an unknown path.
var notFoundPage = []byte(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page not found · Planning poker</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/app.css"></head>
<body>
<header class="topbar"><a class="brand" href="/"><span class="brand-mark" aria-hidden="true">5</span> Planning poker</a></header>
<main id="main"><section class="view" data-testid="not-found">
<div class="card panel"><h1>Page not found</h1>
<p>There is nothing at this address. An invite link looks like <code>/r/</code> followed by 26 letters and digits: check that it was copied whole.</p>
<p><a class="btn btn-primary" href="/">Create a room</a></p></div>
</section></main></body></html>
`)

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(web.FS, "index.html")
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func newErrorMapper(log *slog.Logger) *gateway.ErrorMapper {
	m := &gateway.ErrorMapper{Logger: log}
	m.Map(poker.ErrRoomNotFound, http.StatusNotFound, "room_not_found", "room not found")
	m.Map(poker.ErrNameTaken, http.StatusConflict, "name_taken", "this name is already used in the room")
	m.Map(poker.ErrRoomFull, http.StatusConflict, "room_full", "the room is full")
	m.Map(poker.ErrUnauthorized, http.StatusUnauthorized, "unauthorized", "missing or invalid token")
	m.Map(poker.ErrForbidden, http.StatusForbidden, "forbidden", "not allowed")
	m.Map(poker.ErrMemberNotFound, http.StatusNotFound, "member_not_found", "no such member in this room")
	m.Map(poker.ErrRoomExists, http.StatusConflict, "room_exists", "room exists")
	m.Map(poker.ErrClosed, http.StatusServiceUnavailable, "shutting_down", "server is shutting down, retry later")
	m.Map(poker.ErrTooManyRooms, http.StatusServiceUnavailable, "too_many_rooms", "the server holds as many rooms as it may; retry later")
	m.Map(poker.ErrNoRound, http.StatusConflict, "no_round", "no round has been finished yet")
	m.Map(poker.ErrQueueEmpty, http.StatusConflict, "queue_empty", "no story is queued")
	m.Map(poker.ErrQueueFull, http.StatusConflict, "queue_full", "the story queue is full")
	m.Map(poker.ErrTooManyStreams, http.StatusTooManyRequests, "too_many_streams", "this member has as many event streams open as it may")
	return m
}

// errorBody is the JSON error body, with the offending field for 400s.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	s.health.observe(err)
	var (
		inv    *poker.InvalidError
		body   *gateway.BodyError
		denied *poker.ForbiddenError
	)
	switch {
	case errors.As(err, &inv):
		gateway.JSON(w, http.StatusBadRequest, errorBody{Error: "invalid_body", Message: inv.Msg, Field: inv.Field})
	case errors.As(err, &body) && body.Status == http.StatusBadRequest:
		gateway.JSON(w, body.Status, errorBody{Error: body.Code, Message: body.Msg, Field: body.Field})
	case errors.As(err, &denied):
		gateway.Error(w, http.StatusForbidden, "forbidden", denied.Reason)
	default:
		s.errs.WriteError(w, err)
	}
}

// bearer returns the token of "Authorization: Bearer <token>", or "".
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// commandContext returns the request's context, carrying its
// Idempotency-Key (if any) for the runtime: a retried command with the same
// key, from the same member, gets the first answer and is not applied twice,
// also across a restart. The key is scoped by a hash of the member's token,
// so two members' keys never collide and the token never reaches the
// journal.
func commandContext(r *http.Request) (context.Context, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return r.Context(), nil
	}
	if len(key) > 64 || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		return nil, &gateway.BodyError{Status: http.StatusBadRequest, Code: "invalid_idempotency_key",
			Field: "Idempotency-Key", Msg: "Idempotency-Key must be 1-64 printable ASCII characters"}
	}
	scope := hex.EncodeToString(poker.HashToken(bearer(r))[:8])
	return reactor.WithIdempotencyKey(r.Context(), scope+":"+key), nil
}

type accepted struct {
	Status string `json:"status"`
}

func (s *Server) createRoom(w http.ResponseWriter, r *http.Request) {
	if s.creates.limited(w, r) {
		return
	}
	var req poker.CreateRequest
	if err := gateway.DecodeJSON(w, r, &req, MaxBodyBytes); err != nil {
		s.writeError(w, err)
		return
	}
	if err := s.hooks.admit(r.Context(), req.Webhook); err != nil {
		s.writeError(w, err)
		return
	}
	creds, err := s.rooms.Create(s.autoKeyed(r.Context()), req)
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Location", "/api/rooms/"+creds.Room)
	gateway.JSON(w, http.StatusCreated, creds)
}

func (s *Server) getRoom(w http.ResponseWriter, r *http.Request) {
	v, err := s.rooms.State(r.Context(), r.PathValue("room"), bearer(r))
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	gateway.JSON(w, http.StatusOK, v)
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req poker.JoinRequest
	if err := gateway.DecodeJSON(w, r, &req, MaxBodyBytes); err != nil {
		s.writeError(w, err)
		return
	}
	creds, err := s.rooms.Join(s.autoKeyed(r.Context()), r.PathValue("room"), req)
	if err != nil {
		s.writeError(w, err)
		return
	}
	gateway.JSON(w, http.StatusCreated, creds)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) {
	var req poker.StartRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Start(ctx, r.PathValue("room"), bearer(r), req) })
}

func (s *Server) vote(w http.ResponseWriter, r *http.Request) {
	var req poker.VoteRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Vote(ctx, r.PathValue("room"), bearer(r), req) })
}

func (s *Server) finishSession(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, nil, func(ctx context.Context) error { return s.rooms.Finish(ctx, r.PathValue("room"), bearer(r)) })
}

func (s *Server) revote(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, nil, func(ctx context.Context) error { return s.rooms.Revote(ctx, r.PathValue("room"), bearer(r)) })
}

func (s *Server) nextStory(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, nil, func(ctx context.Context) error { return s.rooms.Next(ctx, r.PathValue("room"), bearer(r)) })
}

func (s *Server) queueAppend(w http.ResponseWriter, r *http.Request) {
	var req poker.QueueRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Queue(ctx, r.PathValue("room"), bearer(r), req, false) })
}

func (s *Server) queueReplace(w http.ResponseWriter, r *http.Request) {
	var req poker.QueueRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Queue(ctx, r.PathValue("room"), bearer(r), req, true) })
}

func (s *Server) estimate(w http.ResponseWriter, r *http.Request) {
	var req poker.EstimateRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Estimate(ctx, r.PathValue("room"), bearer(r), req) })
}

func (s *Server) handOver(w http.ResponseWriter, r *http.Request) {
	var req poker.LeaderRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.HandOver(ctx, r.PathValue("room"), bearer(r), req) })
}

func (s *Server) setRole(w http.ResponseWriter, r *http.Request) {
	var req poker.RoleRequest
	s.command(w, r, &req, func(ctx context.Context) error {
		return s.rooms.SetRole(ctx, r.PathValue("room"), bearer(r), r.PathValue("member"), req)
	})
}

// historyBody is the JSON answer of GET …/history.
type historyBody struct {
	Rounds []poker.Round `json:"rounds"`
}

// history answers the room's finished rounds, oldest first: JSON by
// default, CSV (one header row, one row per round) with ?format=csv.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		gateway.JSON(w, http.StatusBadRequest, errorBody{Error: "invalid_query", Field: "format",
			Message: `format must be "json" or "csv"`})
		return
	}
	rounds, err := s.rooms.History(r.Context(), r.PathValue("room"), bearer(r))
	if err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if format != "csv" {
		if rounds == nil {
			rounds = []poker.Round{}
		}
		gateway.JSON(w, http.StatusOK, historyBody{Rounds: rounds})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="planning-poker-history.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = writeHistoryCSV(w, rounds)
}

func (s *Server) settings(w http.ResponseWriter, r *http.Request) {
	var req poker.SettingsRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Settings(ctx, r.PathValue("room"), bearer(r), req) })
}

func (s *Server) timer(w http.ResponseWriter, r *http.Request) {
	var req poker.TimerRequest
	s.command(w, r, &req, func(ctx context.Context) error { return s.rooms.Timer(ctx, r.PathValue("room"), bearer(r), req) })
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	gateway.JSON(w, http.StatusOK, configBody{PublicURL: s.cfg.PublicURL, TimerMin: poker.MinTimer, TimerMax: poker.MaxTimer})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	s.command(w, r, nil, func(ctx context.Context) error {
		return s.rooms.Remove(ctx, r.PathValue("room"), bearer(r), r.PathValue("member"))
	})
}

// command runs a member command: decode the body into req (nil: the body
// is optional and unused), attach the Idempotency-Key, run, answer 202.
func (s *Server) command(w http.ResponseWriter, r *http.Request, req any, run func(ctx context.Context) error) {
	var err error
	if req != nil {
		err = gateway.DecodeJSON(w, r, req, MaxBodyBytes)
	} else {
		err = drainBody(w, r)
	}
	if err != nil {
		s.writeError(w, err)
		return
	}
	ctx, err := commandContext(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if r.Header.Get("Idempotency-Key") == "" {
		ctx = s.autoKeyed(ctx)
	}
	s.reply(w, run(ctx))
}

// autoKeyed gives a command without an Idempotency-Key a key of its own in
// cluster mode, so that the node may send it again after a timeout (its
// owner died or handed its room off mid-call) without the room applying it
// twice. Elsewhere the command goes as it is.
func (s *Server) autoKeyed(ctx context.Context) context.Context {
	if s.nats == nil {
		return ctx
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return reactor.WithIdempotencyKey(ctx, "auto:"+hex.EncodeToString(b[:]))
}

// drainBody accepts an empty body, or a JSON one within the size limit
// (its content is not used).
func drainBody(w http.ResponseWriter, r *http.Request) error {
	if r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	var v json.RawMessage
	err := gateway.DecodeJSON(w, r, &v, MaxBodyBytes)
	var be *gateway.BodyError
	if errors.As(err, &be) && be.Code == "invalid_body" && errors.Is(err, io.EOF) {
		return nil // chunked but empty
	}
	return err
}

func (s *Server) reply(w http.ResponseWriter, err error) {
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.health.ok()
	gateway.JSON(w, http.StatusAccepted, accepted{Status: "accepted"})
}

// events streams a member's events: a snapshot (or the events missed since
// Last-Event-ID), then live events with heartbeats. A member's stream ends
// right after the event that removes the member.
//
// The connection is taken over from net/http (gateway.DetachStream) and
// the handler returns once the snapshot is written: the stream is then
// served by the stream writers (streams.go), so an open stream costs the
// socket, a cursor into the room's event log and a few hundred bytes — no
// goroutine, no serving goroutine, background reader or bufio buffers.
// Where the connection cannot be taken over (HTTP/2), the stream is served
// inside the handler.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	token := bearer(r)
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	last, _ := strconv.ParseUint(gateway.LastEventID(r), 10, 64)
	sub, err := s.rooms.Subscribe(r.Context(), r.PathValue("room"), token, r.URL.Query().Get("member"), last)
	if err != nil {
		s.writeError(w, err)
		return
	}
	if r.Method == http.MethodHead { // the headers a GET would get, no stream
		sub.Close()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		return
	}
	st, err := gateway.DetachStream(w, r, s.cfg.WriteTimeout)
	if err == nil {
		if !s.streams.serve(st, sub) {
			st.Close() // shutting down: the client reconnects
			sub.Close()
		}
		return
	}
	if !errors.Is(err, http.ErrNotSupported) {
		sub.Close()
		return // the connection was taken over, or failed
	}
	if st, err = gateway.NewStreamTimeout(w, r, s.cfg.WriteTimeout); err != nil {
		sub.Close()
		gateway.Error(w, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	s.serveStream(st, sub)
}

// eventBufs recycles the slices events are read into between wake-ups, so
// an idle stream holds none.
var eventBufs = sync.Pool{New: func() any { return new([]eventlog.Event) }}

// serveStream writes a member's stream from a goroutine of its own (an
// in-handler stream, or a slow client's handed off by the stream writers)
// until the client goes away, the
// member is removed, the room closes, the server stops or the client falls
// so far behind that the room's log no longer holds what it has not read
// (it then reconnects with Last-Event-ID and gets a fresh snapshot).
// Events already waiting are written together, in one write.
func (s *Server) serveStream(st *gateway.Stream, sub *poker.Subscription) {
	defer st.Close()
	defer sub.Close()
	if err := st.Retry(2 * time.Second); err != nil {
		return
	}
	if sub.Snapshot != nil {
		err := st.Send(*sub.Snapshot)
		sub.Snapshot = nil // ~1 KiB a stream would otherwise hold for its lifetime
		if err != nil {
			return
		}
	}
	phase := s.beat.phase()
	lastWrite := time.Now()
	for {
		bp := eventBufs.Get().(*[]eventlog.Event)
		evs, end := sub.Sub.Next((*bp)[:0])
		for i, e := range evs {
			if removes(e, sub.Member) {
				evs, end = evs[:i+1], errRemoved
				break
			}
		}
		err := st.SendAll(evs)
		if len(evs) > 0 {
			lastWrite = time.Now()
		}
		clear(evs)
		*bp = evs[:0]
		eventBufs.Put(bp)
		if err != nil || end != nil {
			return // room closed, server stopping, member removed, or this client fell behind: it reconnects
		}
		select {
		case <-st.Context().Done():
			return
		case <-sub.Sub.Ready():
		case <-s.beat.C(phase):
			if time.Since(lastWrite) >= s.cfg.Heartbeat/2 {
				if err := st.Comment("ping"); err != nil {
					return
				}
				lastWrite = time.Now()
			}
		}
	}
}

var errRemoved = errors.New("member removed")

// removes reports whether e removes member from the room.
func removes(e eventlog.Event, member string) bool {
	if e.Type != "member_left" {
		return false
	}
	var d struct {
		Member string `json:"member"`
	}
	return json.Unmarshal(e.Data, &d) == nil && d.Member == member
}

// healthz answers 200 {"status":"ok"}, or 503 {"status":"degraded",
// "error":…, "problems":[…]} with Retry-After while storage fails: the
// journal fail-stopped (error journal_failed: restart), the disk is full
// (storage_full: until the journal accepts writes again), or room
// checkpoints were found corrupt (checkpoint_corrupt: until repaired).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if !s.nats.ready() {
		w.Header().Set("Retry-After", "1")
		gateway.JSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "starting", "error": "not_serving", "message": "the node is not connected to NATS or owns no rooms yet",
		})
		return
	}
	p := s.health.problems()
	if len(p) == 0 {
		gateway.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	code := "checkpoint_corrupt"
	switch {
	case s.journal.Stats().Err != nil:
		code = "journal_failed"
	case s.health.full.Load():
		code = "storage_full"
	}
	w.Header().Set("Retry-After", strconv.Itoa(gateway.RetryAfterStorageSeconds))
	gateway.JSON(w, http.StatusServiceUnavailable, map[string]any{
		"status": "degraded", "error": code, "message": joinProblems(p), "problems": p,
	})
}
