// Package poker is the planning-poker domain on the reactor runtime: rooms
// where a leader runs voting rounds over user stories and members vote with
// cards.
//
// Each room is a keyed child service at /rooms/{id}. Its handlers run one at
// a time, so the rules that involve concurrent requests — unique member
// names, room capacity, votes during an open session — hold without locks.
// Members are voters or observers (who watch without voting); the leader
// queues stories, starts numbered rounds (a re-vote is a new round of the
// same story), reveals, records the agreed estimate of the last finished
// round and may hand the role over. Finished rounds are kept in the room's
// state (at most MaxHistory) and read with Rooms.History. A room may reveal
// by itself once every voter voted (auto-reveal), and the leader may set a
// countdown on the open round that reveals it when it ends; the deadline is
// part of the room's durable state and is armed again after a restart.
//
// Every command a room accepts publishes events (member_joined, member_left,
// leader_changed, role_changed, session_started, round_started,
// queue_changed, vote_cast, session_finished, estimate_recorded,
// settings_changed, timer_set, rejected, room_closed) to the room's [eventlog.Log], from which each member's
// Server-Sent-Events stream reads. A "rejected" event goes only to the
// member whose command was refused.
//
// Identifiers and tokens are drawn from crypto/rand outside the handlers and
// passed in the commands, so a journaled command replays to the same room
// and member ids; only SHA-256 hashes of tokens are passed and stored, so
// neither the journal nor the checkpoints hold a usable token. Event ids
// continue across restarts: a room records the last id it issued in its
// state and its log is recreated from there (and refilled by journal
// replay, so clients resume with Last-Event-ID).
//
// A room closes (room_closed, then "not found") after Options.TTL without a
// command. The package holds no HTTP code: cmd/poker maps it to the API.
package poker
