// Command poker is the planning-poker server: a web UI and a JSON + Server-
// Sent-Events API whose rooms live in memory on the reactor runtime, made
// durable by a journal of every accepted command plus checkpoints.
//
//	go run ./cmd/poker                  # http://localhost:8080
//	go run ./cmd/poker -addr 127.0.0.1:9000 -data /var/lib/poker -room-ttl 8h
//
// A 201 or 202 answer means the command is in the fsynced journal: after a
// crash (kill -9) and a restart on the same -data directory, every room,
// member, token, session and vote that was answered is there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/reactorgo/reactor/cmd/poker/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "poker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("poker", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "`address` to listen on (host:port; port 0 picks a free one, printed in the log)")
	data := fs.String("data", "./data", "`directory` for durable state: the journal in DIR/journal, checkpoints in DIR/checkpoints")
	ttl := fs.Duration("room-ttl", 24*time.Hour, "close and remove a room after this `duration` without activity (e.g. 30m, 8h)")
	cpEvery := fs.Duration("checkpoint-interval", 30*time.Second, "how often modified rooms are checkpointed and the journal trimmed")
	verbose := fs.Bool("v", false, "log every HTTP request (never tokens)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: poker [flags]\n\nServes the planning-poker web UI and API. Rooms survive crashes: every\ncommand answered 201/202 is in the fsynced journal under -data.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := server.New(ctx, server.Config{DataDir: *data, RoomTTL: *ttl, CheckpointInterval: *cpEvery, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = srv.Close(context.Background())
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	hs.RegisterOnShutdown(srv.CloseStreams)
	log.Info("poker: listening", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr()), "data", *data, "room_ttl", *ttl)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("poker: shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		log.Warn("poker: http shutdown", "err", serr)
	}
	if cerr := srv.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("poker: stopped")
	return err
}

func displayAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.IsUnspecified() {
		if ok {
			return fmt.Sprintf("localhost:%d", ta.Port)
		}
	}
	return a.String()
}
