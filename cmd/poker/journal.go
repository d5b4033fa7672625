package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/journalcli"
	"github.com/reactorgo/reactor/internal/journaldir"
	"github.com/reactorgo/reactor/replay"
)

const journalUsage = `usage: poker journal inspect [-n N] DIR
usage: poker journal verify DIR
usage: poker journal replay [-room-ttl D] DIR   (or -data DIR)

DIR is the server's data directory (-data; its journal is DIR/journal) or the
journal directory itself. A directory holding no journal is refused (exit 1).
Run them on a stopped server or a copy of its data directory.`

// runJournal runs "poker journal SUBCOMMAND". Every subcommand takes the
// same directory argument (see journaldir.Resolve) and refuses one that
// holds no journal.
func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		fmt.Fprintln(stderr, journalUsage)
		return nil
	}
	switch args[0] {
	case "inspect":
		return journalInspect(ctx, args[1:], stdout, stderr)
	case "verify":
		return journalVerify(ctx, args[1:], stdout, stderr)
	case "replay":
		return journalReplay(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, journalUsage)
	return fmt.Errorf("journal: unknown command %q", args[0])
}

// journalDirArg parses fs (flags may come before or after the directory)
// and returns the journal and data directories named by its one argument
// (or by -data, when the command has it and no argument is given).
func journalDirArg(fs *flag.FlagSet, args []string, data *string) (jdir, ddir string, err error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	dir := ""
	switch {
	case len(pos) == 1:
		dir = pos[0]
	case len(pos) == 0 && data != nil:
		dir = *data
	default:
		fs.Usage()
		return "", "", fmt.Errorf("journal %s: want one directory, got %q", fs.Name(), pos)
	}
	jdir, ddir, err = journaldir.Resolve(dir)
	if err != nil {
		return "", "", fmt.Errorf("journal %s: %w", fs.Name(), err)
	}
	return jdir, ddir, nil
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), journalUsage)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// journalInspect prints the segments, the records per service and method,
// the time span of the records and the last N records with their times.
func journalInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", stderr)
	n := fs.Int("n", 20, "list the last `N` records with their times (0: none, -1: all)")
	jdir, _, err := journalDirArg(fs, args, nil)
	if err != nil {
		return quietHelp(err)
	}
	if err := journalcli.Inspect(ctx, jdir, *n, stdout); err != nil {
		return fmt.Errorf("journal inspect: %w", err)
	}
	return nil
}

// journalVerify checks every checksum: "ok N records in DIR", or an error
// naming segment and offset.
func journalVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	jdir, _, err := journalDirArg(fs, args, nil)
	if err != nil {
		return quietHelp(err)
	}
	if err := journalcli.Verify(ctx, jdir, stdout); err != nil {
		return fmt.Errorf("journal verify: %w", err)
	}
	return nil
}

// journalReplay replays the checkpoints and journal twice, offline and on
// copies, with the server's registration, and checks both runs end in the
// same state.
func journalReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	data, ttl := roomFlags(fs)
	jdir, ddir, err := journalDirArg(fs, args, data)
	if err != nil {
		return quietHelp(err)
	}
	cfg := server.Config{RoomTTL: *ttl, Logger: slog.New(slog.DiscardHandler)}
	register := func(rt *reactor.Runtime) error {
		_, err := server.Register(rt, cfg)
		return err
	}
	began := time.Now()
	a, b, err := replay.Check(ctx, jdir, filepath.Join(ddir, "checkpoints"), register)
	if err != nil {
		return fmt.Errorf("journal replay: %w", err)
	}
	if a != b {
		return fmt.Errorf("journal replay: not deterministic: state %x then %x", a[:8], b[:8])
	}
	fmt.Fprintf(stdout, "ok deterministic: two replays gave state %x (%v)\n", a[:8], time.Since(began).Round(time.Millisecond))
	return nil
}

// quietHelp turns -h into success (the usage was printed).
func quietHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
