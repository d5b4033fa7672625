// Package file is the durable checkpoint.Store kept in a directory, one file
// per key.
//
// Save is atomic: the checkpoint is written to a temporary file, fsynced,
// renamed over the key's file and the directory is fsynced, so after a crash
// at any point Load returns either the previous checkpoint or the new one,
// whole. Each file carries its key and a CRC-32C over everything, so a
// damaged file is reported (checkpoint.ErrCorrupt), never returned.
//
// File format (little-endian): magic "RCKP", version uint32 (1), seq uint64,
// key length uint32, data length uint64, key, data, CRC-32C uint32 of all the
// preceding bytes.
//
// File names: a key is escaped so any key maps to a safe, reversible name:
// bytes [A-Za-z0-9_.-] stay, every other byte becomes %XX ("/rooms/42" →
// "%2Frooms%2F42.ckp"). Keys whose escaped form is longer than 200 bytes are
// stored as "~" + hex SHA-256 of the key + ".ckp"; Keys reads their key from
// the file.
package file

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/internal/failpoint"
	"github.com/reactorgo/reactor/journal"
)

var _ checkpoint.Store = (*Store)(nil)

const (
	magic      = "RCKP"
	version    = 1
	headerSize = 4 + 4 + 8 + 4 + 8
	suffix     = ".ckp"
	tmpMarker  = "#tmp-" // "#" is always escaped in key names
	maxEscaped = 200
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configures Open.
type Options struct {
	// Dir holds the checkpoint files; created if missing. Required.
	Dir string
	// FS is the file system; nil means journal.OS. Tests pass a
	// journal/faultfs.FS to inject faults and simulate power loss.
	FS journal.FS
}

// Store is a checkpoint.Store in a directory.
type Store struct {
	dir string
	fs  journal.FS
}

// Open prepares dir and removes temporary files left by interrupted saves.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("checkpoint/file: Dir is empty")
	}
	if opts.FS == nil {
		opts.FS = journal.OS
	}
	s := &Store{dir: opts.Dir, fs: opts.FS}
	if err := s.fs.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint/file: create dir: %w", err)
	}
	ents, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint/file: list: %w", err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), tmpMarker) {
			if err := s.fs.Remove(filepath.Join(s.dir, e.Name())); err != nil {
				return nil, fmt.Errorf("checkpoint/file: remove stale temp file: %w", err)
			}
		}
	}
	return s, nil
}

// Encode returns the file content for key and cp.
func Encode(key string, cp checkpoint.Checkpoint) []byte {
	b := make([]byte, headerSize, headerSize+len(key)+len(cp.Data)+4)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[4:], version)
	binary.LittleEndian.PutUint64(b[8:], cp.Seq)
	binary.LittleEndian.PutUint32(b[16:], uint32(len(key)))
	binary.LittleEndian.PutUint64(b[20:], uint64(len(cp.Data)))
	b = append(b, key...)
	b = append(b, cp.Data...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errFormat = errors.New("bad checkpoint file")

// Decode parses a checkpoint file's content. Data aliases b.
func Decode(b []byte) (key string, cp checkpoint.Checkpoint, err error) {
	if len(b) < headerSize+4 || string(b[:4]) != magic {
		return "", cp, errFormat
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != version {
		return "", cp, fmt.Errorf("unsupported checkpoint version %d", v)
	}
	kl := uint64(binary.LittleEndian.Uint32(b[16:]))
	dl := binary.LittleEndian.Uint64(b[20:])
	body := uint64(len(b) - headerSize - 4)
	if kl > body || dl != body-kl {
		return "", cp, fmt.Errorf("%w: lengths do not match file size", errFormat)
	}
	end := len(b) - 4
	if crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return "", cp, errors.New("checksum mismatch")
	}
	cp.Seq = binary.LittleEndian.Uint64(b[8:])
	key = string(b[headerSize : headerSize+kl])
	cp.Data = b[headerSize+kl : end : end]
	return key, cp, nil
}

func safe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// FileName returns the base file name for key.
func FileName(key string) string {
	var sb strings.Builder
	for i := 0; i < len(key); i++ {
		if c := key[i]; safe(c) {
			sb.WriteByte(c)
		} else {
			fmt.Fprintf(&sb, "%%%02X", c)
		}
	}
	if sb.Len() > maxEscaped {
		h := sha256.Sum256([]byte(key))
		return "~" + hex.EncodeToString(h[:]) + suffix
	}
	return sb.String() + suffix
}

// keyFromName reverses FileName for escaped names; ok is false for hashed
// names (and names that are not checkpoint files).
func keyFromName(name string) (key string, ok bool) {
	base, found := strings.CutSuffix(name, suffix)
	if !found || strings.HasPrefix(base, "~") || strings.Contains(name, tmpMarker) {
		return "", false
	}
	var b []byte
	for i := 0; i < len(base); i++ {
		if base[i] == '%' && i+2 < len(base) {
			v, err := hex.DecodeString(base[i+1 : i+3])
			if err != nil {
				return "", false
			}
			b = append(b, v[0])
			i += 2
			continue
		}
		b = append(b, base[i])
	}
	return string(b), true
}

func (s *Store) path(key string) string { return filepath.Join(s.dir, FileName(key)) }

func corrupt(name string, err error) error {
	return fmt.Errorf("%w: %s: %v", checkpoint.ErrCorrupt, name, err)
}

// Save writes cp under key atomically and durably: temp file, write,
// fsync, close, rename, fsync dir.
func (s *Store) Save(ctx context.Context, key string, cp checkpoint.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return errors.New("checkpoint/file: empty key")
	}
	final := s.path(key)
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := final + tmpMarker + hex.EncodeToString(rnd[:])
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("checkpoint/file: create temp file: %w", err)
	}
	_, err = f.Write(Encode(key, cp))
	if err == nil {
		err = failpoint.Inject(failpoint.CheckpointWrite, s.fs) // written, not yet durable
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, final)
	}
	if err != nil {
		s.fs.Remove(tmp)
		return fmt.Errorf("checkpoint/file: save %q: %w", key, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("checkpoint/file: save %q: sync dir: %w", key, err)
	}
	return nil
}

func (s *Store) readFile(name string) ([]byte, error) {
	f, err := s.fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	if n, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return nil, err
	}
	return b, nil
}

// Load returns the checkpoint under key, checkpoint.ErrNotFound, or an error
// wrapping checkpoint.ErrCorrupt naming the file.
func (s *Store) Load(ctx context.Context, key string) (checkpoint.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return checkpoint.Checkpoint{}, err
	}
	name := s.path(key)
	b, err := s.readFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint.Checkpoint{}, checkpoint.ErrNotFound
	}
	if err != nil {
		return checkpoint.Checkpoint{}, fmt.Errorf("checkpoint/file: load %q: %w", key, err)
	}
	k, cp, err := Decode(b)
	if err != nil {
		return checkpoint.Checkpoint{}, corrupt(name, err)
	}
	if k != key {
		return checkpoint.Checkpoint{}, corrupt(name, fmt.Errorf("holds key %q, want %q", k, key))
	}
	return cp, nil
}

// Delete removes the checkpoint under key durably; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.fs.Remove(s.path(key)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("checkpoint/file: delete %q: %w", key, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("checkpoint/file: delete %q: sync dir: %w", key, err)
	}
	return nil
}

// Keys lists every key with a checkpoint.
func (s *Store) Keys(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ents, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint/file: list: %w", err)
	}
	var keys []string
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := e.Name()
		if !strings.HasSuffix(n, suffix) || strings.Contains(n, tmpMarker) {
			continue
		}
		if k, ok := keyFromName(n); ok {
			keys = append(keys, k)
			continue
		}
		b, err := s.readFile(filepath.Join(s.dir, n))
		if err != nil {
			return nil, fmt.Errorf("checkpoint/file: list: %w", err)
		}
		k, _, err := Decode(b)
		if err != nil {
			return nil, corrupt(filepath.Join(s.dir, n), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
