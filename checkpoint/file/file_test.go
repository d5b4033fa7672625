package file_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/checkpoint/checkpointtest"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal/faultfs"
)

var ctx = context.Background()

func mustOpen(t *testing.T, o file.Options) *file.Store {
	t.Helper()
	s, err := file.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	checkpointtest.RunStoreTests(t, func(t *testing.T) checkpoint.Store {
		return mustOpen(t, file.Options{Dir: t.TempDir()})
	})
}

func TestContractFaultFS(t *testing.T) {
	checkpointtest.RunStoreTests(t, func(t *testing.T) checkpoint.Store {
		return mustOpen(t, file.Options{Dir: "/cp", FS: faultfs.New()})
	})
}

func TestFileNames(t *testing.T) {
	if got := file.FileName("/rooms/42"); got != "%2Frooms%2F42.ckp" {
		t.Fatalf("FileName = %q", got)
	}
	dir := t.TempDir()
	s := mustOpen(t, file.Options{Dir: dir})
	if err := s.Save(ctx, "/rooms/42", checkpoint.Checkpoint{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "%2Frooms%2F42.ckp" {
		t.Fatalf("dir holds %v", ents)
	}
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, file.Options{Dir: dir})
	if err := s.Save(ctx, "/rooms/42", checkpoint.Checkpoint{Seq: 7, Data: []byte("hello world")}); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, file.FileName("/rooms/42"))
	orig, _ := os.ReadFile(name)
	for p := range orig {
		b := slices.Clone(orig)
		b[p] ^= 0x04
		os.WriteFile(name, b, 0o644)
		_, err := s.Load(ctx, "/rooms/42")
		if !errors.Is(err, checkpoint.ErrCorrupt) || !strings.Contains(err.Error(), name) {
			t.Fatalf("flip at %d: Load = %v", p, err)
		}
	}
	os.WriteFile(name, orig[:len(orig)-1], 0o644)
	if _, err := s.Load(ctx, "/rooms/42"); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	// A valid file under the wrong name (holding another key) is corrupt too.
	os.WriteFile(filepath.Join(dir, file.FileName("/other")), orig, 0o644)
	if _, err := s.Load(ctx, "/other"); !errors.Is(err, checkpoint.ErrCorrupt) {
		t.Fatalf("wrong key: %v", err)
	}
}

// TestCrashDuringSave fails, then power-cuts, the save at every one of its
// steps; after the crash Load must return the old checkpoint or the new one,
// whole — the new one only once the save returned nil.
func TestCrashDuringSave(t *testing.T) {
	old := checkpoint.Checkpoint{Seq: 1, Data: []byte("old state")}
	neu := checkpoint.Checkpoint{Seq: 2, Data: []byte("new state, longer than the old one")}
	ops := []faultfs.Op{faultfs.OpOpen, faultfs.OpWrite, faultfs.OpSync, faultfs.OpClose, faultfs.OpRename, faultfs.OpSyncDir}
	for step := 0; step <= len(ops); step++ {
		for _, mode := range []string{"fail", "crash-before"} {
			if step == len(ops) && mode == "fail" {
				continue
			}
			name := "complete"
			if step < len(ops) {
				name = mode + "-" + string(ops[step])
			}
			t.Run(name, func(t *testing.T) {
				fsys := faultfs.New()
				s := mustOpen(t, file.Options{Dir: "/cp", FS: fsys})
				if err := s.Save(ctx, "/k", old); err != nil {
					t.Fatal(err)
				}
				n := 0
				fsys.SetHook(func(op faultfs.Op, _ string) error {
					if n >= len(ops) || op != ops[n] {
						return nil
					}
					n++
					if n-1 == step {
						if mode == "crash-before" {
							fsys.Crash()
						}
						return syscall.EIO
					}
					return nil
				})
				err := s.Save(ctx, "/k", neu)
				fsys.SetHook(nil)
				if step < len(ops) && err == nil {
					t.Fatalf("Save succeeded despite a fault at %s", ops[step])
				}
				if n < min(step+1, len(ops)) {
					t.Fatalf("save performed %d of the expected steps", n)
				}
				fsys.Crash()
				s2 := mustOpen(t, file.Options{Dir: "/cp", FS: fsys})
				cp, lerr := s2.Load(ctx, "/k")
				if lerr != nil {
					t.Fatalf("Load after crash: %v", lerr)
				}
				want := old
				if err == nil {
					want = neu
				}
				if cp.Seq != want.Seq || !bytes.Equal(cp.Data, want.Data) {
					t.Fatalf("Load after crash = %+v, want %+v", cp, want)
				}
				if keys, _ := s2.Keys(ctx); len(keys) != 1 {
					t.Fatalf("Keys after crash = %q (temp file left?)", keys)
				}
			})
		}
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(file.Encode("/rooms/42", checkpoint.Checkpoint{Seq: 9, Data: []byte("state")}))
	f.Add(file.Encode("", checkpoint.Checkpoint{}))
	f.Add([]byte("RCKP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		key, cp, err := file.Decode(b)
		if err != nil {
			return
		}
		if re := file.Encode(key, cp); !bytes.Equal(re, b) {
			t.Fatalf("accepted input does not re-encode identically")
		}
	})
}
