// Package state holds StateStore implementations for services whose state
// lives outside the process (reactor.External): MemStore here, for tests
// and single-process experiments, and Redis in state/redis. The contract
// every store keeps is the suite in state/statetest.
//
// A store holds one value and one version per key. The runtime caches each
// instance's state with the version it read, runs a batch of messages on
// it, and writes it back once with CompareAndSwap; a conflict means another
// process wrote the key meanwhile, and the batch runs again on the newer
// state. See docs/DEPLOYMENT.md for what each placement costs and can lose.
package state

import (
	"bytes"
	"context"
	"sync"

	"github.com/reactorgo/reactor"
)

// MemStore is a StateStore in memory: safe for concurrent use, lost with
// the process. Runtimes in one process sharing a MemStore behave like
// processes sharing a Redis, which is what tests of conflicts need.
type MemStore struct {
	mu   sync.Mutex
	m    map[string]memEntry
	next uint64 // versions are unique across keys and never reused
}

type memEntry struct {
	data    []byte
	version uint64
}

var _ reactor.StateStore = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{m: make(map[string]memEntry)} }

// Load implements reactor.StateStore.
func (s *MemStore) Load(ctx context.Context, key string, known uint64) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	switch {
	case !ok:
		return nil, 0, nil
	case known != 0 && e.version == known:
		return nil, known, nil
	}
	return bytes.Clone(e.data), e.version, nil
}

// CompareAndSwap implements reactor.StateStore. A conflict is a
// *reactor.ConflictError with the current value.
func (s *MemStore) CompareAndSwap(ctx context.Context, key string, data []byte, version uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e.version != version {
		return 0, &reactor.ConflictError{Key: key, Version: e.version, Data: bytes.Clone(e.data)}
	}
	s.next++
	s.m[key] = memEntry{data: bytes.Clone(data), version: s.next}
	return s.next, nil
}

// Put stores data under key unconditionally, as another process would:
// cached copies of the key become stale. It returns the new version.
func (s *MemStore) Put(key string, data []byte) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	s.m[key] = memEntry{data: bytes.Clone(data), version: s.next}
	return s.next
}

// Delete removes key, as an expiry would.
func (s *MemStore) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// Get returns the value stored under key (nil if none), for tests.
func (s *MemStore) Get(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[key].data)
}
