// Package journaldir finds a server's journal from the directory an
// operator names: the data directory (its journal is DIR/journal) or the
// journal directory itself. Every journal command takes the same argument
// this way, and one that finds no journal says so instead of reporting an
// empty one.
package journaldir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoJournal: the directory holds no journal segment, nor does its
// journal/ subdirectory.
var ErrNoJournal = errors.New("journaldir: no journal")

// segSuffix is the journal's segment file suffix (journal/scan.go).
const segSuffix = ".wal"

// Resolve returns the journal directory and the data directory (the
// journal's parent, where checkpoints/ is) for dir, which may name either.
// It fails with an error wrapping ErrNoJournal when neither dir/journal
// nor dir holds a segment file, and with the os error when dir cannot be
// read.
func Resolve(dir string) (journalDir, dataDir string, err error) {
	if _, err := os.Stat(dir); err != nil {
		return "", "", fmt.Errorf("journal directory: %w", err)
	}
	sub := filepath.Join(dir, "journal")
	if ok, err := hasSegments(sub); err == nil && ok {
		return sub, dir, nil
	}
	ok, err := hasSegments(dir)
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", dir, err)
	}
	if !ok {
		return "", "", fmt.Errorf("%s holds no journal (no *%s segment in it or in %s): %w", dir, segSuffix, sub, ErrNoJournal)
	}
	return dir, filepath.Dir(filepath.Clean(dir)), nil
}

func hasSegments(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), segSuffix) {
			return true, nil
		}
	}
	return false, nil
}
