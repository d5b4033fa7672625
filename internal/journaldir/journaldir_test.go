package journaldir_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/reactorgo/reactor/internal/journaldir"
)

func TestResolve(t *testing.T) {
	data := t.TempDir()
	jdir := filepath.Join(data, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := journaldir.Resolve(data); !errors.Is(err, journaldir.ErrNoJournal) {
		t.Fatalf("empty data dir: %v", err)
	}
	if _, _, err := journaldir.Resolve(filepath.Join(data, "nope")); err == nil || errors.Is(err, journaldir.ErrNoJournal) {
		t.Fatalf("missing dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(jdir, "00000000000000000001.wal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{data, jdir, jdir + "/"} {
		j, d, err := journaldir.Resolve(dir)
		if err != nil || filepath.Clean(j) != jdir || filepath.Clean(d) != data {
			t.Errorf("Resolve(%s) = %s, %s, %v", dir, j, d, err)
		}
	}
}
