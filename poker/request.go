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
)

// DefaultDeck is the deck of a room created without one.
var DefaultDeck = []string{"0", "1", "2", "3", "5", "8", "13", "21", "?"}

// CreateRequest asks for a new room. Capacity 0 and a nil Deck mean the
// defaults.
type CreateRequest struct {
	Title    string   `json:"title"`
	Leader   string   `json:"leader"`
	Capacity int      `json:"capacity,omitempty"`
	Deck     []string `json:"deck,omitempty"`
}

// Normalize trims the text fields, applies the defaults and validates the
// request, returning an *InvalidError naming the first bad field.
func (r *CreateRequest) Normalize() error {
	var err error
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

// JoinRequest asks to join a room under a name.
type JoinRequest struct {
	Name string `json:"name"`
}

// Normalize trims and validates the name.
func (r *JoinRequest) Normalize() (err error) {
	r.Name, err = cleanName("name", r.Name)
	return err
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
