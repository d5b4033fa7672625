// Package checkpointtest is the contract every checkpoint.Store keeps, as a
// suite a store's own tests run (the shape of litestream's
// RunWithReplicaClient):
//
//	func TestStore(t *testing.T) {
//		checkpointtest.RunStoreTests(t, func(t *testing.T) checkpoint.Store {
//			return openMyStore(t) // fresh and empty for each subtest
//		})
//	}
//
// It covers Save/Load round trips, ErrNotFound, overwrites, Delete, Keys,
// keys that need escaping (slashes, "/.reactor/" runtime keys, unicode,
// very long keys), large values, the caller's buffers not being retained,
// concurrent saves and an already-cancelled context.
package checkpointtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/reactorgo/reactor/checkpoint"
)

// Keys are keys a store must hold apart and give back unchanged: service
// addresses, the runtime's own keys, and names that a store mapping keys
// to file names or URLs must escape.
var Keys = []string{
	"/rooms", "/rooms/42", "/rooms/42/x", "/rooms/4", "/.reactor/journal-floor",
	"a b%c", "%2Frooms", "~x", "ünïcode/ключ", ".", "..", "x#tmp-1", "a\x00b",
	strings.Repeat("/long", 100), strings.Repeat("é", 150),
}

// RunStoreTests runs the contract against stores made by open, which must
// return a new, empty store each time it is called (it is called once per
// subtest). Register cleanup with t.Cleanup.
func RunStoreTests(t *testing.T, open func(t *testing.T) checkpoint.Store) {
	t.Helper()
	ctx := context.Background()

	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		if _, err := s.Load(ctx, "/rooms/42"); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Load of a missing key = %v, want ErrNotFound", err)
		}
		keys, err := s.Keys(ctx)
		if err != nil || len(keys) != 0 {
			t.Fatalf("Keys of an empty store = %q, %v", keys, err)
		}
	})

	t.Run("SaveLoad", func(t *testing.T) {
		s := open(t)
		for i, k := range Keys {
			save(t, s, k, uint64(i+1), []byte("state of "+k))
		}
		for i, k := range Keys {
			load(t, s, k, uint64(i+1), []byte("state of "+k))
		}
	})

	t.Run("EmptyData", func(t *testing.T) {
		s := open(t)
		save(t, s, "/empty", 0, nil)
		save(t, s, "/zero", 7, []byte{})
		load(t, s, "/empty", 0, nil)
		load(t, s, "/zero", 7, nil)
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := open(t)
		save(t, s, "/rooms/42", 1, []byte("older, and longer than the newer state"))
		save(t, s, "/rooms/42", 2, []byte("newer"))
		load(t, s, "/rooms/42", 2, []byte("newer"))
		save(t, s, "/rooms/42", 1, []byte("a lower seq is stored as given"))
		load(t, s, "/rooms/42", 1, []byte("a lower seq is stored as given"))
		keysAre(t, s, "/rooms/42")
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		save(t, s, "/rooms/1", 1, []byte("one"))
		save(t, s, "/rooms/2", 2, []byte("two"))
		if err := s.Delete(ctx, "/rooms/1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, "/rooms/1"); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Load after Delete = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "/rooms/1"); err != nil {
			t.Fatalf("Delete of a deleted key: %v", err)
		}
		if err := s.Delete(ctx, "/never"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		load(t, s, "/rooms/2", 2, []byte("two"))
		keysAre(t, s, "/rooms/2")
		save(t, s, "/rooms/1", 3, []byte("again"))
		load(t, s, "/rooms/1", 3, []byte("again"))
	})

	t.Run("Keys", func(t *testing.T) {
		s := open(t)
		for i, k := range Keys {
			save(t, s, k, uint64(i), []byte(k))
		}
		keysAre(t, s, Keys...)
		for _, k := range Keys[:3] {
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		keysAre(t, s, Keys[3:]...)
	})

	t.Run("EmptyKey", func(t *testing.T) {
		s := open(t)
		if err := s.Save(ctx, "", checkpoint.Checkpoint{Seq: 1}); err == nil {
			t.Fatal("Save with an empty key succeeded")
		}
		keysAre(t, s)
	})

	t.Run("LargeValue", func(t *testing.T) {
		s := open(t)
		big := make([]byte, 8<<20+3)
		for i := range big {
			big[i] = byte(i * 31 >> 3)
		}
		save(t, s, "/big", 9, big)
		load(t, s, "/big", 9, big)
	})

	t.Run("BuffersNotRetained", func(t *testing.T) {
		s := open(t)
		data := []byte("original")
		save(t, s, "/k", 1, data)
		copy(data, "CHANGED!")
		load(t, s, "/k", 1, []byte("original"))
		cp, err := s.Load(ctx, "/k")
		if err != nil {
			t.Fatal(err)
		}
		copy(cp.Data, "CHANGED!")
		load(t, s, "/k", 1, []byte("original"))
	})

	t.Run("ConcurrentSaves", func(t *testing.T) {
		s := open(t)
		const writers, rounds = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*rounds*2)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					// Each writer its own key, and all of them one shared key.
					if err := s.Save(ctx, fmt.Sprintf("/rooms/%d", w), checkpoint.Checkpoint{Seq: uint64(r), Data: value(w, r)}); err != nil {
						errs <- err
					}
					if err := s.Save(ctx, "/shared", checkpoint.Checkpoint{Seq: uint64(w*rounds + r), Data: value(w, r)}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := []string{"/shared"}
		for w := range writers {
			k := fmt.Sprintf("/rooms/%d", w)
			load(t, s, k, rounds-1, value(w, rounds-1))
			want = append(want, k)
		}
		keysAre(t, s, want...)
		// The shared key holds one whole save, not a mix.
		cp, err := s.Load(ctx, "/shared")
		if err != nil {
			t.Fatal(err)
		}
		w, r := int(cp.Seq)/rounds, int(cp.Seq)%rounds
		if !bytes.Equal(cp.Data, value(w, r)) {
			t.Fatalf("/shared holds seq %d with data %.40q..., not the save that had that seq", cp.Seq, cp.Data)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		s := open(t)
		save(t, s, "/kept", 1, []byte("kept"))
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Save(cancelled, "/new", checkpoint.Checkpoint{Seq: 2, Data: []byte("new")}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Save with a cancelled context = %v, want context.Canceled", err)
		}
		if _, err := s.Load(cancelled, "/kept"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Load with a cancelled context = %v, want context.Canceled", err)
		}
		if err := s.Delete(cancelled, "/kept"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Delete with a cancelled context = %v, want context.Canceled", err)
		}
		if _, err := s.Keys(cancelled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Keys with a cancelled context = %v, want context.Canceled", err)
		}
		// Nothing changed.
		load(t, s, "/kept", 1, []byte("kept"))
		keysAre(t, s, "/kept")
	})
}

// value is the data writer w saves in round r: long enough that a torn or
// interleaved write would show.
func value(w, r int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("w%d-r%d;", w, r)), 4096)
}

func save(t *testing.T, s checkpoint.Store, key string, seq uint64, data []byte) {
	t.Helper()
	if err := s.Save(context.Background(), key, checkpoint.Checkpoint{Seq: seq, Data: data}); err != nil {
		t.Fatalf("Save(%q): %v", key, err)
	}
}

func load(t *testing.T, s checkpoint.Store, key string, seq uint64, data []byte) {
	t.Helper()
	cp, err := s.Load(context.Background(), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	if cp.Seq != seq || !bytes.Equal(cp.Data, data) {
		t.Fatalf("Load(%q) = seq %d, %d bytes %.40q; want seq %d, %d bytes %.40q", key, cp.Seq, len(cp.Data), cp.Data, seq, len(data), data)
	}
}

func keysAre(t *testing.T, s checkpoint.Store, want ...string) {
	t.Helper()
	got, err := s.Keys(context.Background())
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Keys = %q, want %q", got, want)
	}
}
