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
	"github.com/reactorgo/reactor/replay"
)

// runJournal runs "poker journal SUBCOMMAND": today only replay, which
// needs the poker registration; inspect and verify are service-independent
// and live in cmd/reactor.
func runJournal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" {
		fmt.Fprintln(stderr, "usage: poker journal replay [-data DIR] [-room-ttl D]")
		fmt.Fprintln(stderr, "(journal inspect and verify: reactor journal inspect|verify DIR/journal)")
		if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
			return nil
		}
		return fmt.Errorf("journal: unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("poker journal replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data, ttl := roomFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: poker journal replay [-data DIR] [-room-ttl D]\n\n"+
			"Replays the checkpoints and journal under -data twice, offline and on copies,\n"+
			"with the server's registration and the given -room-ttl (use the server's),\n"+
			"and checks both runs end in the same state. Run it on a stopped server or\n"+
			"a copy of its -data directory.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("journal replay: unexpected arguments %q", fs.Args())
	}
	cfg := server.Config{RoomTTL: *ttl, Logger: slog.New(slog.DiscardHandler)}
	register := func(rt *reactor.Runtime) error {
		_, err := server.Register(rt, cfg)
		return err
	}
	began := time.Now()
	a, b, err := replay.Check(ctx, filepath.Join(*data, "journal"), filepath.Join(*data, "checkpoints"), register)
	if err != nil {
		return fmt.Errorf("journal replay: %w", err)
	}
	if a != b {
		return fmt.Errorf("journal replay: not deterministic: state %x then %x", a[:8], b[:8])
	}
	fmt.Fprintf(stdout, "ok deterministic: two replays gave state %x (%v)\n", a[:8], time.Since(began).Round(time.Millisecond))
	return nil
}
