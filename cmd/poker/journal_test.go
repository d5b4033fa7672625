package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
	"github.com/reactorgo/reactor/internal/journaldir"
	"github.com/reactorgo/reactor/poker"
)

func TestJournalReplay(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	srv, err := server.New(ctx, server.Config{DataDir: dir, RoomTTL: 8 * time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rooms := srv.Rooms()
	for i := range 5 {
		cred, err := rooms.Create(ctx, poker.CreateRequest{Title: "sprint", Leader: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rooms.Join(ctx, cred.Room, poker.JoinRequest{Name: "bob" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
		if err := rooms.Start(ctx, cred.Room, cred.Token, poker.StartRequest{Story: "login"}); err != nil {
			t.Fatal(err)
		}
		if err := rooms.Vote(ctx, cred.Room, cred.Token, poker.VoteRequest{Value: "5"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if err := runJournal(ctx, []string{"replay", "-data", dir, "-room-ttl", "8h"}, &out, &errs); err != nil || !strings.HasPrefix(out.String(), "ok deterministic") {
		t.Fatalf("replay: %v: %s%s", err, out.String(), errs.String())
	}
	out.Reset()
	if err := runJournal(ctx, []string{"replay", "-data", filepath.Join(dir, "nope")}, &out, &errs); err == nil {
		t.Fatalf("replay of a missing dir succeeded: %s", out.String())
	}
	if err := runJournal(ctx, []string{"frobnicate"}, &out, &errs); err == nil || !strings.Contains(errs.String(), "usage: poker journal replay") {
		t.Fatalf("unknown subcommand: %v %q", err, errs.String())
	}

	// Every subcommand takes the data dir or the journal dir, flags before
	// or after it.
	for _, args := range [][]string{
		{"replay", dir, "-room-ttl", "8h"}, {"replay", filepath.Join(dir, "journal")},
		{"verify", dir}, {"verify", filepath.Join(dir, "journal")},
		{"inspect", dir}, {"inspect", "-n", "3", filepath.Join(dir, "journal")},
	} {
		out.Reset()
		if err := runJournal(ctx, args, &out, &errs); err != nil {
			t.Fatalf("%q: %v: %s", args, err, errs.String())
		}
	}
	out.Reset()
	if err := runJournal(ctx, []string{"inspect", dir, "-n", "2"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	// 5 creates, 5 joins, 5 starts, 5 votes; the last two listed with times.
	text := out.String()
	if !strings.Contains(text, "records 20,") || !strings.Contains(text, "LAST 2 RECORDS") ||
		strings.Count(text, "poker.room.vote ") != 2 || !strings.Contains(text, "time "+time.Now().UTC().Format("2006-01-02")) {
		t.Fatalf("inspect -n 2:\n%s", text)
	}
	out.Reset()
	if err := runJournal(ctx, []string{"verify", dir}, &out, &errs); err != nil || !strings.HasPrefix(out.String(), "ok 20 records") {
		t.Fatalf("verify: %v %s", err, out.String())
	}

	// A directory without a journal is refused by every subcommand.
	empty := t.TempDir()
	for _, cmd := range []string{"inspect", "verify", "replay"} {
		out.Reset()
		err := runJournal(ctx, []string{cmd, empty}, &out, &errs)
		if !errors.Is(err, journaldir.ErrNoJournal) || !strings.Contains(err.Error(), "holds no journal") {
			t.Fatalf("%s of a dir without a journal: %v (%s)", cmd, err, out.String())
		}
	}
}
