package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func runAsynq(ctx context.Context, o options, rec *recorder) (result, error) {
	addr := o.redis
	if addr == "spawn" {
		a, stop, err := spawnRedis(ctx, filepath.Join(o.dir, "redis"))
		if err != nil {
			return result{}, err
		}
		defer stop()
		addr = a
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	policy := "appendonly=" + configGet(ctx, rdb, "appendonly") + " appendfsync=" + configGet(ctx, rdb, "appendfsync")
	// A queue of its own, so a shared Redis's other data is not touched and
	// the processed counter starts at zero.
	queue := "jobsbench-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	conn := asynq.RedisClientOpt{Addr: addr, PoolSize: o.producers + 8}
	client := asynq.NewClient(conn)
	defer client.Close()
	insp := asynq.NewInspector(conn)
	defer insp.Close()
	defer func() { _ = insp.DeleteQueue(queue, true) }()
	srv := asynq.NewServer(conn, asynq.Config{
		Concurrency: o.workers, Queues: map[string]int{queue: 1}, Logger: quietLogger{}, LogLevel: asynq.ErrorLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(_ context.Context, t *asynq.Task) error {
		rec.ranJob(int(binary.BigEndian.Uint64(t.Payload())))
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return result{}, fmt.Errorf("server: %w", err)
	}
	defer srv.Shutdown()
	began := time.Now()
	err := produce(ctx, o, rec, func(ctx context.Context, i int) error {
		p := binary.BigEndian.AppendUint64(nil, uint64(i))
		_, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", p), asynq.Queue(queue), asynq.MaxRetry(0))
		return err
	})
	if err != nil {
		return result{}, err
	}
	err = waitCompleted(ctx, o.n, 20*time.Millisecond, func(context.Context) (int, error) {
		qi, err := insp.GetQueueInfo(queue)
		if err != nil {
			return 0, err
		}
		if qi.Pending+qi.Active > 0 {
			return min(qi.Processed, o.n-1), nil
		}
		return qi.Processed, nil
	})
	if err != nil {
		return result{}, err
	}
	res := result{Elapsed: time.Since(began), Note: "Redis " + policy}
	if o.redis == "spawn" {
		res.Note += " (a redis-server started for this run)"
	}
	return res, nil
}

func configGet(ctx context.Context, rdb *redis.Client, key string) string {
	m, err := rdb.ConfigGet(ctx, key).Result()
	if err != nil {
		return "?"
	}
	return m[key]
}

// spawnRedis starts a redis-server on a free loopback port that fsyncs its
// append-only file on every write, the setting under which an enqueue is
// durable when it returns.
func spawnRedis(ctx context.Context, dir string) (addr string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server not found (use -redis host:port): %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if rdb.Ping(ctx).Err() == nil {
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not answer", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quietLogger drops Asynq's logs below error (its Logger has no levels of
// its own beyond LogLevel, which still prints Info at start).
type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"asynq:"}, args...)...)
}
func (quietLogger) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"asynq:"}, args...)...)
	os.Exit(1)
}
