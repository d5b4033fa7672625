package poker

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the room operations. Compare with errors.Is.
var (
	// ErrRoomNotFound: no room with this id, or it was closed.
	ErrRoomNotFound = errors.New("poker: room not found")
	// ErrNameTaken: another member of the room uses this name (names are
	// trimmed and compared case-insensitively).
	ErrNameTaken = errors.New("poker: name taken")
	// ErrRoomFull: the room has reached its capacity.
	ErrRoomFull = errors.New("poker: room full")
	// ErrUnauthorized: the token is missing or belongs to no member.
	ErrUnauthorized = errors.New("poker: missing or invalid token")
	// ErrForbidden: the member may not do this (not the leader, another
	// member's stream or removal).
	ErrForbidden = errors.New("poker: not allowed")
	// ErrMemberNotFound: the member to remove is not in the room.
	ErrMemberNotFound = errors.New("poker: member not found")
	// ErrNotVoting: a vote or a finish while no session is open. It is
	// reported to the member as a "rejected" event, not as an error.
	ErrNotVoting = errors.New("poker: no voting session open")
	// ErrInvalidVote: a vote whose value is not in the room's deck. It is
	// reported as a "rejected" event.
	ErrInvalidVote = errors.New("poker: value not in the deck")
	// ErrRoomExists: a room id was created twice (ids are random, so this
	// only happens to a retried create).
	ErrRoomExists = errors.New("poker: room exists")
	// ErrClosed: the Rooms were closed.
	ErrClosed = errors.New("poker: closed")
)

// InvalidError reports a request field that fails validation.
type InvalidError struct {
	Field string // JSON name of the field, e.g. "capacity"
	Msg   string
}

func (e *InvalidError) Error() string { return e.Msg }

func invalid(field, format string, args ...any) *InvalidError {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// refusalCode is the machine-readable code of a refusal sent in a
// "rejected" event.
func refusalCode(err error) string {
	switch {
	case errors.Is(err, ErrNotVoting):
		return "not_voting"
	case errors.Is(err, ErrInvalidVote):
		return "invalid_vote"
	}
	return "rejected"
}
