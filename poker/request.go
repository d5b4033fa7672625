package poker

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the domain. They are part of the HTTP contract.
const (
	MinCapacity     = 2
	MaxCapacity     = 100
	DefaultCapacity = 20
	MinDeck         = 2
	MaxDeck         = 20
	MaxCardLen      = 8
	MaxNameLen      = 40  // runes
	MaxTitleLen     = 120 // runes
	MaxStoryLen     = 500 // runes
	// MaxQueue bounds the stories waiting in a room's queue.
	MaxQueue = 50
	// MaxHistory bounds the finished rounds a room keeps: beyond it the
	// oldest round is dropped (its "round" number says so: numbers keep
	// growing).
	MaxHistory = 100
)

// Member roles: a voter votes and counts in "X of N voted"; an observer
// watches without voting.
const (
	RoleVoter    = "voter"
	RoleObserver = "observer"
)

// cleanRole applies the default role and validates it.
func cleanRole(field, role string) (string, error) {
	switch role {
	case "":
		return RoleVoter, nil
	case RoleVoter, RoleObserver:
		return role, nil
	}
	return "", invalid(field, "%s must be %q or %q", field, RoleVoter, RoleObserver)
}

// DefaultDeck is the deck of a room created without one.
var DefaultDeck = []string{"0", "1", "2", "3", "5", "8", "13", "21", "?"}

// CreateRequest asks for a new room. Capacity 0 and a nil Deck mean the
// defaults.
type CreateRequest struct {
	Title    string   `json:"title"`
	Leader   string   `json:"leader"`
	Capacity int      `json:"capacity,omitempty"`
	Deck     []string `json:"deck,omitempty"`
	// Role is the leader's role: "voter" (default) or "observer" (a
	// facilitator who does not vote).
	Role string `json:"role,omitempty"`
	// Webhook, if set, is an http(s) URL every finished round of the room
	// is POSTed to, signed with a secret the create answers once (see
	// docs/POKER.md).
	Webhook string `json:"webhook,omitempty"`
	// AutoReveal reveals the votes as soon as every voter has voted.
	AutoReveal bool `json:"autoReveal,omitempty"`
}

// Normalize trims the text fields, applies the defaults and validates the
// request, returning an *InvalidError naming the first bad field.
func (r *CreateRequest) Normalize() error {
	var err error
	if r.Webhook, err = cleanWebhook(r.Webhook); err != nil {
		return err
	}
	if r.Role, err = cleanRole("role", r.Role); err != nil {
		return err
	}
	if r.Title, err = cleanText("title", r.Title, MaxTitleLen); err != nil {
		return err
	}
	if r.Leader, err = cleanName("leader", r.Leader); err != nil {
		return err
	}
	switch {
	case r.Capacity == 0:
		r.Capacity = DefaultCapacity
	case r.Capacity < MinCapacity || r.Capacity > MaxCapacity:
		return invalid("capacity", "capacity must be between %d and %d", MinCapacity, MaxCapacity)
	}
	if r.Deck == nil {
		r.Deck = append([]string(nil), DefaultDeck...)
		return nil
	}
	if len(r.Deck) < MinDeck || len(r.Deck) > MaxDeck {
		return invalid("deck", "deck must have between %d and %d values", MinDeck, MaxDeck)
	}
	seen := make(map[string]bool, len(r.Deck))
	deck := make([]string, len(r.Deck))
	for i, v := range r.Deck {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return invalid("deck", "deck values must not be empty")
		case utf8.RuneCountInString(v) > MaxCardLen:
			return invalid("deck", "deck values must be at most %d characters", MaxCardLen)
		case !printable(v):
			return invalid("deck", "deck values must be printable text")
		case seen[v]:
			return invalid("deck", "deck value %q appears twice", v)
		}
		seen[v] = true
		deck[i] = v
	}
	r.Deck = deck
	return nil
}

// JoinRequest asks to join a room under a name, as a voter (Role "" or
// "voter") or an observer.
type JoinRequest struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
}

// Normalize trims and validates the name and the role.
func (r *JoinRequest) Normalize() (err error) {
	if r.Name, err = cleanName("name", r.Name); err != nil {
		return err
	}
	r.Role, err = cleanRole("role", r.Role)
	return err
}

// RoleRequest changes a member's role.
type RoleRequest struct {
	Role string `json:"role"`
}

// Normalize validates the role (required).
func (r *RoleRequest) Normalize() (err error) {
	if r.Role == "" {
		return invalid("role", "role is required")
	}
	r.Role, err = cleanRole("role", r.Role)
	return err
}

// LeaderRequest hands the leader role to another member.
type LeaderRequest struct {
	Member string `json:"member"`
}

// Normalize validates the member id's shape.
func (r *LeaderRequest) Normalize() error {
	r.Member = strings.TrimSpace(r.Member)
	if r.Member == "" {
		return invalid("member", "member is required")
	}
	if len(r.Member) > 64 || !printable(r.Member) {
		return invalid("member", "member must be a member id")
	}
	return nil
}

// EstimateRequest records the agreed estimate of the last finished round.
// Any card-shaped value is accepted (a team may agree on a value between
// two cards).
type EstimateRequest struct {
	Value string `json:"value"`
}

// Normalize trims and validates the value's shape.
func (r *EstimateRequest) Normalize() error {
	v := VoteRequest{Value: r.Value}
	err := v.Normalize()
	r.Value = v.Value
	return err
}

// SettingsRequest changes room settings; a field left out (null) keeps
// its value.
type SettingsRequest struct {
	AutoReveal *bool `json:"autoReveal"`
}

// Normalize requires at least one setting.
func (r *SettingsRequest) Normalize() error {
	if r.AutoReveal == nil {
		return invalid("autoReveal", "autoReveal is required")
	}
	return nil
}

// Countdown limits (seconds).
const (
	MinTimer = 5
	MaxTimer = 3600
)

// TimerRequest starts a countdown on the open round (Seconds between
// MinTimer and MaxTimer), or stops it (0).
type TimerRequest struct {
	Seconds int `json:"seconds"`
}

// Normalize validates the length.
func (r *TimerRequest) Normalize() error {
	if r.Seconds != 0 && (r.Seconds < MinTimer || r.Seconds > MaxTimer) {
		return invalid("seconds", "seconds must be 0 (stop) or between %d and %d", MinTimer, MaxTimer)
	}
	return nil
}

// QueueRequest lists stories for the queue (appended, or replacing it).
type QueueRequest struct {
	Stories []string `json:"stories"`
}

// Normalize trims and validates every story. An empty list is valid (it
// clears the queue when it replaces it).
func (r *QueueRequest) Normalize() error {
	if len(r.Stories) > MaxQueue {
		return invalid("stories", "at most %d stories may be queued", MaxQueue)
	}
	out := make([]string, len(r.Stories))
	for i, s := range r.Stories {
		c, err := cleanText("stories", s, MaxStoryLen)
		if err != nil {
			return err
		}
		out[i] = c
	}
	r.Stories = out
	return nil
}

// StartRequest starts a voting session on a story.
type StartRequest struct {
	Story string `json:"story"`
}

// Normalize trims and validates the story.
func (r *StartRequest) Normalize() (err error) {
	r.Story, err = cleanText("story", r.Story, MaxStoryLen)
	return err
}

// VoteRequest casts or changes a vote. Whether the value is in the deck is
// the room's decision (a refused vote is reported as a "rejected" event).
type VoteRequest struct {
	Value string `json:"value"`
}

// Normalize trims and validates the value's shape.
func (r *VoteRequest) Normalize() error {
	r.Value = strings.TrimSpace(r.Value)
	switch {
	case r.Value == "":
		return invalid("value", "value is required")
	case utf8.RuneCountInString(r.Value) > MaxCardLen || !printable(r.Value):
		return invalid("value", "value must be a card of at most %d characters", MaxCardLen)
	}
	return nil
}

func cleanText(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", invalid(field, "%s is required", field)
	case !utf8.ValidString(s):
		return "", invalid(field, "%s must be valid UTF-8", field)
	case utf8.RuneCountInString(s) > max:
		return "", invalid(field, "%s must be at most %d characters", field, max)
	case !printable(s):
		return "", invalid(field, "%s must not contain control characters", field)
	}
	return s, nil
}

func cleanName(field, s string) (string, error) {
	if utf8.ValidString(s) {
		// Invisible characters go and inner runs of spaces collapse ("ann
		// lee" with two spaces is "ann lee"); what is left must show
		// something.
		d := displayName(s)
		if d == "" && strings.TrimSpace(s) != "" {
			return "", invalid(field, "%s must contain a visible character", field)
		}
		s = d
	}
	return cleanText(field, s, MaxNameLen)
}

func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || (!unicode.IsPrint(r) && r != ' ') {
			return false
		}
	}
	return true
}
