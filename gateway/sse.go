package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reactorgo/reactor/eventlog"
)

// DefaultHeartbeat is the interval of keep-alive comments on a [Stream].
const DefaultHeartbeat = 15 * time.Second

// ErrStreamUnsupported is returned by [NewStream] when the ResponseWriter
// cannot flush.
var ErrStreamUnsupported = errors.New("gateway: response writer cannot stream")

// Stream writes Server-Sent Events to one HTTP response. It is not safe
// for concurrent use: one goroutine (the handler's) writes to it.
type Stream struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context
	lastID string
	buf    bytes.Buffer

	// Detached streams (DetachStream) write to the hijacked connection.
	conn         net.Conn
	cancel       context.CancelFunc
	writeTimeout time.Duration
	// pending: a write that gave up early (the *Within methods) left
	// buf[off:] unsent; it goes out before anything else.
	pending bool
	off     int
}

// DefaultWriteTimeout bounds each write of a detached stream (see
// [DetachStream]).
const DefaultWriteTimeout = 10 * time.Second

// DetachStream starts an event stream like [NewStream], but takes the
// connection over from net/http (http.Hijacker), so that the handler can
// return and the stream be served from any goroutine: the connection's
// serving goroutine, its background reader, its bufio buffers (8 KiB) and
// its chunked-encoding buffer are released, which makes an idle stream
// several times cheaper in memory. The response is HTTP/1.x with
// "Connection: close" and no chunking (the body ends when the connection
// closes); headers already set on w are sent too.
//
// The caller must Close the stream when done. A detached stream does not
// read from the client: a client that went away is noticed by the next
// write failing (send heartbeats), and every write gives up after
// writeTimeout (0: [DefaultWriteTimeout]) so a client that stops reading
// cannot hold the stream. Its Context is done once the stream is closed or
// a write failed.
//
// When w cannot be hijacked (HTTP/2, a recorder in tests) DetachStream
// returns [http.ErrNotSupported] (or the Hijack error) before writing
// anything: use NewStream and serve the stream within the handler then.
func DetachStream(w http.ResponseWriter, r *http.Request, writeTimeout time.Duration) (*Stream, error) {
	if r.ProtoMajor != 1 {
		return nil, http.ErrNotSupported
	}
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	h := w.Header().Clone()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	// The hijacked buffers are not used: writes go straight to conn.
	brw.Reader.Reset(nil)
	brw.Writer.Reset(nil)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{ctx: ctx, cancel: cancel, conn: conn, writeTimeout: writeTimeout, lastID: LastEventID(r)}
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	b := s.getBuf()
	b.WriteString("HTTP/1.")
	b.WriteString(strconv.Itoa(r.ProtoMinor))
	b.WriteString(" 200 OK\r\n")
	_ = h.Write(b)
	b.WriteString("\r\n")
	if err := s.write(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close ends a detached stream: it closes the connection (the client's
// EventSource reconnects). For a stream made by NewStream it does nothing
// (the stream ends when the handler returns).
func (s *Stream) Close() error {
	if s.conn == nil {
		return nil
	}
	s.cancel()
	return s.conn.Close()
}

// Detached reports whether the stream was made by [DetachStream].
func (s *Stream) Detached() bool { return s.conn != nil }

// bufPool holds the write buffers of detached streams between writes, so
// an idle stream holds none.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// getBuf returns the stream's buffer, reset — or, while a write left a
// part unsent ([Stream.Pending]), with that part still in it, so that it
// goes out first.
func (s *Stream) getBuf() *bytes.Buffer {
	if s.conn != nil && s.buf.Cap() == 0 {
		pb := bufPool.Get().(*bytes.Buffer)
		s.buf = *pb
		*pb = bytes.Buffer{}
		bufPool.Put(pb)
	}
	if !s.pending {
		s.buf.Reset()
	}
	return &s.buf
}

// putBuf hands a detached stream's buffer back to the pool.
func (s *Stream) putBuf() {
	if s.conn == nil || s.buf.Cap() == 0 || s.buf.Cap() > 64<<10 {
		s.buf = bytes.Buffer{}
		return
	}
	pb := bufPool.Get().(*bytes.Buffer)
	*pb = s.buf
	s.buf = bytes.Buffer{}
	pb.Reset()
	bufPool.Put(pb)
}

// NewStream starts an event stream on w: it sets the SSE headers
// (text/event-stream, no caching, no proxy buffering), clears the write
// deadline the server may have set, sends the 200 status and flushes.
// It fails with [ErrStreamUnsupported] when w cannot flush, before writing
// anything, so the caller may still send an error.
func NewStream(w http.ResponseWriter, r *http.Request) (*Stream, error) {
	return NewStreamTimeout(w, r, 0)
}

// NewStreamTimeout is [NewStream] with a limit on each write: before every
// write the response's write deadline is moved writeTimeout ahead
// (http.ResponseController), so the stream outlives Server.WriteTimeout
// while a client that stops reading is dropped within writeTimeout once
// its buffers are full. 0 means no limit (the deadline is cleared once).
func NewStreamTimeout(w http.ResponseWriter, r *http.Request, writeTimeout time.Duration) (*Stream, error) {
	rc := http.NewResponseController(w)
	// Probe for flushing without flushing: a Flush before WriteHeader would
	// commit the response with default headers (no text/event-stream).
	if !canFlush(w) {
		return nil, ErrStreamUnsupported
	}
	// Best effort: a long-lived stream must outlive Server.WriteTimeout.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	s := &Stream{w: w, rc: rc, ctx: r.Context(), lastID: LastEventID(r), writeTimeout: writeTimeout}
	if err := s.deadline(); err != nil {
		return s, err
	}
	return s, s.flush()
}

// canFlush reports whether w, or a writer it wraps (Unwrap, as
// http.ResponseController follows), can flush.
func canFlush(w http.ResponseWriter) bool {
	for w != nil {
		switch w.(type) {
		case http.Flusher, interface{ FlushError() error }:
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// LastEventID returns the id the client last saw: the Last-Event-ID
// header sent by a reconnecting EventSource or, failing that, the
// lastEventId query parameter (for a first connection that resumes).
func LastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("lastEventId")
}

// LastEventID returns the Last-Event-ID the client sent, "" if none.
func (s *Stream) LastEventID() string { return s.lastID }

// Context returns the request's context, done when the client goes away.
func (s *Stream) Context() context.Context { return s.ctx }

// Send writes one event and flushes it. A zero ID writes no id field (the
// client keeps its previous last event id); an empty Type means the
// default "message" event. e.To is not looked at.
func (s *Stream) Send(e eventlog.Event) error {
	s.appendLogEvent(s.getBuf(), e)
	return s.write()
}

// SendRaw writes one event with the given fields and flushes it. Line
// breaks in id and event are removed; data is split on CRLF, CR and LF
// into several data lines, which the client joins back with "\n".
func (s *Stream) SendRaw(id, event string, data []byte) error {
	s.appendEvent(s.getBuf(), id, event, data)
	return s.write()
}

// SendAll writes events (as [Stream.Send] does, skipping none) with one
// write and one flush.
func (s *Stream) SendAll(events []eventlog.Event) error {
	if len(events) == 0 {
		return nil
	}
	b := s.getBuf()
	for _, e := range events {
		s.appendLogEvent(b, e)
	}
	return s.write()
}

// appendLogEvent appends an event of a log: a zero ID writes no id field.
func (s *Stream) appendLogEvent(b *bytes.Buffer, e eventlog.Event) {
	id := ""
	if e.ID != 0 {
		id = strconv.FormatUint(e.ID, 10)
	}
	s.appendEvent(b, id, e.Type, e.Data)
}

func (s *Stream) appendEvent(b *bytes.Buffer, id, event string, data []byte) {
	if id != "" {
		b.WriteString("id: ")
		b.WriteString(oneLine(id))
		b.WriteByte('\n')
	}
	if event != "" {
		b.WriteString("event: ")
		b.WriteString(oneLine(event))
		b.WriteByte('\n')
	}
	writeField(b, "data", data)
	b.WriteByte('\n')
}

// Comment writes a comment line (ignored by clients, keeps proxies and
// the connection alive).
func (s *Stream) Comment(text string) error {
	b := s.getBuf()
	writeField(b, "", []byte(text))
	b.WriteByte('\n')
	return s.write()
}

// Retry tells the client how long to wait before reconnecting.
func (s *Stream) Retry(d time.Duration) error {
	b := s.getBuf()
	b.WriteString("retry: ")
	b.WriteString(strconv.FormatInt(d.Milliseconds(), 10))
	b.WriteString("\n\n")
	return s.write()
}

// Run sends the events from ch until ch is closed (returns nil), the
// client goes away (returns the context error) or a write fails. Between
// events it writes a heartbeat comment every heartbeat (0 means
// [DefaultHeartbeat], negative disables).
func (s *Stream) Run(ch <-chan eventlog.Event, heartbeat time.Duration) error {
	if heartbeat == 0 {
		heartbeat = DefaultHeartbeat
	}
	var tick <-chan time.Time
	if heartbeat > 0 {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := s.Send(e); err != nil {
				return err
			}
		case <-tick:
			if err := s.Comment("ping"); err != nil {
				return err
			}
		}
	}
}

// SendAllWithin is [Stream.SendAll] for a detached stream that waits at
// most wait for the client to take the bytes (instead of the stream's
// write timeout): when the socket does not take everything by then, the
// rest is kept, pending is true, and it goes out before anything sent
// later — [Stream.Flush] sends it with the full write timeout. A writer
// serving many streams uses it so that one slow client cannot hold it.
// On a stream made by NewStream it is SendAll.
func (s *Stream) SendAllWithin(events []eventlog.Event, wait time.Duration) (pending bool, err error) {
	b := s.getBuf()
	for _, e := range events {
		s.appendLogEvent(b, e)
	}
	return s.writeWithin(wait)
}

// CommentWithin is [Stream.Comment] waiting at most wait, as
// [Stream.SendAllWithin] does.
func (s *Stream) CommentWithin(text string, wait time.Duration) (pending bool, err error) {
	b := s.getBuf()
	writeField(b, "", []byte(text))
	b.WriteByte('\n')
	return s.writeWithin(wait)
}

// Pending reports whether a *Within write left bytes unsent.
func (s *Stream) Pending() bool { return s.pending }

// Flush sends what a *Within write left unsent, waiting up to the
// stream's write timeout. It does nothing when nothing is pending.
func (s *Stream) Flush() error {
	if !s.pending {
		return nil
	}
	return s.write()
}

func (s *Stream) write() error {
	_, err := s.writeWithin(0)
	return err
}

// writeWithin writes the buffer (from off) and flushes it; on a detached
// stream it gives up after wait (0: the write timeout) and keeps the rest
// when wait is shorter than the write timeout.
func (s *Stream) writeWithin(wait time.Duration) (pending bool, err error) {
	if err := s.ctx.Err(); err != nil {
		s.pending, s.off = false, 0
		s.putBuf()
		return false, err
	}
	if s.conn != nil {
		if wait <= 0 || wait > s.writeTimeout {
			wait = s.writeTimeout
		}
		if err := s.conn.SetWriteDeadline(time.Now().Add(wait)); err != nil {
			s.cancel()
			s.pending, s.off = false, 0
			s.putBuf()
			return false, err
		}
		n, err := s.conn.Write(s.buf.Bytes()[s.off:])
		if err == nil {
			s.pending, s.off = false, 0
			s.putBuf()
			return false, nil
		}
		if wait < s.writeTimeout && errors.Is(err, os.ErrDeadlineExceeded) {
			// The client is slow (or this goroutine was not scheduled in
			// time): keep the rest, however little was sent, for later.
			s.pending = true
			s.off += n
			return true, nil
		}
		s.cancel() // a partial event may have been written: the stream is over
		s.pending, s.off = false, 0
		s.putBuf()
		return false, err
	}
	return false, s.writeInHandler()
}

func (s *Stream) writeInHandler() error {
	if err := s.deadline(); err != nil {
		return err
	}
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	return s.flush()
}

// deadline moves an in-handler stream's write deadline writeTimeout ahead.
func (s *Stream) deadline() error {
	if s.writeTimeout <= 0 {
		return nil
	}
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func (s *Stream) flush() error {
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strings.NewReplacer("\r", "", "\n", "").Replace(s)
	}
	return s
}

// writeField writes "name: line\n" for every line of v ("" name: comment).
func writeField(b *bytes.Buffer, name string, v []byte) {
	for {
		i := bytes.IndexAny(v, "\r\n")
		line := v
		if i >= 0 {
			line = v[:i]
		}
		b.WriteString(name)
		b.WriteString(": ")
		b.Write(line)
		b.WriteByte('\n')
		if i < 0 {
			return
		}
		if v[i] == '\r' && i+1 < len(v) && v[i+1] == '\n' {
			i++
		}
		v = v[i+1:]
	}
}

// StreamOptions configures [ServeEvents].
type StreamOptions struct {
	// Key selects the targeted events this client may see ([eventlog.Event].To).
	Key string
	// Buffer bounds the events queued for this client (0: 64). A client
	// that falls further behind is dropped and reconnects.
	Buffer int
	// Heartbeat is the keep-alive interval (0: 15s, negative: none).
	Heartbeat time.Duration
	// Retry, when positive, is sent as the client's reconnection delay.
	Retry time.Duration
	// Snapshot returns the full current state as one event whose ID is
	// the log position it reflects ([eventlog.Log.LastID] taken in the same
	// turn as the state), typically {Type: "snapshot"}. It is sent first
	// when the client has no usable Last-Event-ID. Required.
	Snapshot func(ctx context.Context) (eventlog.Event, error)
}

// ServeEvents streams log to one client: if the client's Last-Event-ID
// can be resumed it gets the events it missed, otherwise a fresh
// snapshot; then live events until it goes away, falls behind or the log
// closes. Errors before the stream starts (from Snapshot) are written with
// [WriteError]; the returned error is informative only.
func ServeEvents(w http.ResponseWriter, r *http.Request, log *eventlog.Log, opt StreamOptions) error {
	var (
		backlog []eventlog.Event
		sub     *eventlog.Subscription
		resumed bool
	)
	if id, err := strconv.ParseUint(LastEventID(r), 10, 64); err == nil && id > 0 {
		backlog, sub, resumed = log.SubscribeSince(opt.Key, id, opt.Buffer)
	}
	var snap eventlog.Event
	if !resumed {
		// Retry a few times in case the log moved past the snapshot's
		// position beyond its window between the two calls.
		for attempt := 0; ; attempt++ {
			var err error
			if snap, err = opt.Snapshot(r.Context()); err != nil {
				WriteError(w, err)
				return err
			}
			var ok bool
			if backlog, sub, ok = log.SubscribeSince(opt.Key, snap.ID, opt.Buffer); ok {
				break
			}
			if attempt == 2 {
				err := errors.New("gateway: snapshot position not in event log")
				WriteError(w, err)
				return err
			}
		}
	}
	defer sub.Close()
	st, err := NewStream(w, r)
	if err != nil {
		Error(w, http.StatusInternalServerError, "internal", "streaming unsupported")
		return err
	}
	if opt.Retry > 0 {
		if err := st.Retry(opt.Retry); err != nil {
			return err
		}
	}
	if !resumed {
		if err := st.Send(snap); err != nil {
			return err
		}
	}
	for _, e := range backlog {
		if err := st.Send(e); err != nil {
			return err
		}
	}
	if err := st.Run(sub.Events(), opt.Heartbeat); err != nil {
		return err
	}
	return sub.Err()
}
