// Command poker-load is a load generator for the planning-poker server
// (cmd/poker): R rooms × M members, every member with its own Server-Sent-
// Events stream, running voting rounds. It prints join latency, delivery
// latency of vote → vote_cast and finish → session_finished (p50/p99 over
// all members), every command answer by class (2xx, 503 + Retry-After and
// its retries, other statuses, no answer), the events of acknowledged
// commands missing from a member's stream (lost), and the server's RSS per
// connected member. Commands share a keep-alive pool (-conns); each event
// stream has a connection of its own.
//
//	go run ./cmd/poker-load -url http://127.0.0.1:8080 -rooms 1000 -members 10 -rounds 3 -pid $(pgrep -n poker)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/reactorgo/reactor/cmd/poker-load/load"
)

func main() {
	var cfg load.Config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base `URL` of the poker server")
	flag.IntVar(&cfg.Rooms, "rooms", 100, "number of rooms")
	flag.IntVar(&cfg.Members, "members", 10, "members per room, leader included (2-100)")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "voting rounds per room")
	flag.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "stop after this long whatever is left")
	flag.IntVar(&cfg.PID, "pid", 0, "server `pid`: read its RSS from /proc (default: from the server's /metrics)")
	flag.IntVar(&cfg.Concurrency, "concurrency", 64, "parallel requests while creating rooms and joining")
	flag.DurationVar(&cfg.EventTimeout, "event-timeout", 10*time.Second, "an expected event not seen within this is counted lost")
	flag.DurationVar(&cfg.Think, "think", 0, "spread each room's round start and each vote over a random pause in [0, `d`) (0: all at once)")
	flag.IntVar(&cfg.Conns, "conns", 0, "keep-alive connections for the commands (default min(1024, rooms × members)); streams have one each besides")
	flag.IntVar(&cfg.Retries, "retries", 10, "times one command answered 503 + Retry-After is sent again")
	flag.DurationVar(&cfg.MaxRetryWait, "max-retry-wait", 5*time.Second, "cap on the Retry-After wait before a retry")
	flag.DurationVar(&cfg.Hold, "hold", 0, "pause this long once all streams are open, before the rounds (to profile the server)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the generator to this `file` (it shares the cores with the server)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "poker-load:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "poker-load:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration)
	defer cancel()
	res, err := load.Run(ctx, cfg)
	if res != nil {
		res.Print(os.Stdout)
	}
	code := 0
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(os.Stderr, "poker-load:", err)
		code = 1
	} else if res != nil && (res.Lost > 0 || res.Errors > 0 || res.IDGaps > 0) {
		code = 2
	}
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if code != 0 {
		os.Exit(code)
	}
}
