package poker

import (
	"errors"
	"fmt"

	"github.com/reactorgo/reactor"
)

// Sentinel errors returned by the room operations. Compare with errors.Is.
// They are registered with the runtime (stable ids and codes), so a retried
// request answered from the idempotency table — also after a restart — gets
// an error that still matches them.
var (
	// ErrRoomNotFound: no room with this id, or it was closed.
	ErrRoomNotFound = reactor.NewError("poker.room_not_found", reactor.CodeNotFound, "poker: room not found")
	// ErrNameTaken: another member of the room uses this name (names are
	// trimmed and compared case-insensitively).
	ErrNameTaken = reactor.NewError("poker.name_taken", reactor.CodeAlreadyExists, "poker: name taken")
	// ErrRoomFull: the room has reached its capacity.
	ErrRoomFull = reactor.NewError("poker.room_full", reactor.CodeResourceExhausted, "poker: room full")
	// ErrUnauthorized: the token is missing or belongs to no member.
	ErrUnauthorized = reactor.NewError("poker.unauthorized", reactor.CodeUnauthenticated, "poker: missing or invalid token")
	// ErrForbidden: the member may not do this (not the leader, another
	// member's stream or removal).
	ErrForbidden = reactor.NewError("poker.forbidden", reactor.CodePermissionDenied, "poker: not allowed")
	// ErrMemberNotFound: the member to remove is not in the room.
	ErrMemberNotFound = reactor.NewError("poker.member_not_found", reactor.CodeNotFound, "poker: member not found")
	// ErrNotVoting: a vote or a finish while no session is open. It is
	// reported to the member as a "rejected" event, not as an error.
	ErrNotVoting = reactor.NewError("poker.not_voting", reactor.CodeFailedPrecondition, "poker: no voting session open")
	// ErrInvalidVote: a vote whose value is not in the room's deck. It is
	// reported as a "rejected" event.
	ErrInvalidVote = reactor.NewError("poker.invalid_vote", reactor.CodeInvalidArgument, "poker: value not in the deck")
	// ErrRoomExists: a room id was created twice (ids are random, so this
	// only happens to a retried create).
	ErrRoomExists = reactor.NewError("poker.room_exists", reactor.CodeAlreadyExists, "poker: room exists")
	// ErrTooManyRooms: as many rooms exist as Options.MaxRooms allows.
	ErrTooManyRooms = reactor.NewError("poker.too_many_rooms", reactor.CodeResourceExhausted, "poker: too many rooms")
	// ErrTooManyStreams: the member has Options.StreamsPerMember event
	// streams open already.
	ErrTooManyStreams = reactor.NewError("poker.too_many_streams", reactor.CodeResourceExhausted, "poker: too many event streams for this member")
	// ErrNoRound: an estimate while no round has been finished (or the
	// finished rounds were all dropped).
	ErrNoRound = reactor.NewError("poker.no_round", reactor.CodeFailedPrecondition, "poker: no finished round")
	// ErrQueueEmpty: "next story" with no story queued.
	ErrQueueEmpty = reactor.NewError("poker.queue_empty", reactor.CodeFailedPrecondition, "poker: no story queued")
	// ErrQueueFull: queuing would hold more than MaxQueue stories.
	ErrQueueFull = reactor.NewError("poker.queue_full", reactor.CodeResourceExhausted, "poker: story queue full")
	// ErrClosed: the Rooms were closed.
	ErrClosed = reactor.NewError("poker.closed", reactor.CodeUnavailable, "poker: closed")
)

// ForbiddenError says what the member was not allowed to do; it matches
// ErrForbidden. Reason is safe to show to the member.
type ForbiddenError struct {
	Reason string `json:"reason"`
}

func (e *ForbiddenError) Error() string { return "poker: " + e.Reason }

// Is makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

func init() {
	reactor.RegisterErrorType[*ForbiddenError]("poker.forbidden_reason", reactor.CodePermissionDenied)
	reactor.RegisterErrorType[*InvalidError]("poker.invalid", reactor.CodeInvalidArgument)
}

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
