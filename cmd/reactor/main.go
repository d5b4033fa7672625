// Command reactor is the operator's tool for reactor deployments.
//
//	reactor journal inspect [-n N] DIR   segments, records per service and method,
//	                                     bytes, the time span, and the last N
//	                                     records (default 20) with their times
//	reactor journal verify DIR           check every checksum; exit 0 "ok N records
//	                                     in DIR" or 1 (1 also for a damaged complete
//	                                     last record: only a torn final write is
//	                                     "ok" with a note)
//
// DIR is the journal directory or a data directory holding journal/ (the
// same argument as "poker journal"); one that holds no journal is refused
// with exit 1 and a message saying so.
//
// Verify and inspect read the journal without taking its lock and without
// modifying it; run them on a stopped server (on a live one the final write
// may show up as a torn tail, which recovery would truncate).
//
// These commands need nothing but the journal. Replaying a journal needs the
// services that wrote it, registered with the same options, the way go test
// needs the package under test: it is a command of the application's own
// binary, which passes its registration function to replay.Check (the
// planning-poker server: "poker journal replay DIR").
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/reactorgo/reactor/internal/journalcli"
	"github.com/reactorgo/reactor/internal/journaldir"
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
		{name: "inspect", usage: "[-n N] DIR  segments, records per service and method, bytes, time span, the last N records with times", run: journalInspect},
		{name: "verify", usage: "DIR  check every checksum; exit 0 when the journal is sound", run: journalVerify},
		{name: "replay", usage: "(not here) needs the application's services: run its own replay command (poker journal replay DIR)", run: journalReplay},
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

// dirArgs parses the flags of fs (before or after the directory) and
// returns the journal directory named by the one argument: the journal
// directory itself or a data directory holding journal/. A directory with
// no journal is refused (exit 1), not reported as an empty journal.
func dirArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (string, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", 2 // the flag package printed why (or the usage, for -h)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", 2
	}
	dir, _, err := journaldir.Resolve(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "reactor journal %s: %v\n", fs.Name(), err)
		return "", 1
	}
	return dir, 0
}

func newFlags(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: reactor journal %s %s\n  DIR: the journal directory, or a data directory holding journal/\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

func journalVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	dir, code := dirArgs(newFlags("verify", "DIR", stderr), args, stderr)
	if code != 0 {
		return code
	}
	if err := journalcli.Verify(ctx, dir, stdout); err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return 1
	}
	return 0
}

func journalInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("inspect", "[-n N] DIR", stderr)
	n := fs.Int("n", 20, "list the last `N` records with their times (0: none, -1: all)")
	dir, code := dirArgs(fs, args, stderr)
	if code != 0 {
		return code
	}
	if err := journalcli.Inspect(ctx, dir, *n, stdout); err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return 1
	}
	return 0
}

// journalReplay explains where replay went: it needs the application's
// registrations, which this tool does not have.
func journalReplay(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "reactor journal replay: replay needs the services that wrote the journal, registered as the server")
	fmt.Fprintln(stderr, "registers them; run the application's own replay command (poker journal replay DIR), or")
	fmt.Fprintln(stderr, "call replay.Check from your binary with your registration function")
	return 2
}
