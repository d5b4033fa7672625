package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/journal"
)

// maxCorruptNoted bounds the corrupt checkpoints remembered (and logged).
const maxCorruptNoted = 64

// health follows the storage failures requests run into, so that /healthz
// reports them while they last and the log gets one line per episode, not
// one per request:
//
//   - disk full: from the first request refused with ENOSPC until the
//     journal acknowledges a record again (it stays usable: space that
//     returns ends the episode);
//   - a corrupt room checkpoint: until the process restarts (an operator
//     repairs or removes the file); the room answers 503 meanwhile.
//
// A fail-stopped journal is read from the journal itself.
type health struct {
	log     *slog.Logger
	journal *journal.Journal

	full      atomic.Bool
	mu        sync.Mutex
	fullSince time.Time
	fullAcked uint64            // journal Acked when the episode began
	corrupt   map[string]string // error text (names service and file) → first seen

	diskFull, corruptLoads, journalFailed atomic.Uint64 // requests refused, by cause
}

func newHealth(log *slog.Logger, j *journal.Journal) *health {
	return &health{log: log, journal: j, corrupt: map[string]string{}}
}

// observe notes the storage failure err is, if any.
func (h *health) observe(err error) {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		h.diskFull.Add(1)
		if h.full.Load() {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.full.Load() {
			h.fullSince, h.fullAcked = time.Now(), h.journal.Stats().Acked
			h.full.Store(true)
			h.log.Error("poker: disk full: commands are refused (503 storage_full) until space returns", "err", err)
		}
	case errors.Is(err, journal.ErrFailed):
		h.journalFailed.Add(1)
	case errors.Is(err, checkpoint.ErrCorrupt):
		h.corruptLoads.Add(1)
		msg := err.Error()
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, seen := h.corrupt[msg]; !seen && len(h.corrupt) < maxCorruptNoted {
			h.corrupt[msg] = time.Now().UTC().Format(time.RFC3339)
			// The error names the room's address and the checkpoint file.
			h.log.Error("poker: corrupt checkpoint: the room answers 503 checkpoint_corrupt until the file is repaired or removed", "err", err)
		}
	}
}

// problems returns what is wrong now, empty when healthy.
func (h *health) problems() []string {
	st := h.journal.Stats()
	var out []string
	if st.Err != nil {
		out = append(out, "journal failed: restart the server")
	}
	if h.full.Load() {
		h.mu.Lock()
		if st.Acked > h.fullAcked {
			h.full.Store(false)
			h.log.Info("poker: disk full episode over: the journal accepts writes again", "lasted", time.Since(h.fullSince).Round(time.Millisecond))
		} else {
			out = append(out, fmt.Sprintf("journal disk full since %s", h.fullSince.UTC().Format(time.RFC3339)))
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	if n := len(h.corrupt); n > 0 {
		out = append(out, fmt.Sprintf("%d corrupt room checkpoint(s) (see the log)", n))
	}
	h.mu.Unlock()
	return out
}

// ok is called after a command succeeded: it ends a disk-full episode.
func (h *health) ok() {
	if h.full.Load() {
		h.problems()
	}
}

func joinProblems(p []string) string { return strings.Join(p, "; ") }
