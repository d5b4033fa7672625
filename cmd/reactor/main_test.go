package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/journal"
)

// writeJournal writes 100 records in dir, 75 for /rooms/1 and 25 for
// /rooms/2, over several small segments.
func writeJournal(t *testing.T, dir string) {
	t.Helper()
	recs := make([]*journal.Record, 100)
	for i := range recs {
		svc := "/rooms/1"
		if i%4 == 0 {
			svc = "/rooms/2"
		}
		recs[i] = &journal.Record{Service: svc, Method: "room.join", Payload: []byte("payload"), Time: time.Now().UnixNano()}
	}
	testutil.WriteJournal(t, journal.Options{Dir: dir, SegmentSize: 4096}, recs...)
}

func runCLI(args ...string) (int, string) {
	var out bytes.Buffer
	code := run(context.Background(), args, &out, &out)
	return code, out.String()
}

func TestVerifyAndInspect(t *testing.T) {
	dir := t.TempDir()
	writeJournal(t, dir)
	if code, out := runCLI("journal", "verify", dir); code != 0 || out != "ok 100 records in "+dir+"\n" {
		t.Fatalf("verify: %d %q", code, out)
	}
	code, out := runCLI("journal", "inspect", dir)
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, out)
	}
	for _, want := range []string{"00000000000000000001.wal", "records 100, seq 1..100", "/rooms/1", "75", "/rooms/2", "25", "room.join"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out)
		}
	}

	// Damage a record in the first (non-final) segment.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	b, _ := os.ReadFile(segs[0])
	b[100] ^= 1
	os.WriteFile(segs[0], b, 0o644)
	code, out = runCLI("journal", "verify", dir)
	if code != 1 || !strings.Contains(out, filepath.Base(segs[0])) || !strings.Contains(out, "offset") {
		t.Fatalf("verify of a damaged journal: %d %q", code, out)
	}
}

// A flipped byte in the final, complete record is corruption (exit 1), not a
// torn tail that "ok" would hide; a genuinely torn tail is still ok with a
// note.
func TestVerifyDamagedLastRecord(t *testing.T) {
	dir := t.TempDir()
	writeJournal(t, dir)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	last := segs[len(segs)-1]
	orig, _ := os.ReadFile(last)

	b := append([]byte(nil), orig...)
	b[len(b)-12] ^= 0x20 // the payload of the last record
	os.WriteFile(last, b, 0o644)
	code, out := runCLI("journal", "verify", dir)
	if code != 1 || !strings.Contains(out, filepath.Base(last)) || !strings.Contains(out, "seq 100") ||
		!strings.Contains(out, "not torn") {
		t.Fatalf("verify of a damaged last record: %d %q", code, out)
	}
	if code, out := runCLI("journal", "inspect", dir); code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("inspect of a damaged last record: %d %q", code, out)
	}

	b = append([]byte(nil), orig...)
	b[len(b)-2] ^= 0x20 // only the trailer: the record's checksum proves it
	os.WriteFile(last, b, 0o644)
	if code, out := runCLI("journal", "verify", dir); code != 0 || !strings.Contains(out, "rewrites the trailer") {
		t.Fatalf("verify of a damaged trailer: %d %q", code, out)
	}

	os.WriteFile(last, append(append([]byte(nil), orig...), 1, 2, 3, 4, 5), 0o644)
	code, out = runCLI("journal", "verify", dir)
	if code != 0 || !strings.Contains(out, "torn tail") || !strings.HasSuffix(out, "ok 100 records in "+dir+"\n") {
		t.Fatalf("verify of a torn tail: %d %q", code, out)
	}
}

func TestUsage(t *testing.T) {
	if code, _ := runCLI(); code != 2 {
		t.Fatal("no args")
	}
	if code, out := runCLI("journal", "frobnicate"); code != 2 || !strings.Contains(out, "unknown command") {
		t.Fatalf("%d %q", code, out)
	}
	if code, _ := runCLI("journal", "verify"); code != 2 {
		t.Fatal("verify without DIR")
	}
}

func TestReplayNeedsTheApplication(t *testing.T) {
	code, out := runCLI("journal", "replay", t.TempDir())
	if code != 2 || !strings.Contains(out, "poker journal replay") || !strings.Contains(out, "replay.Check") {
		t.Fatalf("replay: exit %d: %s", code, out)
	}
}

// TestJournalDirArgument: inspect and verify take the same directory
// argument as "poker journal" — the journal directory or a data directory
// holding journal/ — and refuse one that holds no journal with exit 1 and
// a message saying so; inspect -n lists the last N records with times.
func TestJournalDirArgument(t *testing.T) {
	data := t.TempDir()
	jdir := filepath.Join(data, "journal")
	writeJournal(t, jdir)
	for _, d := range []string{data, jdir} {
		if code, out := runCLI("journal", "verify", d); code != 0 || out != "ok 100 records in "+jdir+"\n" {
			t.Fatalf("verify %s: %d %q", d, code, out)
		}
		if code, out := runCLI("journal", "inspect", d); code != 0 || !strings.Contains(out, "records 100, seq 1..100") {
			t.Fatalf("inspect %s: %d %q", d, code, out)
		}
	}

	// Limits and times: flags before or after the directory.
	for _, args := range [][]string{{"journal", "inspect", "-n", "3", data}, {"journal", "inspect", data, "-n", "3"}} {
		code, out := runCLI(args...)
		if code != 0 {
			t.Fatalf("%q: %d %s", args, code, out)
		}
		today := time.Now().UTC().Format("2006-01-02")
		if !strings.Contains(out, "LAST 3 RECORDS") || !strings.Contains(out, "TIME (UTC)") ||
			!strings.Contains(out, "\ntime "+today) || strings.Count(out, "\n98 ") != 1 || strings.Count(out, "\n100 ") != 1 ||
			strings.Contains(out, "\n97 ") {
			t.Fatalf("%q:\n%s", args, out)
		}
	}
	if code, out := runCLI("journal", "inspect", "-n", "0", data); code != 0 || strings.Contains(out, "TIME (UTC)") {
		t.Fatalf("inspect -n 0: %d\n%s", code, out)
	}
	if code, out := runCLI("journal", "inspect", "-n", "-1", data); code != 0 || !strings.Contains(out, "LAST 100 RECORDS") {
		t.Fatalf("inspect -n -1: %d\n%s", code, out)
	}

	// A directory without a journal: the data dir of a server that never
	// wrote, an empty journal/, a missing path.
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "journal"), 0o755)
	for _, cmd := range []string{"verify", "inspect"} {
		for _, d := range []string{empty, filepath.Join(empty, "journal")} {
			code, out := runCLI("journal", cmd, d)
			if code != 1 || !strings.Contains(out, "holds no journal") || strings.Contains(out, "ok ") {
				t.Fatalf("%s %s: %d %q", cmd, d, code, out)
			}
		}
		if code, out := runCLI("journal", cmd, filepath.Join(empty, "nope")); code != 1 || !strings.Contains(out, "no such file") {
			t.Fatalf("%s of a missing dir: %d %q", cmd, code, out)
		}
	}
	if code, _ := runCLI("journal", "inspect", data, data); code != 2 {
		t.Fatal("two directories")
	}
	if code, _ := runCLI("journal", "inspect", "-n", "x", data); code != 2 {
		t.Fatal("a bad -n")
	}
}
