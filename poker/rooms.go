package poker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/eventlog"
)

// Address is the parent address of the room children: room id X lives at
// /rooms/X.
const Address = "/rooms"

// Options configures Register. Zero values mean the documented defaults.
type Options struct {
	// TTL closes a room after this long without a command (default 24h).
	TTL time.Duration
	// EventHistory is how many events a room keeps for clients resuming
	// with Last-Event-ID (default 256).
	EventHistory int
	// InboxSize bounds each room's inbox (default 256). A full inbox makes
	// commands fail with reactor.ErrBusy (HTTP 503).
	InboxSize int
	// MaxResident bounds the rooms kept in memory (default 100,000); the
	// least recently used idle rooms are saved and evicted beyond it.
	MaxResident int
	// MaxRooms bounds the rooms that may exist at once (default
	// 1,000,000): Create fails with ErrTooManyRooms beyond it.
	MaxRooms int
	// EventLogBytes bounds the bytes of the events one room keeps for
	// resuming clients (default 256 KiB); EventLogTotalBytes those of all
	// rooms (default 256 MiB). The oldest events go first.
	EventLogBytes, EventLogTotalBytes int64
	// StreamsPerMember bounds one member's open event streams (default 4):
	// Subscribe fails with ErrTooManyStreams beyond it.
	StreamsPerMember int
	// Logger receives the package's logs (default slog.Default()).
	Logger *slog.Logger
	// Extra options for the room registration, e.g. reactor.Journaled().
	Extra []reactor.Option
	// Shared, if set, keeps the rooms in a store many processes share
	// (reactor.External on Shared.Store; see shared.go): any process serves
	// any room, and event streams read the room's shared stream. Extra's
	// placement option is overridden.
	Shared *Shared
	// Publish, if set, sends every event of a room to a stream that other
	// processes read (a cluster's, see cluster.Events) instead of a local
	// log: the rooms registered here serve commands, and the HTTP side of
	// any process opens the streams with Front. Events are handed over at
	// the end of each batch (AfterBatch), never during replay, so a room
	// taken over by another node does not publish its past again.
	Publish func(addr string, ev reactor.StateEvent)
	// Census, if set, is the address of a census (RegisterCensus) that a
	// room tells when it closes, so that the count a front end admits new
	// rooms against (Shared.Census = CensusOf) follows rooms that run
	// elsewhere.
	Census string
	// OnFinished, if set, is called inside the finish command's turn of a
	// room created with a webhook (see Finished), so that what it sends
	// from c exists iff the finish is durable. Also called on replay.
	OnFinished func(c *reactor.Ctx, f Finished) error
}

// Rooms is the planning-poker domain on a reactor runtime: rooms are keyed
// children at /rooms/{id}. Its methods are what the HTTP layer calls; they
// are safe for concurrent use.
type Rooms struct {
	rt  *reactor.Runtime
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	logs    map[string]*eventlog.Log
	mirrors map[string]*mirror // shared rooms with open streams here

	// known holds the ids of the rooms that may exist (created and not
	// known to be closed): a request for any other id is answered 404
	// before it reaches the runtime, so it costs no child, no journal record
	// and no checkpoint. Built from the checkpoint store's keys at Register,
	// kept up to date by the rooms' own turns (create, close, load), also
	// during replay. 16 bytes a room.
	kmu   sync.RWMutex
	known map[[16]byte]struct{}

	budget  *eventlog.Budget // all rooms' event logs
	smu     sync.Mutex
	streams map[string]int // open streams per room/member

	streamsClosed bool // guarded by mu

	done      chan struct{}
	closeOnce sync.Once

	createdRooms, closedRooms atomic.Uint64
}

// Register registers the room children on rt (before rt.Start).
func Register(rt *reactor.Runtime, opt Options) (*Rooms, error) {
	p := newRooms(rt, opt)
	opt = p.opt
	keys, err := rt.Store().Keys(context.Background())
	if err != nil {
		return nil, fmt.Errorf("poker: list rooms: %w", err)
	}
	for _, k := range keys {
		if id, ok := strings.CutPrefix(k, Address+"/"); ok {
			p.markLive(id)
		}
	}
	idle := min(opt.TTL, 15*time.Minute)
	opts := append([]reactor.Option{
		reactor.InboxSize(opt.InboxSize), reactor.MaxChildren(opt.MaxResident), reactor.IdleTimeout(idle),
	}, opt.Extra...)
	if opt.Shared != nil {
		opts = append(opts, reactor.External(opt.Shared.Store))
	}
	_, err = reactor.RegisterChildren(rt, Address, func(key string) *Room { return &Room{ID: key, rooms: p} }, opts...)
	if err != nil {
		return nil, fmt.Errorf("poker: register rooms: %w", err)
	}
	return p, nil
}

// Front returns the rooms of other processes as seen through rt, whose
// messages to /rooms/... reach them (a cluster node's client runtime):
// commands go to the room's owner, event streams read opt.Shared.Events.
// Nothing is registered on rt; opt.Shared.Store is not used. This is the
// HTTP side of a cluster node (the rooms themselves are registered with
// Register and Options.Publish on the nodes that own them).
func Front(rt *reactor.Runtime, opt Options) (*Rooms, error) {
	if opt.Shared == nil || opt.Shared.Events == nil {
		return nil, errors.New("poker: Front needs Options.Shared.Events")
	}
	return newRooms(rt, opt), nil
}

// newRooms fills in opt's defaults and returns the Rooms over rt.
func newRooms(rt *reactor.Runtime, opt Options) *Rooms {
	if opt.TTL <= 0 {
		opt.TTL = 24 * time.Hour
	}
	if opt.EventHistory <= 0 {
		opt.EventHistory = 256
	}
	if opt.InboxSize <= 0 {
		opt.InboxSize = 256
	}
	if opt.MaxResident <= 0 {
		opt.MaxResident = 100_000
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.MaxRooms <= 0 {
		opt.MaxRooms = 1_000_000
	}
	if opt.EventLogBytes <= 0 {
		opt.EventLogBytes = 256 << 10
	}
	if opt.EventLogTotalBytes <= 0 {
		opt.EventLogTotalBytes = 256 << 20
	}
	if opt.StreamsPerMember <= 0 {
		opt.StreamsPerMember = 4
	}
	return &Rooms{budget: &eventlog.Budget{Max: opt.EventLogTotalBytes}, streams: map[string]int{}, rt: rt, opt: opt, log: opt.Logger, logs: make(map[string]*eventlog.Log), mirrors: map[string]*mirror{}, done: make(chan struct{}),
		known: make(map[[16]byte]struct{})}
}

// eventsElsewhere reports whether the rooms' events go to a stream other
// processes read (shared or published) rather than to a local log.
func (p *Rooms) eventsElsewhere() bool { return p.opt.Shared != nil || p.opt.Publish != nil }

// CloseStreams ends every open event stream (clients reconnect and
// resume). Rooms keep working; events they publish afterwards are not
// streamed. Use it at shutdown, before the HTTP server waits for requests.
func (p *Rooms) CloseStreams() {
	p.mu.Lock()
	logs := p.logs
	p.logs = map[string]*eventlog.Log{}
	p.streamsClosed = true
	mirrors := make([]*mirror, 0, len(p.mirrors))
	for _, m := range p.mirrors {
		mirrors = append(mirrors, m)
	}
	p.mu.Unlock()
	for _, l := range logs {
		l.Close()
	}
	for _, m := range mirrors {
		p.killMirror(m)
	}
}

// Close ends every event stream and makes waiting calls return ErrClosed.
// Close the runtime afterwards.
func (p *Rooms) Close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.CloseStreams()
	})
}

// logFor returns the event log of a room, creating it so that its next
// event id is last+1.
func (p *Rooms) logFor(id string, last uint64) *eventlog.Log {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.logs[id]
	if l == nil {
		l = eventlog.NewFrom(p.opt.EventHistory, last)
		l.SetBudget(p.opt.EventLogBytes, p.budget)
		if p.streamsClosed {
			l.Close()
		} else {
			p.logs[id] = l
		}
	}
	return l
}

// roomKey decodes a room id to the 16 bytes it encodes; ok is false for
// anything NewID(16) cannot have made (including non-canonical spellings).
func roomKey(id string) (k [16]byte, ok bool) {
	if !ValidID(id) {
		return k, false
	}
	n, err := idEncoding.Decode(k[:], []byte(id))
	if err != nil || n != 16 || idEncoding.EncodeToString(k[:]) != id {
		return k, false
	}
	return k, true
}

// exists reports whether room may exist: false means it certainly does
// not (never created, or closed), and nothing is asked of the runtime.
func (p *Rooms) exists(room string) bool {
	k, ok := roomKey(room)
	if !ok {
		return false
	}
	if p.opt.Shared != nil {
		return true // created through any process: the store knows
	}
	p.kmu.RLock()
	_, ok = p.known[k]
	p.kmu.RUnlock()
	return ok
}

func (p *Rooms) markLive(room string) {
	if k, ok := roomKey(room); ok {
		p.kmu.Lock()
		p.known[k] = struct{}{}
		p.kmu.Unlock()
	}
}

func (p *Rooms) markGone(room string) {
	if k, ok := roomKey(room); ok {
		p.kmu.Lock()
		delete(p.known, k)
		p.kmu.Unlock()
	}
}

// Known returns how many rooms may exist (live, or closed and not loaded
// since the start).
func (p *Rooms) Known() int {
	p.kmu.RLock()
	defer p.kmu.RUnlock()
	return len(p.known)
}

func (p *Rooms) dropLog(id string) {
	p.mu.Lock()
	delete(p.logs, id)
	p.mu.Unlock()
}

// Counters are the domain's counters.
type Counters struct {
	Created, Closed uint64 // rooms created and closed by this process
	Streams         int    // live event subscriptions
	Logs            int    // rooms with an event log in memory
	Known           int    // rooms that may exist (see Options.MaxRooms)
	EventBytes      int64  // bytes of the events all rooms keep
	Members         int    // members with at least one open event stream
}

// Counters returns the domain's counters.
func (p *Rooms) Counters() Counters {
	p.mu.Lock()
	logs := make([]*eventlog.Log, 0, len(p.logs))
	for _, l := range p.logs {
		logs = append(logs, l)
	}
	p.mu.Unlock()
	for _, m := range p.mirrors {
		logs = append(logs, m.log)
	}
	st := Counters{Created: p.createdRooms.Load(), Closed: p.closedRooms.Load(), Logs: len(logs),
		Known: p.Known(), EventBytes: p.budget.Used()}
	for _, l := range logs {
		st.Streams += l.Subscribers()
	}
	p.smu.Lock()
	st.Members = len(p.streams)
	p.smu.Unlock()
	return st
}

// --- commands over the runtime ---

// roomMethod is a room command: TryCall sends it, so a full room inbox
// fails at once with reactor.ErrBusy (HTTP 503) instead of queueing the
// HTTP request, and the reply comes back once the command is durable and
// applied.
type roomMethod[Req, Resp any] = reactor.MethodOf[Room, Req, Resp]

func method[Req, Resp any](name string, fn func(*Room, *reactor.Ctx, Req) (Resp, error), opts ...reactor.MethodOption) *roomMethod[Req, Resp] {
	return reactor.Method(name, fn, opts...)
}

var (
	createMethod   = method("poker.room.create", (*Room).create)
	joinMethod     = method("poker.room.join", (*Room).join)
	startMethod    = method("poker.room.start", (*Room).start)
	voteMethod     = method("poker.room.vote", (*Room).vote)
	finishMethod   = method("poker.room.finish", (*Room).finish)
	removeMethod   = method("poker.room.remove", (*Room).remove)
	revoteMethod   = method("poker.room.revote", (*Room).revote)
	nextMethod     = method("poker.room.next", (*Room).next)
	queueMethod    = method("poker.room.queue", (*Room).queue)
	estimateMethod = method("poker.room.estimate", (*Room).estimate)
	leaderMethod   = method("poker.room.leader", (*Room).handOver)
	roleMethod     = method("poker.room.role", (*Room).setRole)
	settingsMethod = method("poker.room.settings", (*Room).settings)
	timerMethod    = method("poker.room.timer", (*Room).timer)
	historyMethod  = method("poker.room.history", (*Room).history, reactor.ReadOnly())
	snapshotMethod = method("poker.room.snapshot", (*Room).snapshot, reactor.ReadOnly())
	// checkMethod and canJoinMethod authenticate and validate a command
	// before it is journaled (read-only: they cost no journal record, no
	// remembered reply, no checkpoint). The command checks again on its
	// own turn: a member removed in between is refused there.
	checkMethod   = method("poker.room.check", (*Room).check, reactor.ReadOnly())
	canJoinMethod = method("poker.room.canjoin", (*Room).canJoin, reactor.ReadOnly())
)

// expireMethod is the room's idle timer; set in init because its handler
// re-arms it (an initialization cycle otherwise).
var expireMethod *roomMethod[uint64, struct{}]

// countdownMethod arrives when a round's countdown may have ended (set in
// init for the same reason).
var countdownMethod *roomMethod[int, struct{}]

func init() {
	expireMethod = method("poker.room.expire", (*Room).expire)
	countdownMethod = method("poker.room.countdown", (*Room).countdown)
}

func do[Req, Resp any](ctx context.Context, p *Rooms, m *roomMethod[Req, Resp], room string, req Req) (Resp, error) {
	var zero Resp
	if !p.exists(room) {
		return zero, ErrRoomNotFound
	}
	// Handler errors come back as they are (the HTTP layer maps them);
	// the runtime's own carry the method and the room's address.
	return m.TryCall(ctx, p.rt.Ref(Address).Child(room), req)
}

// Credentials identify a new member: Token is the secret the client sends
// as "Authorization: Bearer"; the room keeps only its hash.
type Credentials struct {
	Room   string `json:"room,omitempty"`
	Member string `json:"member"`
	Token  string `json:"token"`
	// WebhookSecret signs the room's webhook deliveries (a room created
	// with a webhook only; answered once, at creation).
	WebhookSecret string `json:"webhookSecret,omitempty"`
}

// Create creates a room whose leader is req.Leader.
func (p *Rooms) Create(ctx context.Context, req CreateRequest) (Credentials, error) {
	if err := req.Normalize(); err != nil {
		return Credentials{}, err
	}
	if p.opt.Shared == nil && p.Known() >= p.opt.MaxRooms { // shared: counted by the census, if any
		return Credentials{}, ErrTooManyRooms
	}
	room, member, token, hash := NewID(16), NewID(10), NewToken(), [32]byte{}
	var census RoomCensus
	if p.opt.Shared != nil {
		census = p.opt.Shared.Census
	}
	if census != nil {
		ok, err := census.Admit(ctx, Address+"/"+room, p.opt.MaxRooms)
		if err != nil {
			return Credentials{}, fmt.Errorf("poker: count rooms: %w", err)
		}
		if !ok {
			return Credentials{}, ErrTooManyRooms
		}
	}
	hash = sha256.Sum256([]byte(token))
	secret := ""
	if req.Webhook != "" {
		secret = NewWebhookSecret()
	}
	// The one command for a room that does not exist yet.
	_, err := createMethod.TryCall(ctx, p.rt.Ref(Address).Child(room), createCmd{CreateRequest: req, Member: member, TokenHash: hash[:], WebhookSecret: secret})
	if err != nil {
		if census != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			// Refused (busy, invalid): the room was never written. A timed-out
			// create may still commit; its slot then stays counted (until the
			// room's TTL if it did not).
			if lerr := census.Leave(context.WithoutCancel(ctx), Address+"/"+room); lerr != nil {
				p.log.Warn("poker: room slot not released", "room", room, "err", lerr)
			}
		}
		return Credentials{}, err
	}
	return Credentials{Room: room, Member: member, Token: token, WebhookSecret: secret}, nil
}

// Join adds a member named req.Name to room.
func (p *Rooms) Join(ctx context.Context, room string, req JoinRequest) (Credentials, error) {
	if err := req.Normalize(); err != nil {
		return Credentials{}, err
	}
	if _, err := do(ctx, p, canJoinMethod, room, joinQuery{Name: req.Name}); err != nil {
		return Credentials{}, err
	}
	member, token := NewID(10), NewToken()
	_, err := do(ctx, p, joinMethod, room, joinCmd{Name: req.Name, Role: req.Role, Member: member, TokenHash: HashToken(token)})
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Member: member, Token: token}, nil
}

// Start starts (or restarts) a voting session; only the leader may.
func (p *Rooms) Start(ctx context.Context, room, token string, req StartRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Leader: true}); err != nil {
		return err
	}
	_, err := do(ctx, p, startMethod, room, startCmd{auth: auth{HashToken(token)}, Story: req.Story})
	return err
}

// Vote casts or changes the token's member's vote. A vote the room refuses
// (no open session, value not in the deck) is accepted and reported to
// that member as a "rejected" event.
func (p *Rooms) Vote(ctx context.Context, room, token string, req VoteRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Voter: true}); err != nil {
		return err
	}
	_, err := do(ctx, p, voteMethod, room, voteCmd{auth: auth{HashToken(token)}, Value: req.Value})
	return err
}

// Finish reveals the votes; only the leader may.
func (p *Rooms) Finish(ctx context.Context, room, token string) error {
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Leader: true}); err != nil {
		return err
	}
	_, err := do(ctx, p, finishMethod, room, auth{HashToken(token)})
	return err
}

// Remove removes member from room: the member itself or the leader may.
func (p *Rooms) Remove(ctx context.Context, room, token, member string) error {
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Subject: member}); err != nil {
		return err
	}
	_, err := do(ctx, p, removeMethod, room, removeCmd{auth: auth{HashToken(token)}, Member: member})
	return err
}

// Revote starts a new round of the current story (whether it is still
// being voted on or finished); only the leader may. With no story yet the
// leader gets a "rejected" event (not_voting).
func (p *Rooms) Revote(ctx context.Context, room, token string) error {
	return leaderDo(ctx, p, room, token, revoteMethod, auth{HashToken(token)})
}

// Next starts a round on the first queued story and takes it off the
// queue; only the leader may. ErrQueueEmpty when nothing is queued.
func (p *Rooms) Next(ctx context.Context, room, token string) error {
	return leaderDo(ctx, p, room, token, nextMethod, auth{HashToken(token)})
}

// Queue appends stories to the room's story queue, or replaces the queue
// (replace: reorder, remove, clear); only the leader may. ErrQueueFull
// beyond MaxQueue stories.
func (p *Rooms) Queue(ctx context.Context, room, token string, req QueueRequest, replace bool) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	return leaderDo(ctx, p, room, token, queueMethod, queueCmd{auth: auth{HashToken(token)}, Stories: req.Stories, Replace: replace})
}

// Estimate records the agreed estimate of the last finished round (again:
// the new value replaces the old); only the leader may. ErrNoRound when no
// round was finished.
func (p *Rooms) Estimate(ctx context.Context, room, token string, req EstimateRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	return leaderDo(ctx, p, room, token, estimateMethod, estimateCmd{auth: auth{HashToken(token)}, Value: req.Value})
}

// HandOver makes another member the leader; only the leader may.
func (p *Rooms) HandOver(ctx context.Context, room, token string, req LeaderRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Leader: true, Target: req.Member}); err != nil {
		return err
	}
	_, err := do(ctx, p, leaderMethod, room, leaderCmd{auth: auth{HashToken(token)}, Member: req.Member})
	return err
}

// SetRole makes member a voter or an observer: the member itself or the
// leader may. A vote in the open round is withdrawn when its member
// becomes an observer.
func (p *Rooms) SetRole(ctx context.Context, room, token, member string, req RoleRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Subject: member}); err != nil {
		return err
	}
	_, err := do(ctx, p, roleMethod, room, roleCmd{auth: auth{HashToken(token)}, Member: member, Role: req.Role})
	return err
}

// Settings changes the room's settings (auto-reveal); only the leader may.
// Turning auto-reveal on while every voter has voted reveals at once.
func (p *Rooms) Settings(ctx context.Context, room, token string, req SettingsRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	return leaderDo(ctx, p, room, token, settingsMethod, settingsCmd{auth: auth{HashToken(token)}, AutoReveal: req.AutoReveal})
}

// Timer starts a countdown of req.Seconds on the open round (0 stops it);
// when it ends the votes are revealed. Only the leader may. With no open
// round the leader gets a "rejected" event (not_voting).
func (p *Rooms) Timer(ctx context.Context, room, token string, req TimerRequest) error {
	if err := req.Normalize(); err != nil {
		return err
	}
	return leaderDo(ctx, p, room, token, timerMethod, timerCmd{auth: auth{HashToken(token)}, Seconds: req.Seconds})
}

// History returns the room's finished rounds, oldest first (at most
// MaxHistory); any member may read them.
func (p *Rooms) History(ctx context.Context, room, token string) ([]Round, error) {
	if token == "" {
		return nil, ErrUnauthorized
	}
	return do(ctx, p, historyMethod, room, historyQuery{auth{HashToken(token)}})
}

// leaderDo checks that token leads room, then sends the command.
func leaderDo[Req any](ctx context.Context, p *Rooms, room, token string, m *roomMethod[Req, struct{}], req Req) error {
	if token == "" {
		return ErrUnauthorized
	}
	if err := p.check(ctx, room, checkQuery{auth: auth{HashToken(token)}, Leader: true}); err != nil {
		return err
	}
	_, err := do(ctx, p, m, room, req)
	return err
}

// check authenticates (and authorises) a member command before it is
// journaled (read-only: the check itself is neither journaled nor
// remembered).
func (p *Rooms) check(ctx context.Context, room string, q checkQuery) error {
	q.Key = reactor.IdempotencyKey(ctx)
	_, err := do(ctx, p, checkMethod, room, q)
	return err
}

// State returns the room as the token's member sees it; with token "" it
// returns the public view (no myVote).
func (p *Rooms) State(ctx context.Context, room, token string) (View, error) {
	q := stateQuery{Optional: true}
	if token != "" {
		q.TokenHash = HashToken(token)
	}
	s, err := do(ctx, p, snapshotMethod, room, q)
	return s.View, err
}

// Subscription is an open event stream of one member.
type Subscription struct {
	Member   string
	Snapshot *eventlog.Event // nil when the stream resumes from lastEventID
	// Sub delivers the events after the snapshot (or after lastEventID)
	// with Next, signalled by Ready: it reads the room's event log itself,
	// so it holds no queue, and it ends with eventlog.ErrSubscriberTooSlow
	// only when the log evicted an event it had not read yet.
	Sub *eventlog.Subscription

	release func()
	once    sync.Once
}

// Close ends the subscription and frees the member's stream slot.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.Sub.Close()
		if s.release != nil {
			s.release()
		}
	})
}

// takeStream claims one of member's stream slots in room.
func (p *Rooms) takeStream(room, member string) (release func(), err error) {
	k := room + "/" + member
	p.smu.Lock()
	defer p.smu.Unlock()
	if p.streams[k] >= p.opt.StreamsPerMember {
		return nil, ErrTooManyStreams
	}
	p.streams[k]++
	return func() {
		p.smu.Lock()
		if p.streams[k]--; p.streams[k] <= 0 {
			delete(p.streams, k)
		}
		p.smu.Unlock()
	}, nil
}

// Subscribe authenticates token and opens the member's event stream of
// room. With lastEventID > 0 it resumes after that id when the room's log
// still holds what followed; otherwise the stream starts with a snapshot.
// asMember, when not empty, must be the token's own member id.
func (p *Rooms) Subscribe(ctx context.Context, room, token, asMember string, lastEventID uint64) (*Subscription, error) {
	if token == "" {
		return nil, ErrUnauthorized
	}
	if p.opt.Shared != nil {
		return p.subscribeShared(ctx, room, token, asMember, lastEventID)
	}
	for attempt := 0; ; attempt++ {
		s, err := do(ctx, p, snapshotMethod, room, stateQuery{auth: auth{HashToken(token)}, Member: asMember})
		if err != nil {
			return nil, err
		}
		if s.Log == nil {
			return nil, ErrRoomNotFound
		}
		if lastEventID > 0 {
			if sub, ok := s.Log.FollowSince(s.Member, lastEventID); ok {
				return p.counted(room, &Subscription{Member: s.Member, Sub: sub})
			}
		}
		if sub, ok := s.Log.FollowSince(s.Member, s.Event.ID); ok {
			snap := s.Event
			return p.counted(room, &Subscription{Member: s.Member, Snapshot: &snap, Sub: sub})
		}
		if attempt == 2 {
			return nil, errors.New("poker: room events move faster than a snapshot can be taken")
		}
	}
}

// counted claims a stream slot for sub's member, or closes sub.
func (p *Rooms) counted(room string, sub *Subscription) (*Subscription, error) {
	release, err := p.takeStream(room, sub.Member)
	if err != nil {
		sub.Sub.Close()
		return nil, err
	}
	sub.release = release
	return sub, nil
}

// --- identifiers and tokens ---

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier of n bytes (crypto/rand) in lower-case
// base32.
func NewID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on its own)
	return idEncoding.EncodeToString(b)
}

// NewToken returns a member token: 256 random bits.
func NewToken() string { return NewID(32) }

// HashToken returns what a room stores and compares: SHA-256 of the token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// ValidID reports whether s looks like an id made by NewID(16) (a room
// id): 26 lower-case base32 characters. Anything else is not a room, and
// is answered without creating a child.
func ValidID(s string) bool {
	if len(s) != 26 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz234567") == ""
}
