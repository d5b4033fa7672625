package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/journaldir"
	"github.com/reactorgo/reactor/journal"
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
	n := fs.Int("n", 20, "list the last `N` records (0: none, -1: all)")
	jdir, _, err := journalDirArg(fs, args, nil)
	if err != nil {
		return quietHelp(err)
	}
	type rec struct {
		seq                  uint64
		at                   int64
		service, method, key string
		size                 int
	}
	var (
		last             []rec
		first, latest    int64
		services, method = map[string]int{}, map[string]int{}
	)
	rep, err := journal.Inspect(ctx, nil, jdir, func(r *journal.Record) error {
		services[r.Service]++
		method[r.Method]++
		if first == 0 {
			first = r.Time
		}
		latest = r.Time
		if *n != 0 {
			last = append(last, rec{r.Seq, r.Time, r.Service, r.Method, r.Key, len(r.Payload)})
			if *n > 0 && len(last) > 2**n { // keep memory bounded: trim in halves
				last = append(last[:0], last[len(last)-*n:]...)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal inspect: %w", err)
	}
	if *n > 0 && len(last) > *n {
		last = last[len(last)-*n:]
	}
	fmt.Fprintf(stdout, "journal %s\n\n", jdir)
	fmt.Fprintf(stdout, "%-26s %12s %10s %20s %20s\n", "SEGMENT", "SIZE", "RECORDS", "FIRST SEQ", "LAST SEQ")
	for _, s := range rep.Segments {
		fmt.Fprintf(stdout, "%-26s %12d %10d %20d %20d\n", s.Name, s.Size, s.Records, s.FirstSeq, s.LastSeq)
	}
	if t := rep.TornTail; t != nil && t.Size > t.Offset {
		fmt.Fprintf(stdout, "torn tail: %s at offset %d (%d bytes, %s; recovery truncates it)\n", t.Segment, t.Offset, t.Size-t.Offset, t.Reason)
	}
	fmt.Fprintf(stdout, "\nrecords %d, seq %d..%d, bytes %d\n", rep.Records, rep.FirstSeq, rep.LastSeq, rep.Bytes)
	if rep.Records > 0 {
		fmt.Fprintf(stdout, "time %s .. %s (%s)\n", stamp(first), stamp(latest), time.Unix(0, latest).Sub(time.Unix(0, first)).Round(time.Second))
	}
	counts(stdout, "SERVICE", services)
	counts(stdout, "METHOD", method)
	if len(last) > 0 {
		fmt.Fprintf(stdout, "\nLAST %d RECORDS\n%-10s %-24s %-36s %-24s %8s  %s\n", len(last), "SEQ", "TIME (UTC)", "SERVICE", "METHOD", "BYTES", "KEY")
		for _, r := range last {
			fmt.Fprintf(stdout, "%-10d %-24s %-36s %-24s %8d  %s\n", r.seq, stamp(r.at), r.service, r.method, r.size, r.key)
		}
	}
	return nil
}

func stamp(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000") }

func counts(w io.Writer, title string, m map[string]int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if m[keys[a]] != m[keys[b]] {
			return m[keys[a]] > m[keys[b]]
		}
		return keys[a] < keys[b]
	})
	fmt.Fprintf(w, "\n%-40s %10s\n", title, "RECORDS")
	for _, k := range keys {
		fmt.Fprintf(w, "%-40s %10d\n", k, m[k])
	}
}

// journalVerify checks every checksum: "ok N records", or an error naming
// segment and offset.
func journalVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	jdir, _, err := journalDirArg(fs, args, nil)
	if err != nil {
		return quietHelp(err)
	}
	rep, err := journal.Inspect(ctx, nil, jdir, nil)
	if err != nil {
		return fmt.Errorf("journal verify: %w", err)
	}
	if t := rep.TornTail; t != nil {
		if t.TrailerRewrite() {
			fmt.Fprintf(stdout, "note: the last record of %s (ending at offset %d) is intact but its trailer is torn; recovery keeps it and rewrites the trailer\n", t.Segment, t.Offset)
		}
		if t.Size > t.Offset {
			fmt.Fprintf(stdout, "note: torn tail in %s at offset %d (%d bytes, %s); never acknowledged, recovery truncates it\n", t.Segment, t.Offset, t.Size-t.Offset, t.Reason)
		}
	}
	fmt.Fprintf(stdout, "ok %d records in %s\n", rep.Records, jdir)
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
