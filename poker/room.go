package poker

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/eventlog"
)

// Session status values.
const (
	StatusVoting   = "voting"
	StatusFinished = "finished"
)

// Member is one participant of a room, as kept in the room's state. Only
// the SHA-256 of the member's token is stored, so a leaked checkpoint or
// journal does not leak tokens.
type Member struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	TokenHash []byte `json:"tokenHash"`
	// Role is RoleVoter or RoleObserver (a checkpoint written before roles
	// existed has none: OnLoad makes it a voter).
	Role string `json:"role"`
}

func (m *Member) votes() bool { return m.Role != RoleObserver }

// Session is the current (or last) voting round.
type Session struct {
	// Round numbers the rounds of a room from 1 (0: a round started
	// before rounds were numbered).
	Round  int    `json:"round,omitempty"`
	Story  string `json:"story"`
	Status string `json:"status"`
	// Votes is never nil in a room's state (OnLoad restores the empty map
	// a checkpoint does not distinguish from nil): handlers write to it.
	Votes map[string]string `json:"votes"` // member id → value
	// Deadline, while voting, is when the leader's countdown ends and the
	// votes are revealed (nil: no countdown).
	Deadline *time.Time `json:"deadline,omitempty"`
}

// Room is the state of one room: a keyed child /rooms/{id} of the
// runtime. Its exported fields are its checkpoint. Handlers run one at a
// time, so joins with one name are naturally serialised: the first wins.
type Room struct {
	ID       string   `json:"id"`
	Created  bool     `json:"created"`
	Closed   bool     `json:"closed,omitempty"`
	Title    string   `json:"title,omitempty"`
	Capacity int      `json:"capacity,omitempty"`
	Deck     []string `json:"deck,omitempty"`
	Leader   string   `json:"leader,omitempty"`
	// AutoReveal reveals the votes as soon as every voter has voted.
	AutoReveal bool     `json:"autoReveal,omitempty"`
	Members    []Member `json:"members,omitempty"`
	Session    *Session `json:"session,omitempty"`
	// Rounds counts the rounds started (the last round's number).
	Rounds int `json:"rounds,omitempty"`
	// Queue holds the stories waiting for a round, next first (at most
	// MaxQueue).
	Queue []string `json:"queue,omitempty"`
	// History holds the finished rounds, oldest first (at most MaxHistory).
	History      []Round   `json:"history,omitempty"`
	LastActivity time.Time `json:"lastActivity"`
	// LastEventID is the id of the last event the room published; the
	// event log is recreated from it after a restart so ids keep growing.
	LastEventID uint64 `json:"lastEventId"`
	// Webhook receives the finished rounds (nil: none).
	Webhook *Webhook `json:"webhook,omitempty"`

	rooms    *Rooms
	log      *eventlog.Log
	timerGen uint64
	pending  []reactor.StateEvent // shared or published rooms: this batch's events
}

var timerGens atomic.Uint64

// OnLoad restores what a checkpoint does not carry — the invariants of a
// decoded state (see normalize) — and attaches the room to its event log
// (kept outside the state so that evicting an idle room does not
// disconnect its streams).
func (r *Room) OnLoad(c *reactor.Ctx) error {
	r.normalize()
	if r.rooms.eventsElsewhere() {
		return nil // events go to the shared or published stream; existence is asked of the room
	}
	if r.Created && !r.Closed {
		r.log = r.rooms.logFor(r.ID, r.LastEventID)
		r.rooms.markLive(r.ID)
	} else if r.Closed {
		r.rooms.markGone(r.ID)
	}
	return nil
}

// normalize makes a state decoded from a checkpoint equal to the state it
// was saved from: JSON gives nil for an empty map or slice written as null
// or left out, and handlers must behave alike on both. Every field that a
// handler writes into, or whose empty value shows in a reply or an event,
// is set here to the value a live room would hold.
func (r *Room) normalize() {
	if s := r.Session; s != nil && s.Votes == nil {
		s.Votes = map[string]string{}
	}
	for i := range r.Members {
		if r.Members[i].Role == "" {
			r.Members[i].Role = RoleVoter
		}
	}
	for i := range r.History {
		if h := &r.History[i]; h.Votes == nil {
			h.Votes = map[string]string{}
		}
		if h := &r.History[i]; h.Names == nil {
			h.Names = map[string]string{}
		}
	}
	if r.Created && !r.Closed && r.Members == nil {
		r.Members = []Member{}
	}
}

// OnActive arms the idle timer of a live room, and the countdown of its
// open round (timers are not journaled until they fire).
func (r *Room) OnActive(c *reactor.Ctx) {
	if r.Created && !r.Closed {
		r.armTimer(c)
		r.armCountdown(c)
	}
}

// armCountdown delivers a countdown message when the open round's deadline
// passes.
func (r *Room) armCountdown(c *reactor.Ctx) {
	s := r.Session
	if s == nil || s.Status != StatusVoting || s.Deadline == nil {
		return
	}
	d := max(s.Deadline.Sub(c.Now()), 0)
	countdownMethod.After(c, d+10*time.Millisecond, s.Round)
}

// SizeHint approximates the room's memory for the runtime's LRU.
func (r *Room) SizeHint() int {
	n := 256 + len(r.Title) + 16*len(r.Deck)
	n += len(r.Members) * 128
	if r.Session != nil {
		n += len(r.Session.Story) + 48*len(r.Session.Votes)
	}
	for _, q := range r.Queue {
		n += 16 + len(q)
	}
	for _, h := range r.History {
		n += 160 + len(h.Story) + 48*len(h.Votes) + 96*len(h.Names)
	}
	return n
}

func (r *Room) armTimer(c *reactor.Ctx) {
	ttl := r.rooms.opt.TTL
	d := ttl - c.Now().Sub(r.LastActivity)
	if d < 0 {
		d = 0
	}
	r.timerGen = timerGens.Add(1)
	expireMethod.After(c, d+10*time.Millisecond, r.timerGen)
}

func (r *Room) expired(c *reactor.Ctx) bool {
	return r.Created && !r.Closed && c.Now().Sub(r.LastActivity) >= r.rooms.opt.TTL
}

// live checks the room exists and is open; a command closes an expired
// room first (read-only callers pass modify=false and just see it gone).
func (r *Room) live(c *reactor.Ctx, modify bool) error {
	if r.expired(c) {
		if !modify {
			return ErrRoomNotFound
		}
		r.close(c, "idle")
	}
	if !r.Created || r.Closed {
		return ErrRoomNotFound
	}
	return nil
}

func (r *Room) touch(c *reactor.Ctx) { r.LastActivity = c.Now() }

// emit publishes an event to the room's log (to == "": everyone).
func (r *Room) emit(to, typ string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("poker: encode %s event: %v", typ, err))
	}
	r.LastEventID++
	if r.rooms.eventsElsewhere() {
		r.emitShared(to, typ, data)
		return
	}
	if r.log != nil {
		if id := r.log.AppendTo(to, typ, data); id != r.LastEventID && id != 0 {
			r.rooms.log.Error("poker: event id out of step", "room", r.ID, "log", id, "room_id", r.LastEventID)
		}
	}
}

func (r *Room) reject(member string, err error) {
	r.emit(member, "rejected", map[string]string{"error": refusalCode(err), "message": err.Error()})
}

func (r *Room) close(c *reactor.Ctx, reason string) {
	r.emit("", "room_closed", map[string]string{"reason": reason})
	r.Closed = true
	r.Title, r.Deck, r.Members, r.Session, r.Leader = "", nil, nil, nil, ""
	r.Queue, r.History, r.Webhook = nil, nil, nil
	c.MarkModified()
	if r.log != nil {
		r.log.Close()
		r.log = nil
	}
	r.rooms.dropLog(r.ID)
	r.rooms.markGone(r.ID)
	if at := r.rooms.opt.Census; at != "" {
		// A journaled send: owed until delivered, made once across a
		// crash or a move of the room.
		if err := censusLeave.Send(c, r.rooms.rt.Ref(at), Address+"/"+r.ID); err != nil {
			r.rooms.log.Warn("poker: closed room not taken off the census", "room", r.ID, "err", err)
		}
	}
	c.Forget()          // no tombstone on disk: once evicted, the room's checkpoint is deleted
	if !c.Replaying() { // counted when it happened, not again on recovery
		r.rooms.closedRooms.Add(1)
	}
}

// member finds the member whose token hash matches, comparing every
// member's hash in constant time.
func (r *Room) member(hash []byte) *Member {
	var found *Member
	for i := range r.Members {
		if subtle.ConstantTimeCompare(r.Members[i].TokenHash, hash) == 1 && len(hash) > 0 {
			found = &r.Members[i]
		}
	}
	return found
}

func (r *Room) memberByID(id string) int {
	return slices.IndexFunc(r.Members, func(m Member) bool { return m.ID == id })
}

// --- commands (journaled when the registration is Journaled) ---

type createCmd struct {
	CreateRequest
	Member        string `json:"member"`
	TokenHash     []byte `json:"tokenHash"`
	WebhookSecret string `json:"webhookSecret,omitempty"`
}

func (r *Room) create(c *reactor.Ctx, req createCmd) (struct{}, error) {
	if r.Created {
		return struct{}{}, ErrRoomExists
	}
	r.Created = true
	r.rooms.markLive(r.ID)
	r.Title, r.Capacity, r.Deck, r.AutoReveal = req.Title, req.Capacity, req.Deck, req.AutoReveal
	r.Leader = req.Member
	role := req.Role
	if role == "" { // a create journaled before roles existed
		role = RoleVoter
	}
	r.Members = []Member{{ID: req.Member, Name: req.Leader, TokenHash: req.TokenHash, Role: role}}
	if req.Webhook != "" {
		r.Webhook = &Webhook{URL: req.Webhook, Secret: req.WebhookSecret}
	}
	r.touch(c)
	if !r.rooms.eventsElsewhere() {
		r.log = r.rooms.logFor(r.ID, r.LastEventID)
	}
	r.emit("", "member_joined", memberEvent{Member: req.Member, Name: req.Leader, Role: role})
	r.armTimer(c)
	if !c.Replaying() {
		r.rooms.createdRooms.Add(1)
	}
	return struct{}{}, nil
}

type joinCmd struct {
	Name      string `json:"name"`
	Role      string `json:"role,omitempty"`
	Member    string `json:"member"`
	TokenHash []byte `json:"tokenHash"`
}

func (r *Room) join(c *reactor.Ctx, req joinCmd) (struct{}, error) {
	if err := r.live(c, true); err != nil {
		return struct{}{}, err
	}
	for _, m := range r.Members {
		if sameName(m.Name, req.Name) {
			return struct{}{}, ErrNameTaken
		}
	}
	if len(r.Members) >= r.Capacity {
		return struct{}{}, ErrRoomFull
	}
	if r.memberByID(req.Member) >= 0 {
		return struct{}{}, fmt.Errorf("poker: member id %s reused: %w", req.Member, ErrNameTaken)
	}
	role := req.Role
	if role == "" { // a join journaled before roles existed
		role = RoleVoter
	}
	r.Members = append(r.Members, Member{ID: req.Member, Name: req.Name, TokenHash: req.TokenHash, Role: role})
	r.touch(c)
	r.emit("", "member_joined", memberEvent{Member: req.Member, Name: req.Name, Role: role})
	return struct{}{}, nil
}

// auth carries the hash of the caller's token.
type auth struct {
	TokenHash []byte `json:"tokenHash"`
}

type startCmd struct {
	auth
	Story string `json:"story"`
}

func (r *Room) start(c *reactor.Ctx, req startCmd) (struct{}, error) {
	if _, err := r.leader(c, req.TokenHash); err != nil {
		return struct{}{}, err
	}
	r.touch(c)
	r.startRound(req.Story, false)
	return struct{}{}, nil
}

// startRound opens a new round on story: session_started (as before
// rounds were numbered), then round_started with the round's number.
func (r *Room) startRound(story string, revote bool) {
	r.Rounds++
	r.Session = &Session{Round: r.Rounds, Story: story, Status: StatusVoting, Votes: map[string]string{}}
	r.emit("", "session_started", map[string]string{"story": story})
	r.emit("", "round_started", roundEvent{Round: r.Rounds, Story: story, Revote: revote})
}

type roundEvent struct {
	Round  int    `json:"round"`
	Story  string `json:"story"`
	Revote bool   `json:"revote"`
}

// revote starts a new round of the current story (voting or finished).
func (r *Room) revote(c *reactor.Ctx, req auth) (struct{}, error) {
	m, err := r.leader(c, req.TokenHash)
	if err != nil {
		return struct{}{}, err
	}
	r.touch(c)
	if r.Session == nil {
		r.reject(m.ID, ErrNotVoting)
		return struct{}{}, nil
	}
	r.startRound(r.Session.Story, true)
	return struct{}{}, nil
}

// next starts a round on the first queued story.
func (r *Room) next(c *reactor.Ctx, req auth) (struct{}, error) {
	if _, err := r.leader(c, req.TokenHash); err != nil {
		return struct{}{}, err
	}
	if len(r.Queue) == 0 {
		return struct{}{}, ErrQueueEmpty
	}
	r.touch(c)
	story := r.Queue[0]
	if r.Queue = slices.Delete(r.Queue, 0, 1); len(r.Queue) == 0 {
		r.Queue = nil // as a checkpoint gives it back
	}
	r.emit("", "queue_changed", queueEvent{Queue: r.queueView()})
	r.startRound(story, false)
	return struct{}{}, nil
}

type queueEvent struct {
	Queue []string `json:"queue"`
}

func (r *Room) queueView() []string {
	if len(r.Queue) == 0 {
		return []string{}
	}
	return slices.Clone(r.Queue)
}

type queueCmd struct {
	auth
	Stories []string `json:"stories"`
	Replace bool     `json:"replace,omitempty"`
}

// queue appends stories to the queue, or replaces it.
func (r *Room) queue(c *reactor.Ctx, req queueCmd) (struct{}, error) {
	if _, err := r.leader(c, req.TokenHash); err != nil {
		return struct{}{}, err
	}
	q := req.Stories
	if !req.Replace {
		q = append(slices.Clone(r.Queue), req.Stories...)
	}
	if len(q) > MaxQueue {
		return struct{}{}, ErrQueueFull
	}
	r.touch(c)
	r.Queue = slices.Clone(q)
	if len(r.Queue) == 0 {
		r.Queue = nil
	}
	r.emit("", "queue_changed", queueEvent{Queue: r.queueView()})
	return struct{}{}, nil
}

type estimateCmd struct {
	auth
	Value string `json:"value"`
}

// estimate records the agreed estimate of the last finished round.
func (r *Room) estimate(c *reactor.Ctx, req estimateCmd) (struct{}, error) {
	if _, err := r.leader(c, req.TokenHash); err != nil {
		return struct{}{}, err
	}
	if len(r.History) == 0 {
		return struct{}{}, ErrNoRound
	}
	r.touch(c)
	h := &r.History[len(r.History)-1]
	v := req.Value
	h.Estimate = &v
	r.emit("", "estimate_recorded", estimateEvent{Round: h.Round, Story: h.Story, Estimate: v})
	return struct{}{}, nil
}

type estimateEvent struct {
	Round    int    `json:"round"`
	Story    string `json:"story"`
	Estimate string `json:"estimate"`
}

type leaderCmd struct {
	auth
	Member string `json:"member"`
}

// handOver makes another member the leader.
func (r *Room) handOver(c *reactor.Ctx, req leaderCmd) (struct{}, error) {
	m, err := r.leader(c, req.TokenHash)
	if err != nil {
		return struct{}{}, err
	}
	if r.memberByID(req.Member) < 0 {
		return struct{}{}, ErrMemberNotFound
	}
	r.touch(c)
	if req.Member == m.ID {
		return struct{}{}, nil // leads already
	}
	r.Leader = req.Member
	r.emit("", "leader_changed", leaderEvent{Leader: req.Member, Previous: m.ID, Reason: "handed_over"})
	return struct{}{}, nil
}

type leaderEvent struct {
	Leader   string `json:"leader"`
	Previous string `json:"previous"`
	Reason   string `json:"reason"` // handed_over, left
}

type roleCmd struct {
	auth
	Member string `json:"member"`
	Role   string `json:"role"`
}

// setRole changes a member's role (the member itself, or the leader). An
// observer's vote in the open round is withdrawn.
func (r *Room) setRole(c *reactor.Ctx, req roleCmd) (struct{}, error) {
	_, i, err := r.forMember(c, req.auth, req.Member, "only the leader may change another member's role")
	if err != nil {
		return struct{}{}, err
	}
	r.touch(c)
	t := &r.Members[i]
	if t.Role == req.Role {
		return struct{}{}, nil
	}
	t.Role = req.Role
	if req.Role == RoleObserver && r.Session != nil && r.Session.Status == StatusVoting {
		delete(r.Session.Votes, t.ID)
	}
	r.emit("", "role_changed", roleEvent{Member: t.ID, Role: t.Role})
	r.autoReveal(c)
	return struct{}{}, nil
}

type roleEvent struct {
	Member string `json:"member"`
	Role   string `json:"role"`
}

// forMember authorises a command about member (the caller itself, or
// anyone for the leader) and returns the caller and the member's index;
// forbidden says what a non-leader may not do.
func (r *Room) forMember(c *reactor.Ctx, a auth, member, forbidden string) (*Member, int, error) {
	if err := r.live(c, true); err != nil {
		return nil, 0, err
	}
	m := r.member(a.TokenHash)
	switch {
	case m == nil:
		return nil, 0, ErrUnauthorized
	case m.ID != member && m.ID != r.Leader:
		return nil, 0, &ForbiddenError{Reason: forbidden}
	}
	i := r.memberByID(member)
	if i < 0 {
		return nil, 0, ErrMemberNotFound
	}
	return m, i, nil
}

func (r *Room) leader(c *reactor.Ctx, hash []byte) (*Member, error) {
	if err := r.live(c, true); err != nil {
		return nil, err
	}
	m := r.member(hash)
	switch {
	case m == nil:
		return nil, ErrUnauthorized
	case m.ID != r.Leader:
		return nil, &ForbiddenError{Reason: "only the leader may do this"}
	}
	return m, nil
}

type voteCmd struct {
	auth
	Value string `json:"value"`
}

func (r *Room) vote(c *reactor.Ctx, req voteCmd) (struct{}, error) {
	if err := r.live(c, true); err != nil {
		return struct{}{}, err
	}
	m := r.member(req.TokenHash)
	if m == nil {
		return struct{}{}, ErrUnauthorized
	}
	if !m.votes() {
		return struct{}{}, &ForbiddenError{Reason: "observers do not vote"}
	}
	r.touch(c)
	switch {
	case r.Session == nil || r.Session.Status != StatusVoting:
		r.reject(m.ID, ErrNotVoting)
		return struct{}{}, nil
	case !slices.Contains(r.Deck, req.Value):
		r.reject(m.ID, fmt.Errorf("%q is not a card of this room's deck: %w", req.Value, ErrInvalidVote))
		return struct{}{}, nil
	}
	if r.Session.Votes == nil { // belt and braces: see normalize
		r.Session.Votes = map[string]string{}
	}
	r.Session.Votes[m.ID] = req.Value
	r.emit("", "vote_cast", map[string]string{"member": m.ID})
	r.autoReveal(c)
	return struct{}{}, nil
}

func (r *Room) finish(c *reactor.Ctx, req auth) (struct{}, error) {
	m, err := r.leader(c, req.TokenHash)
	if err != nil {
		return struct{}{}, err
	}
	r.touch(c)
	if r.Session == nil || r.Session.Status != StatusVoting {
		r.reject(m.ID, ErrNotVoting)
		return struct{}{}, nil
	}
	r.reveal(c, RevealLeader)
	return struct{}{}, nil
}

// Why a round was revealed (the "reason" of session_finished).
const (
	RevealLeader = "leader" // the leader revealed
	RevealAuto   = "auto"   // every voter had voted and the room reveals by itself
	RevealTimer  = "timer"  // the leader's countdown ended
)

// reveal finishes the open round: its votes, stats and time go to the
// history and to everyone (session_finished).
func (r *Room) reveal(c *reactor.Ctx, reason string) {
	r.Session.Status = StatusFinished
	r.Session.Deadline = nil
	st := ComputeDeckStats(r.Session.Votes, r.Deck)
	round := Round{Round: r.Session.Round, Story: r.Session.Story, Votes: maps(r.Session.Votes),
		Names: map[string]string{}, Stats: st, FinishedAt: c.Now().UTC()}
	for _, m := range r.Members {
		if _, voted := r.Session.Votes[m.ID]; voted || m.votes() {
			round.Names[m.ID] = m.Name
		}
	}
	r.History = append(r.History, round)
	if n := len(r.History) - MaxHistory; n > 0 {
		r.History = slices.Delete(r.History, 0, n)
	}
	r.emit("", "session_finished", finishedEvent{
		Round: round.Round, Story: r.Session.Story, Votes: maps(r.Session.Votes), Stats: st.clone(), FinishedAt: round.FinishedAt,
		Reason: reason,
	})
	r.finished(c, round)
}

// allVoted reports whether the open round has at least one voter and every
// voter voted.
func (r *Room) allVoted() bool {
	s := r.Session
	if s == nil || s.Status != StatusVoting {
		return false
	}
	voters := 0
	for _, m := range r.Members {
		if !m.votes() {
			continue
		}
		voters++
		if _, ok := s.Votes[m.ID]; !ok {
			return false
		}
	}
	return voters > 0
}

// autoReveal reveals the open round when the room reveals by itself and
// every voter has voted (after a vote, a voter leaving or watching, or the
// setting turned on).
func (r *Room) autoReveal(c *reactor.Ctx) {
	if r.AutoReveal && r.allVoted() {
		r.reveal(c, RevealAuto)
	}
}

type settingsCmd struct {
	auth
	AutoReveal *bool `json:"autoReveal,omitempty"`
}

// settings changes the room's settings (only those given).
func (r *Room) settings(c *reactor.Ctx, req settingsCmd) (struct{}, error) {
	if _, err := r.leader(c, req.TokenHash); err != nil {
		return struct{}{}, err
	}
	r.touch(c)
	if req.AutoReveal != nil {
		r.AutoReveal = *req.AutoReveal
	}
	r.emit("", "settings_changed", settingsEvent{AutoReveal: r.AutoReveal})
	r.autoReveal(c)
	return struct{}{}, nil
}

type settingsEvent struct {
	AutoReveal bool `json:"autoReveal"`
}

type timerCmd struct {
	auth
	Seconds int `json:"seconds"`
}

// timer starts (seconds > 0) or stops (0) the countdown of the open round;
// when it ends the votes are revealed.
func (r *Room) timer(c *reactor.Ctx, req timerCmd) (struct{}, error) {
	m, err := r.leader(c, req.TokenHash)
	if err != nil {
		return struct{}{}, err
	}
	r.touch(c)
	s := r.Session
	if s == nil || s.Status != StatusVoting {
		r.reject(m.ID, ErrNotVoting)
		return struct{}{}, nil
	}
	ev := timerEvent{Round: s.Round}
	if req.Seconds > 0 {
		end := c.Now().UTC().Add(time.Duration(req.Seconds) * time.Second)
		s.Deadline, ev.EndsAt, ev.Seconds = &end, &end, req.Seconds
	} else {
		s.Deadline = nil
	}
	r.emit("", "timer_set", ev)
	r.armCountdown(c)
	return struct{}{}, nil
}

type timerEvent struct {
	Round   int        `json:"round"`
	EndsAt  *time.Time `json:"endsAt"`  // nil: the countdown was stopped
	Seconds int        `json:"seconds"` // its length, 0 when stopped
}

// countdown arrives when a round's deadline may have passed: it reveals
// that round if it is still open and its deadline has passed (a deadline
// moved later re-arms it; one stopped or a round ended ignores it).
func (r *Room) countdown(c *reactor.Ctx, round int) (struct{}, error) {
	s := r.Session
	if !r.Created || r.Closed || s == nil || s.Round != round || s.Status != StatusVoting || s.Deadline == nil {
		return struct{}{}, nil
	}
	if c.Now().Before(*s.Deadline) {
		r.armCountdown(c)
		return struct{}{}, nil
	}
	r.touch(c)
	r.reveal(c, RevealTimer)
	return struct{}{}, nil
}

type removeCmd struct {
	auth
	Member string `json:"member"`
}

func (r *Room) remove(c *reactor.Ctx, req removeCmd) (struct{}, error) {
	m, i, err := r.forMember(c, req.auth, req.Member, "only the leader may remove others")
	if err != nil {
		return struct{}{}, err
	}
	reason := "left"
	if m.ID != req.Member {
		reason = "removed"
	}
	r.Members = slices.Delete(r.Members, i, i+1)
	if r.Session != nil && r.Session.Status == StatusVoting {
		delete(r.Session.Votes, req.Member)
	}
	r.touch(c)
	r.emit("", "member_left", map[string]string{"member": req.Member, "reason": reason})
	if req.Member == r.Leader {
		r.Leader = ""
		if len(r.Members) > 0 {
			r.Leader = r.Members[0].ID // the longest-standing member leads on
			r.emit("", "leader_changed", leaderEvent{Leader: r.Leader, Previous: req.Member, Reason: "left"})
		}
	}
	r.autoReveal(c)
	return struct{}{}, nil
}

func (r *Room) expire(c *reactor.Ctx, gen uint64) (struct{}, error) {
	switch {
	case !r.Created || r.Closed:
	case r.expired(c):
		r.close(c, "idle")
	case gen == r.timerGen:
		r.armTimer(c)
	}
	return struct{}{}, nil
}

// --- queries (read-only, not journaled) ---

// checkQuery authenticates a member command before it is journaled: the
// token's member must exist, lead the room if Leader, vote if Voter, and
// may act on Subject (itself, or anyone if it leads) if not empty; Target,
// if not empty, must be a member.
type checkQuery struct {
	auth
	Leader  bool
	Voter   bool
	Subject string
	Target  string
	// Key is the command's idempotency key: a retry whose first answer the
	// room remembers passes, to get that answer (a member who left retries
	// the leave, say).
	Key string
}

func (r *Room) check(c *reactor.Ctx, q checkQuery) (struct{}, error) {
	if c.Remembers(q.Key) {
		return struct{}{}, nil
	}
	if err := r.live(c, false); err != nil {
		return struct{}{}, err
	}
	m := r.member(q.TokenHash)
	switch {
	case m == nil:
		return struct{}{}, ErrUnauthorized
	case q.Leader && m.ID != r.Leader:
		return struct{}{}, &ForbiddenError{Reason: "only the leader may do this"}
	case q.Voter && !m.votes():
		return struct{}{}, &ForbiddenError{Reason: "observers do not vote"}
	case q.Subject != "" && m.ID != q.Subject && m.ID != r.Leader:
		return struct{}{}, &ForbiddenError{Reason: "only the leader may do this for another member"}
	case q.Subject != "" && r.memberByID(q.Subject) < 0, q.Target != "" && r.memberByID(q.Target) < 0:
		return struct{}{}, ErrMemberNotFound
	}
	return struct{}{}, nil
}

// joinQuery checks a join before it is journaled: the room is open, the
// name free and a seat left.
type joinQuery struct {
	Name string
}

func (r *Room) canJoin(c *reactor.Ctx, q joinQuery) (struct{}, error) {
	if err := r.live(c, false); err != nil {
		return struct{}{}, err
	}
	for _, m := range r.Members {
		if sameName(m.Name, q.Name) {
			return struct{}{}, ErrNameTaken
		}
	}
	if len(r.Members) >= r.Capacity {
		return struct{}{}, ErrRoomFull
	}
	return struct{}{}, nil
}

type stateQuery struct {
	auth
	Optional bool // a missing token is allowed (no myVote then)
	Member   string
}

type snapshot struct {
	Member string
	View   View
	Event  eventlog.Event
	Log    *eventlog.Log `json:"-"` // local rooms only: never crosses a wire
}

func (r *Room) snapshot(c *reactor.Ctx, q stateQuery) (snapshot, error) {
	if err := r.live(c, false); err != nil {
		return snapshot{}, err
	}
	var me *Member
	if len(q.TokenHash) > 0 || !q.Optional {
		if me = r.member(q.TokenHash); me == nil {
			return snapshot{}, ErrUnauthorized
		}
		if q.Member != "" && q.Member != me.ID {
			return snapshot{}, &ForbiddenError{Reason: "another member's stream"}
		}
	}
	v := r.view(me, c.Now())
	out := snapshot{View: v, Log: r.log}
	if me != nil {
		out.Member = me.ID
	}
	data, err := json.Marshal(v)
	if err != nil {
		return snapshot{}, fmt.Errorf("poker: encode snapshot: %w", err)
	}
	out.Event = eventlog.Event{ID: r.LastEventID, Type: "snapshot", Data: data}
	return out, nil
}

// View is the room state as clients see it (GET /api/rooms/{room} and the
// "snapshot" event).
type View struct {
	Room     string       `json:"room"`
	Title    string       `json:"title"`
	Capacity int          `json:"capacity"`
	Deck     []string     `json:"deck"`
	Leader   string       `json:"leader"`
	Members  []MemberView `json:"members"`
	Session  *SessionView `json:"session"`
	// Queue lists the stories waiting for a round, next first.
	Queue []string `json:"queue"`
	// Rounds is the number of rounds finished and kept (see the history).
	Rounds int `json:"rounds"`
	// AutoReveal: the votes are revealed as soon as every voter voted.
	AutoReveal bool   `json:"autoReveal"`
	Me         string `json:"me,omitempty"`
}

// MemberView is one member in a View.
type MemberView struct {
	Member string `json:"member"`
	Name   string `json:"name"`
	Role   string `json:"role"`
	Voted  bool   `json:"voted"`
}

// SessionView is the session in a View: votes and stats only once
// finished; myVote is the caller's own vote.
type SessionView struct {
	Round  int               `json:"round"`
	Story  string            `json:"story"`
	Status string            `json:"status"`
	Votes  map[string]string `json:"votes,omitempty"`
	Stats  *Stats            `json:"stats,omitempty"`
	MyVote *string           `json:"myVote"`
	// Estimate is the agreed estimate recorded for this round once it is
	// finished (null until the leader records one).
	Estimate *string `json:"estimate,omitempty"`
	// Deadline is when the leader's countdown ends (the votes are then
	// revealed), RemainingMs how long that is from the server's clock when
	// the view was taken (clients count down from it: their clocks may
	// differ from the server's).
	Deadline    *time.Time `json:"deadline,omitempty"`
	RemainingMs *int64     `json:"remainingMs,omitempty"`
}

func (r *Room) view(me *Member, now time.Time) View {
	v := View{Room: r.ID, Title: r.Title, Capacity: r.Capacity, Deck: slices.Clone(r.Deck), Leader: r.Leader,
		Members: make([]MemberView, 0, len(r.Members)), Queue: r.queueView(), Rounds: len(r.History),
		AutoReveal: r.AutoReveal}
	if me != nil {
		v.Me = me.ID
	}
	for _, m := range r.Members {
		voted := false
		if r.Session != nil {
			_, voted = r.Session.Votes[m.ID]
		}
		v.Members = append(v.Members, MemberView{Member: m.ID, Name: m.Name, Role: m.Role, Voted: voted})
	}
	if s := r.Session; s != nil {
		sv := &SessionView{Round: s.Round, Story: s.Story, Status: s.Status}
		if s.Deadline != nil && s.Status == StatusVoting {
			d := *s.Deadline
			left := max(d.Sub(now), 0).Milliseconds()
			sv.Deadline, sv.RemainingMs = &d, &left
		}
		if me != nil {
			if mine, ok := s.Votes[me.ID]; ok {
				sv.MyVote = &mine
			}
		}
		if s.Status == StatusFinished {
			sv.Votes = maps(s.Votes)
			st := ComputeDeckStats(s.Votes, r.Deck)
			sv.Stats = &st
			if n := len(r.History); n > 0 && r.History[n-1].Round == s.Round && r.History[n-1].Estimate != nil {
				e := *r.History[n-1].Estimate
				sv.Estimate = &e
			}
		}
		v.Session = sv
	}
	return v
}

// maps copies a map of the room's state for a reply, an event or a
// history entry: what leaves a handler must not alias the state the next
// turn writes to (replies and events are read on other goroutines).
func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type memberEvent struct {
	Member string `json:"member"`
	Name   string `json:"name"`
	Role   string `json:"role"`
}

type finishedEvent struct {
	Round      int               `json:"round"`
	Story      string            `json:"story"`
	Votes      map[string]string `json:"votes"`
	Stats      Stats             `json:"stats"`
	FinishedAt time.Time         `json:"finishedAt"`
	// Reason says who revealed: RevealLeader, RevealAuto or RevealTimer.
	Reason string `json:"reason"`
}

// Round is a finished round as the room keeps it (GET …/history): the
// story, the votes by member id, the names of the members who voted or
// could have (voters at the time), the stats, the agreed estimate (nil
// until the leader records one) and when it was revealed.
type Round struct {
	Round      int               `json:"round"`
	Story      string            `json:"story"`
	Votes      map[string]string `json:"votes"`
	Names      map[string]string `json:"names"`
	Stats      Stats             `json:"stats"`
	Estimate   *string           `json:"estimate"`
	FinishedAt time.Time         `json:"finishedAt"`
}

// historyQuery reads the finished rounds (a member's token required).
type historyQuery struct {
	auth
}

func (r *Room) history(c *reactor.Ctx, q historyQuery) ([]Round, error) {
	if err := r.live(c, false); err != nil {
		return nil, err
	}
	if r.member(q.TokenHash) == nil {
		return nil, ErrUnauthorized
	}
	out := make([]Round, len(r.History))
	for i, h := range r.History {
		h.Votes, h.Names, h.Stats = maps(h.Votes), maps(h.Names), h.Stats.clone()
		if h.Estimate != nil {
			e := *h.Estimate
			h.Estimate = &e
		}
		out[i] = h
	}
	return out, nil
}
