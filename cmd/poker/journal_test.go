package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
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
}
