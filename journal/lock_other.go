//go:build !unix

package journal

import (
	"errors"
	"os"
)

func flock(f *os.File) error {
	return errors.New("journal: file locking not supported on this platform")
}
