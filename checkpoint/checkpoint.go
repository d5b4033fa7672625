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
	"bytes"
	"context"
	"errors"
	"sync"
)

// ErrNotFound is returned by Load when no checkpoint exists under a key.
var ErrNotFound = errors.New("checkpoint: not found")

var errEmptyKey = errors.New("checkpoint: empty key")

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
//
// The contract, checked for every store by package checkpointtest: any
// non-empty key is stored apart from every other and listed unchanged by
// Keys (Save with "" fails); Save does not keep cp.Data after it returns,
// and the Data Load returns belongs to the caller; methods are safe for
// concurrent use; a method called with a context already done returns the
// context's error and changes nothing.
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
func (s *MemStore) Save(ctx context.Context, key string, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return errEmptyKey
	}
	cp.Data = bytes.Clone(cp.Data)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]Checkpoint)
	}
	s.m[key] = cp
	s.mu.Unlock()
	return nil
}

// Load returns a copy of the checkpoint under key, or ErrNotFound.
func (s *MemStore) Load(ctx context.Context, key string) (Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	s.mu.Lock()
	cp, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		return Checkpoint{}, ErrNotFound
	}
	cp.Data = bytes.Clone(cp.Data)
	return cp, nil
}

// Delete removes the checkpoint under key; deleting a missing key is not an error.
func (s *MemStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// Keys lists the stored keys.
func (s *MemStore) Keys(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys, nil
}
