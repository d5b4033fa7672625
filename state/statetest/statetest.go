// Package statetest is the contract every reactor.StateStore keeps, as a
// suite a store's own tests run:
//
//	func TestStore(t *testing.T) {
//		statetest.RunStoreTests(t, func(t *testing.T) reactor.StateStore {
//			return openMyStore(t) // fresh and empty for each subtest
//		})
//	}
//
// It covers missing keys, create-if-absent, stale and fresh writes, the
// conditional Load, conflicts (and the value a *reactor.ConflictError
// carries, if the store gives one), keys held apart, binary and large
// values, the caller's buffers not being retained, and concurrent writers
// of one key: exactly one of the writers holding a version wins.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/reactorgo/reactor"
)

// Keys are keys a store must hold apart: service addresses and names a
// store mapping keys to its own namespace must not confuse.
var Keys = []string{
	"/rooms/42", "/rooms/4", "/rooms/42/x", "/rooms/42:v", "a b%c", "ünïcode/ключ", "a\x00b",
	strings.Repeat("/long", 100),
}

// RunStoreTests runs the contract against stores made by open, which must
// return a new, empty store (or an empty namespace) each time it is called.
func RunStoreTests(t *testing.T, open func(t *testing.T) reactor.StateStore) {
	t.Helper()
	ctx := context.Background()

	t.Run("Missing", func(t *testing.T) {
		s := open(t)
		data, v, err := s.Load(ctx, "/rooms/42", 0)
		if err != nil || v != 0 || data != nil {
			t.Fatalf("Load of a missing key = %q, %d, %v; want nil, 0, nil", data, v, err)
		}
		if _, v, err := s.Load(ctx, "/rooms/42", 7); err != nil || v != 0 {
			t.Fatalf("conditional Load of a missing key = %d, %v; want 0, nil", v, err)
		}
	})

	t.Run("CreateAndUpdate", func(t *testing.T) {
		s := open(t)
		v1 := cas(t, s, "/rooms/42", "one", 0)
		if v1 == 0 {
			t.Fatal("create returned version 0")
		}
		expect(t, s, "/rooms/42", "one", v1)
		v2 := cas(t, s, "/rooms/42", "two", v1)
		if v2 == 0 || v2 == v1 {
			t.Fatalf("update returned version %d after %d", v2, v1)
		}
		expect(t, s, "/rooms/42", "two", v2)
		// Conditional load: unchanged may come back without data.
		data, v, err := s.Load(ctx, "/rooms/42", v2)
		if err != nil || v != v2 || (data != nil && string(data) != "two") {
			t.Fatalf("conditional Load at the current version = %q, %d, %v", data, v, err)
		}
		// Conditional load with an old version must return the data.
		data, v, err = s.Load(ctx, "/rooms/42", v1)
		if err != nil || v != v2 || string(data) != "two" {
			t.Fatalf("conditional Load at an old version = %q, %d, %v; want two, %d", data, v, err, v2)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		s := open(t)
		v1 := cas(t, s, "/rooms/42", "one", 0)
		if _, err := s.CompareAndSwap(ctx, "/rooms/42", []byte("again"), 0); !errors.Is(err, reactor.ErrConflict) {
			t.Fatalf("create over an existing value = %v, want ErrConflict", err)
		}
		v2 := cas(t, s, "/rooms/42", "two", v1)
		_, err := s.CompareAndSwap(ctx, "/rooms/42", []byte("stale"), v1)
		if !errors.Is(err, reactor.ErrConflict) {
			t.Fatalf("write at a stale version = %v, want ErrConflict", err)
		}
		var ce *reactor.ConflictError
		if errors.As(err, &ce) {
			if ce.Version != v2 || (ce.Data != nil && string(ce.Data) != "two") {
				t.Fatalf("ConflictError = version %d data %q, want %d two", ce.Version, ce.Data, v2)
			}
		}
		if _, err := s.CompareAndSwap(ctx, "/rooms/42", []byte("future"), v2+1000); !errors.Is(err, reactor.ErrConflict) {
			t.Fatalf("write at a version never returned = %v, want ErrConflict", err)
		}
		if _, err := s.CompareAndSwap(ctx, "/rooms/new", []byte("x"), v2); !errors.Is(err, reactor.ErrConflict) {
			t.Fatalf("write to a missing key with a version = %v, want ErrConflict", err)
		}
		expect(t, s, "/rooms/42", "two", v2)
	})

	t.Run("KeysApart", func(t *testing.T) {
		s := open(t)
		vs := make([]uint64, len(Keys))
		for i, k := range Keys {
			vs[i] = cas(t, s, k, "state of "+k, 0)
		}
		for i, k := range Keys {
			expect(t, s, k, "state of "+k, vs[i])
		}
	})

	t.Run("Values", func(t *testing.T) {
		s := open(t)
		bin := make([]byte, 256)
		for i := range bin {
			bin[i] = byte(i)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		v := cas(t, s, "/bin", string(bin), 0)
		expect(t, s, "/bin", string(bin), v)
		v = cas(t, s, "/big", string(big), 0)
		expect(t, s, "/big", string(big), v)
		v = cas(t, s, "/empty", "", 0)
		data, got, err := s.Load(ctx, "/empty", 0)
		if err != nil || got != v || len(data) != 0 {
			t.Fatalf("empty value: Load = %q, %d, %v", data, got, err)
		}
		// The caller's buffer is not retained.
		buf := []byte("mine")
		v = cas(t, s, "/buf", string(buf), 0)
		copy(buf, "XXXX")
		expect(t, s, "/buf", "mine", v)
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		s := open(t)
		v0 := cas(t, s, "/hot", "0", 0)
		const n = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.CompareAndSwap(ctx, "/hot", []byte(fmt.Sprint(i)), v0)
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case !errors.Is(err, reactor.ErrConflict):
					t.Errorf("writer %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d writers at one version won, want exactly 1", wins)
		}
	})

	t.Run("Counter", func(t *testing.T) {
		// Read-modify-write loops from several goroutines lose no update.
		s := open(t)
		const workers, each = 4, 50
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					for {
						data, v, err := s.Load(ctx, "/n", 0)
						if err != nil {
							t.Error(err)
							return
						}
						var n int
						if v != 0 {
							fmt.Sscan(string(data), &n)
						}
						_, err = s.CompareAndSwap(ctx, "/n", []byte(fmt.Sprint(n+1)), v)
						if err == nil {
							break
						}
						if !errors.Is(err, reactor.ErrConflict) {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		data, _, _ := s.Load(ctx, "/n", 0)
		if string(data) != fmt.Sprint(workers*each) {
			t.Fatalf("counter = %s, want %d", data, workers*each)
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.CompareAndSwap(cctx, "/x", []byte("x"), 0); err == nil {
			// A store may complete before looking at ctx; then the value
			// must be there.
			expectData(t, s, "/x", "x")
		}
	})
}

func cas(t *testing.T, s reactor.StateStore, key, data string, version uint64) uint64 {
	t.Helper()
	v, err := s.CompareAndSwap(context.Background(), key, []byte(data), version)
	if err != nil {
		t.Fatalf("CompareAndSwap(%q, version %d): %v", key, version, err)
	}
	return v
}

func expect(t *testing.T, s reactor.StateStore, key, data string, version uint64) {
	t.Helper()
	got, v, err := s.Load(context.Background(), key, 0)
	if err != nil || v != version || string(got) != data {
		t.Fatalf("Load(%q) = %.40q, %d, %v; want %.40q, %d", key, got, v, err, data, version)
	}
}

func expectData(t *testing.T, s reactor.StateStore, key, data string) {
	t.Helper()
	got, _, err := s.Load(context.Background(), key, 0)
	if err != nil || string(got) != data {
		t.Fatalf("Load(%q) = %.40q, %v; want %.40q", key, got, err, data)
	}
}
