// Package failpoint places named fault points in production code, in the
// manner of etcd's and bbolt's failpoints and FoundationDB's BUGGIFY: a
// test (the simulator, reactortest/sim) enables a hook for the objects it
// owns, and the code at a point asks the hook whether to fail there.
//
// Off, a point costs one atomic load: Inject is small enough to inline and
// returns before looking anything up. Hooks are keyed by an owner (the
// file system, store or journal a point belongs to) rather than global, so
// simulations running in parallel in one test binary only see their own
// faults.
package failpoint

import (
	"sync"
	"sync/atomic"
)

// The points placed in production code.
const (
	// JournalSynced: a group commit's bytes are written and fsynced, and
	// its callers are not acknowledged yet (journal, owner: the journal's FS).
	// Failing here is a crash between fsync and acknowledgement: the
	// records are durable but their callers are told they failed.
	JournalSynced = "journal.synced-before-ack"
	// CheckpointWrite: a checkpoint file's bytes are written to its temp
	// file, not yet fsynced or renamed (checkpoint/file, owner: its FS).
	CheckpointWrite = "checkpoint.mid-write"
	// Replay: recovery is about to apply one journal record (the runtime,
	// owner: the Journal).
	Replay = "reactor.replay"
	// SendTargetGone: a send to a journaled child found it evicted after
	// resolving it, and resolves it again (the runtime, owner: the
	// Journal). Failing here forces that retry.
	SendTargetGone = "reactor.send-target-gone"
)

var (
	on    atomic.Bool // any hook installed
	mu    sync.RWMutex
	hooks = map[any]func(name string) error{}
)

// Inject reports the error the hook of owner chooses for the point name,
// or nil (always nil when no hook is installed).
func Inject(name string, owner any) error {
	if !on.Load() {
		return nil
	}
	return eval(name, owner)
}

func eval(name string, owner any) error {
	mu.RLock()
	h := hooks[owner]
	mu.RUnlock()
	if h == nil {
		return nil
	}
	return h(name)
}

// Enable installs h for the points whose owner is one of owners, until the
// returned function is called. h runs on the goroutine that reached the
// point and may block it.
func Enable(h func(name string) error, owners ...any) (disable func()) {
	mu.Lock()
	for _, o := range owners {
		hooks[o] = h
	}
	on.Store(len(hooks) > 0)
	mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			for _, o := range owners {
				delete(hooks, o)
			}
			on.Store(len(hooks) > 0)
			mu.Unlock()
		})
	}
}
