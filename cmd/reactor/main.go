// Command reactor is the operator's tool for reactor deployments.
//
//	reactor journal inspect DIR   segments, records per service and method, bytes
//	reactor journal verify DIR    check every checksum; exit 0 "ok N records" or 1
//	                              (1 also for a damaged complete last record:
//	                              only a torn final write is "ok" with a note)
//	reactor journal replay DATADIR replay a poker server's -data directory twice
//	                              offline and compare the resulting states
//
// Replay works on copies and never modifies DATADIR. For journals of your
// own services, call reactor.ReplayCheck from your binary with the same
// registrations.
//
// Verify and inspect read the journal without taking its lock and without
// modifying it; run them on a stopped server (on a live one the final write
// may show up as a torn tail, which recovery would truncate).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// command is one subcommand; groups nest (reactor journal verify).
type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	sub   []*command
}

// commands is the command tree. Add a subcommand by adding an entry.
var commands = &command{name: "reactor", sub: []*command{
	{name: "journal", usage: "inspect and verify journals", sub: []*command{
		{name: "inspect", usage: "DIR  list segments, records per service and method, total bytes", run: journalInspect},
		{name: "verify", usage: "DIR  check every checksum; exit 0 when the journal is sound", run: journalVerify},
		{name: "replay", usage: "DATADIR  replay a poker server's journal twice offline and compare the states (determinism check)", run: journalReplay},
	}},
}}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, path := commands, "reactor"
	for c.run == nil {
		if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
			usage(stderr, path, c)
			return 2
		}
		var next *command
		for _, s := range c.sub {
			if s.name == args[0] {
				next = s
			}
		}
		if next == nil {
			fmt.Fprintf(stderr, "%s: unknown command %q\n", path, args[0])
			usage(stderr, path, c)
			return 2
		}
		c, path, args = next, path+" "+next.name, args[1:]
	}
	return c.run(ctx, args, stdout, stderr)
}

func usage(w io.Writer, path string, c *command) {
	fmt.Fprintf(w, "usage: %s <command>\n", path)
	for _, s := range c.sub {
		fmt.Fprintf(w, "  %s %s  %s\n", path, s.name, s.usage)
	}
}

func oneDir(args []string, stderr io.Writer, name string) (string, bool) {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: reactor journal %s DIR\n", name)
		return "", false
	}
	return args[0], true
}

func journalVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	dir, ok := oneDir(args, stderr, "verify")
	if !ok {
		return 2
	}
	rep, err := journal.Inspect(ctx, nil, dir, nil)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return 1
	}
	if t := rep.TornTail; t != nil {
		if t.TrailerRewrite() {
			fmt.Fprintf(stdout, "note: the last record of %s (ending at offset %d) is intact but its trailer is torn or damaged; recovery keeps it and rewrites the trailer\n",
				t.Segment, t.Offset)
		}
		if t.Size > t.Offset {
			fmt.Fprintf(stdout, "note: torn tail in %s at offset %d (%d bytes, %s); never acknowledged, recovery truncates it\n",
				t.Segment, t.Offset, t.Size-t.Offset, t.Reason)
		}
	}
	fmt.Fprintf(stdout, "ok %d records\n", rep.Records)
	return 0
}

func journalInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	dir, ok := oneDir(args, stderr, "inspect")
	if !ok {
		return 2
	}
	services, methods := map[string]int{}, map[string]int{}
	rep, err := journal.Inspect(ctx, nil, dir, func(r *journal.Record) error {
		services[r.Service]++
		methods[r.Method]++
		return nil
	})
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%-26s %12s %12s %20s %20s %18s\n", "SEGMENT", "SIZE", "RECORDS", "FIRST SEQ", "LAST SEQ", "SALT")
	for _, s := range rep.Segments {
		fmt.Fprintf(stdout, "%-26s %12d %12d %20d %20d %018x\n", s.Name, s.Size, s.Records, s.FirstSeq, s.LastSeq, s.Salt)
	}
	if t := rep.TornTail; t != nil {
		if t.TrailerRewrite() {
			fmt.Fprintf(stdout, "torn trailer: %s, last record ending at offset %d (recovery rewrites it)\n", t.Segment, t.Offset)
		}
		if t.Size > t.Offset {
			fmt.Fprintf(stdout, "torn tail: %s at offset %d (%d bytes, %s)\n", t.Segment, t.Offset, t.Size-t.Offset, t.Reason)
		}
	}
	fmt.Fprintf(stdout, "\nrecords %d, seq %d..%d, bytes %d\n", rep.Records, rep.FirstSeq, rep.LastSeq, rep.Bytes)
	printCounts(stdout, "SERVICE", services)
	printCounts(stdout, "METHOD", methods)
	return 0
}

func printCounts(w io.Writer, title string, m map[string]int) {
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
	fmt.Fprintf(w, "\n%-40s %12s\n", title, "RECORDS")
	for _, k := range keys {
		fmt.Fprintf(w, "%-40s %12d\n", k, m[k])
	}
}

func journalReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	dir, ok := oneDir(args, stderr, "replay")
	if !ok {
		return 2
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	register := func(rt *reactor.Runtime) error {
		_, err := poker.Register(rt, poker.Options{Logger: quiet, Extra: []reactor.Option{reactor.Journaled()}})
		return err
	}
	began := time.Now()
	a, b, err := reactor.ReplayCheck(ctx, filepath.Join(dir, "journal"), filepath.Join(dir, "checkpoints"), register)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return 1
	}
	if a != b {
		fmt.Fprintf(stdout, "FAIL replay is not deterministic: state %x then %x\n", a[:8], b[:8])
		return 1
	}
	fmt.Fprintf(stdout, "ok deterministic: two replays gave state %x (%v)\n", a[:8], time.Since(began).Round(time.Millisecond))
	return 0
}
