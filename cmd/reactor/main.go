// Command reactor is the operator's tool for reactor deployments.
//
//	reactor journal inspect DIR   segments, records per service and method, bytes
//	                              (DIR: the journal directory, or a data
//	                              directory holding journal/; one without a
//	                              journal is refused with exit 1)
//	reactor journal verify DIR    check every checksum; exit 0 "ok N records" or 1
//	                              (1 also for a damaged complete last record:
//	                              only a torn final write is "ok" with a note)
//
// Verify and inspect read the journal without taking its lock and without
// modifying it; run them on a stopped server (on a live one the final write
// may show up as a torn tail, which recovery would truncate).
//
// These commands need nothing but the journal. Replaying a journal needs the
// services that wrote it, registered with the same options, the way go test
// needs the package under test: it is a command of the application's own
// binary, which passes its registration function to replay.Check (the
// planning-poker server: "poker journal replay -data DIR").
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/reactorgo/reactor/internal/journaldir"
	"github.com/reactorgo/reactor/journal"
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
		{name: "replay", usage: "(not here) needs the application's services: run its own replay command (poker journal replay -data DIR)", run: journalReplay},
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

// oneDir returns the journal directory named by the one argument: the
// journal directory itself or a data directory holding journal/. A
// directory with no journal is refused (exit 1), not reported as an empty
// journal.
func oneDir(args []string, stderr io.Writer, name string) (string, int) {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: reactor journal %s DIR  (the journal directory, or a data directory holding journal/)\n", name)
		return "", 2
	}
	dir, _, err := journaldir.Resolve(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "reactor journal %s: %v\n", name, err)
		return "", 1
	}
	return dir, 0
}

func journalVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	dir, code := oneDir(args, stderr, "verify")
	if code != 0 {
		return code
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
	dir, code := oneDir(args, stderr, "inspect")
	if code != 0 {
		return code
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

// journalReplay explains where replay went: it needs the application's
// registrations, which this tool does not have.
func journalReplay(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "reactor journal replay: replay needs the services that wrote the journal, registered as the server")
	fmt.Fprintln(stderr, "registers them; run the application's own replay command (poker journal replay -data DIR), or")
	fmt.Fprintln(stderr, "call replay.Check from your binary with your registration function")
	return 2
}
