// Package checkpoint defines where services keep their saved state.
//
// A checkpoint is the encoded state of one service (or one keyed child) plus
// the journal position it covers: after a restart the runtime loads the
// checkpoint and replays only the journal records after that position.
//
// The runtime talks to a Store; this package ships an in-memory store
// (MemStore, for tests and for memory-only deployments). The durable file
// store lives in checkpoint/file; other backends live in their own packages
// with the same interface.
package checkpoint

import (
	"context"
	"errors"
	"sync"
)

// ErrNotFound is returned by Load when no checkpoint exists under a key.
var ErrNotFound = errors.New("checkpoint: not found")

// ErrCorrupt is returned (wrapped) by Load when a stored checkpoint fails its
// checksum or cannot be decoded. It is never silently ignored.
var ErrCorrupt = errors.New("checkpoint: corrupt")

// Checkpoint is one saved state.
type Checkpoint struct {
	// Seq is the journal sequence number of the last input already applied to
	// Data. Replay resumes after it. Zero for services without a journal.
	Seq uint64
	// Data is the encoded service state.
	Data []byte
}

// Store saves and loads checkpoints by key (the service address, e.g.
// "/rooms/42"). Implementations must make Save atomic: after a crash at any
// point, Load returns either the previous checkpoint or the new one, whole.
type Store interface {
	Save(ctx context.Context, key string, cp Checkpoint) error
	// Load returns ErrNotFound when the key has no checkpoint.
	Load(ctx context.Context, key string) (Checkpoint, error)
	Delete(ctx context.Context, key string) error
	// Keys lists every key with a checkpoint, in no particular order.
	Keys(ctx context.Context) ([]string, error)
}

var _ Store = (*MemStore)(nil)

// MemStore is a Store in process memory. It survives eviction of a child but
// not a restart of the process. The zero value is ready to use.
type MemStore struct {
	mu sync.Mutex
	m  map[string]Checkpoint
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{} }

// Save stores a copy of cp under key.
func (s *MemStore) Save(_ context.Context, key string, cp Checkpoint) error {
	cp.Data = append([]byte(nil), cp.Data...)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]Checkpoint)
	}
	s.m[key] = cp
	s.mu.Unlock()
	return nil
}

// Load returns the checkpoint under key, or ErrNotFound.
func (s *MemStore) Load(_ context.Context, key string) (Checkpoint, error) {
	s.mu.Lock()
	cp, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		return Checkpoint{}, ErrNotFound
	}
	return cp, nil
}

// Delete removes the checkpoint under key; deleting a missing key is not an error.
func (s *MemStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// Keys lists the stored keys.
func (s *MemStore) Keys(_ context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys, nil
}
