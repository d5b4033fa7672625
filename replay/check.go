// Package replay checks that a journal replays deterministically: the same
// checkpoints and journal, replayed twice offline by the application's own
// service registrations, must give the same states.
//
// Replay needs the code that wrote the journal — the services, their
// methods and the options they were registered with — the way go test
// needs the package under test. So the check is a library function an
// application calls from its own binary (poker: `poker journal replay`),
// passing the same registration function its server uses; the
// service-independent commands (journal inspect and verify) are in
// cmd/reactor.
package replay

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
)

// Check is a determinism check a user can run on a production
// journal: it copies journalDir and checkpointDir (which may be missing)
// into temporary directories twice, and each time starts a runtime set up by
// register (which registers the same services, with the same options, as the
// production binary), lets Start replay the journal, closes it so every
// service is checkpointed, and hashes every checkpoint. It returns both
// digests; they differ when some handler's outcome depends on something
// other than its state, its request, Ctx.Now and Ctx.Rand (a map iteration
// order, the wall clock, a global).
//
// The originals are never modified. Both runs use one goroutine, a fixed
// seed and a fixed clock, so that messages the replay sends on are handled
// alike too. The runtime's own bookkeeping keys (under "/.reactor/") are
// left out of the digests.
func Check(ctx context.Context, journalDir, checkpointDir string, register func(*reactor.Runtime) error) (first, second [32]byte, err error) {
	var digests [2][32]byte
	for run := range digests {
		digests[run], err = replayOnce(ctx, journalDir, checkpointDir, register)
		if err != nil {
			return first, second, fmt.Errorf("replay: check, run %d: %w", run+1, err)
		}
	}
	return digests[0], digests[1], nil
}

func replayOnce(ctx context.Context, journalDir, checkpointDir string, register func(*reactor.Runtime) error) ([32]byte, error) {
	var digest [32]byte
	tmp, err := os.MkdirTemp("", "reactor-replay-check")
	if err != nil {
		return digest, err
	}
	defer os.RemoveAll(tmp)
	jdir, cdir := filepath.Join(tmp, "journal"), filepath.Join(tmp, "checkpoints")
	if err := copyDir(journalDir, jdir); err != nil {
		return digest, err
	}
	if err := copyDir(checkpointDir, cdir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return digest, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	j, err := journal.Open(ctx, journal.Options{Dir: jdir, Logger: quiet})
	if err != nil {
		return digest, err
	}
	defer j.Close()
	store, err := file.Open(file.Options{Dir: cdir})
	if err != nil {
		return digest, err
	}
	epoch := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	rt, err := reactor.New(reactor.Config{
		Journal: j, Store: store, SingleGoroutine: true, Seed: 1, Logger: quiet,
		Clock: func() time.Time { return epoch }, CheckpointInterval: time.Hour,
	})
	if err != nil {
		return digest, err
	}
	if err := register(rt); err != nil {
		return digest, fmt.Errorf("register: %w", err)
	}
	if err := rt.Start(ctx); err != nil {
		return digest, err
	}
	if err := rt.Close(ctx); err != nil {
		return digest, err
	}
	keys, err := store.Keys(ctx)
	if err != nil {
		return digest, err
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		if strings.HasPrefix(k, runtimeKeys) {
			continue // the runtime's bookkeeping (the journal floor), not a service's state
		}
		cp, err := store.Load(ctx, k)
		if err != nil {
			return digest, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", k, cp.Seq, len(cp.Data))
		h.Write(cp.Data)
	}
	copy(digest[:], h.Sum(nil))
	return digest, nil
}

// runtimeKeys prefixes the checkpoint keys the runtime keeps for itself
// (e.g. "/.reactor/journal-floor"); they are not service state.
const runtimeKeys = "/.reactor/"

// copyDir copies the regular files of src (one level) into dst.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
