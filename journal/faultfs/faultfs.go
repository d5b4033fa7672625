// Package faultfs is an in-memory journal.FS for tests that injects faults
// and simulates power loss.
//
// Every file keeps two images: its current content and the content covered by
// the last successful Sync. Directory entries (creations, renames, removals)
// likewise become durable only when their directory is synced with SyncDir.
// Crash simulates a power loss: every file reverts to its synced image and
// the namespace to its synced state, like SQLite's crash-test VFS.
// CrashTorn additionally keeps a random prefix of each file's unsynced
// appended bytes, as a disk that persisted part of a write would; CrashZeroed
// also keeps zeros after that prefix (the size persisted, the data did not).
//
// Faults: FailNth makes the nth future operation of a kind fail with a given
// error (a failing write first writes half of its bytes, like a short write
// on a full disk); SetHook runs a function before every operation, which can
// fail it or block it (to delay an fsync).
package faultfs

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reactorgo/reactor/journal"
)

// Op names an operation kind for faults and hooks.
type Op string

const (
	OpOpen     Op = "open" // OpenFile (any flags)
	OpWrite    Op = "write"
	OpSync     Op = "sync" // File.Sync
	OpSyncDir  Op = "syncdir"
	OpRename   Op = "rename"
	OpRemove   Op = "remove"
	OpTruncate Op = "truncate"
	OpClose    Op = "close"
)

var _ journal.FS = (*FS)(nil)

// FS is an in-memory file system. The zero value is not usable; call New.
type FS struct {
	mu      sync.Mutex
	files   map[string]*inode // current namespace
	durable map[string]*inode // namespace as of the last SyncDir of each dir
	dirs    map[string]bool
	locks   map[string]bool
	gen     int // bumped by Crash; handles from older generations fail
	counts  map[Op]int
	faults  []fault
	hook    func(op Op, name string) error
}

type fault struct {
	op  Op
	at  int // fire when counts[op] reaches this
	err error
}

type inode struct {
	data   []byte
	synced []byte
}

// New returns an empty FS.
func New() *FS {
	return &FS{
		files:   map[string]*inode{},
		durable: map[string]*inode{},
		dirs:    map[string]bool{"/": true, ".": true},
		locks:   map[string]bool{},
		counts:  map[Op]int{},
	}
}

// FailNth makes the nth (1-based) future operation of kind op fail with err, once.
func (f *FS) FailNth(op Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{op: op, at: f.counts[op] + n, err: err})
}

// ClearFaults removes pending FailNth faults and the hook.
func (f *FS) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
	f.hook = nil
}

// SetHook installs h, called (without FS locks held) before every operation
// with the operation kind and the file name; a non-nil result fails the
// operation. h may block, e.g. to hold an fsync.
func (f *FS) SetHook(h func(op Op, name string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// Count reports how many operations of kind op were attempted.
func (f *FS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// DelaySync returns a hook that sleeps d before every fsync.
func DelaySync(d time.Duration) func(Op, string) error {
	return func(op Op, _ string) error {
		if op == OpSync || op == OpSyncDir {
			time.Sleep(d)
		}
		return nil
	}
}

// before counts op and returns an injected error, if any.
func (f *FS) before(op Op, name string) error {
	f.mu.Lock()
	f.counts[op]++
	c := f.counts[op]
	var err error
	for i, ft := range f.faults {
		if ft.op == op && ft.at == c {
			err = ft.err
			f.faults = slices.Delete(f.faults, i, i+1)
			break
		}
	}
	h := f.hook
	f.mu.Unlock()
	if err == nil && h != nil {
		err = h(op, name)
	}
	return err
}

// Crash simulates a power loss: unsynced data and directory changes are lost,
// open handles become invalid and locks are released.
func (f *FS) Crash() { f.crash(nil, false) }

// CrashTorn is Crash, except that each file keeps a random prefix of the
// bytes written past its synced image (a partially persisted write).
func (f *FS) CrashTorn(rng *rand.Rand) { f.crash(rng, false) }

// CrashZeroed is CrashTorn, except that after the kept prefix each file also
// keeps a random number of zero bytes, up to the size it had: the new file
// size reached the disk, the data past the prefix did not.
func (f *FS) CrashZeroed(rng *rand.Rand) { f.crash(rng, true) }

func (f *FS) crash(rng *rand.Rand, zeros bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[*inode]bool{}
	for _, m := range []map[string]*inode{f.files, f.durable} {
		for _, ino := range m {
			if seen[ino] {
				continue
			}
			seen[ino] = true
			keep := ino.synced
			if rng != nil && len(ino.data) > len(ino.synced) && string(ino.data[:len(ino.synced)]) == string(ino.synced) {
				keep = ino.data[:len(ino.synced)+rng.IntN(len(ino.data)-len(ino.synced)+1)]
				if zeros {
					keep = append(slices.Clone(keep), make([]byte, rng.IntN(len(ino.data)-len(keep)+1))...)
				}
			}
			ino.data = slices.Clone(keep)
			ino.synced = slices.Clone(keep)
		}
	}
	f.files = maps(f.durable)
	f.locks = map[string]bool{}
	f.gen++
}

func maps(m map[string]*inode) map[string]*inode {
	c := make(map[string]*inode, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func clean(name string) string { return filepath.Clean(name) }

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// OpenFile supports O_RDONLY, O_WRONLY, O_RDWR, O_CREATE, O_EXCL, O_TRUNC.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (journal.File, error) {
	name = clean(name)
	if err := f.before(OpOpen, name); err != nil {
		return nil, pathErr("open", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dirs[filepath.Dir(name)] {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	ino, ok := f.files[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		ino = &inode{}
		f.files[name] = ino
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&os.O_TRUNC != 0 && writable {
		ino.data = ino.data[:0:0]
	}
	return &file{fs: f, ino: ino, name: name, gen: f.gen, writable: writable}, nil
}

// Rename moves oldpath to newpath (replacing it) in the current namespace.
func (f *FS) Rename(oldpath, newpath string) error {
	oldpath, newpath = clean(oldpath), clean(newpath)
	if err := f.before(OpRename, newpath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.files[oldpath]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	delete(f.files, oldpath)
	f.files[newpath] = ino
	return nil
}

// Remove deletes name from the current namespace.
func (f *FS) Remove(name string) error {
	name = clean(name)
	if err := f.before(OpRemove, name); err != nil {
		return pathErr("remove", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	delete(f.files, name)
	return nil
}

// ReadDir lists the files directly in dir, sorted by name.
func (f *FS) ReadDir(dir string) ([]fs.DirEntry, error) {
	dir = clean(dir)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dirs[dir] {
		return nil, pathErr("readdir", dir, fs.ErrNotExist)
	}
	var ents []fs.DirEntry
	for n, ino := range f.files {
		if filepath.Dir(n) == dir {
			ents = append(ents, fs.FileInfoToDirEntry(info{name: filepath.Base(n), size: int64(len(ino.data))}))
		}
	}
	for d := range f.dirs {
		if d != dir && filepath.Dir(d) == dir {
			ents = append(ents, fs.FileInfoToDirEntry(info{name: filepath.Base(d), dir: true}))
		}
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, nil
}

// MkdirAll creates dir and its parents; directories are durable at once.
func (f *FS) MkdirAll(dir string, perm fs.FileMode) error {
	dir = clean(dir)
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := dir; !f.dirs[d]; d = filepath.Dir(d) {
		f.dirs[d] = true
	}
	return nil
}

// SyncDir makes the entries of dir durable.
func (f *FS) SyncDir(dir string) error {
	dir = clean(dir)
	if err := f.before(OpSyncDir, dir); err != nil {
		return pathErr("sync", dir, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for n := range f.durable {
		if filepath.Dir(n) == dir {
			if _, ok := f.files[n]; !ok {
				delete(f.durable, n)
			}
		}
	}
	for n, ino := range f.files {
		if filepath.Dir(n) == dir {
			f.durable[n] = ino
		}
	}
	return nil
}

// Lock takes an in-memory exclusive lock on name.
func (f *FS) Lock(name string) (io.Closer, error) {
	name = clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks[name] {
		return nil, pathErr("flock", name, syscall.EWOULDBLOCK)
	}
	f.locks[name] = true
	return &lock{fs: f, name: name, gen: f.gen}, nil
}

type lock struct {
	fs   *FS
	name string
	gen  int
	once sync.Once
}

func (l *lock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		if l.gen == l.fs.gen {
			delete(l.fs.locks, l.name)
		}
		l.fs.mu.Unlock()
	})
	return nil
}

// ReadFile returns the current content of name (for tests).
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.files[clean(name)]
	if !ok {
		return nil, pathErr("read", name, fs.ErrNotExist)
	}
	return slices.Clone(ino.data), nil
}

// WriteFile replaces the content of name, durably (for tests that damage files).
func (f *FS) WriteFile(name string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	ino, ok := f.files[name]
	if !ok {
		ino = &inode{}
		f.files[name] = ino
	}
	f.durable[name] = ino
	ino.data = slices.Clone(data)
	ino.synced = slices.Clone(data)
}

type file struct {
	fs       *FS
	ino      *inode
	name     string
	gen      int
	writable bool
	pos      int64
	closed   bool
}

var errStale = syscall.EIO

// check validates the handle; call with fs.mu held.
func (h *file) check(write bool) error {
	switch {
	case h.closed:
		return fs.ErrClosed
	case h.gen != h.fs.gen:
		return errStale // the machine "crashed" under this handle
	case write && !h.writable:
		return syscall.EBADF
	}
	return nil
}

func (h *file) Write(p []byte) (int, error) {
	n, err := h.WriteAt(p, h.pos)
	h.pos += int64(n)
	return n, err
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	ferr := h.fs.before(OpWrite, h.name)
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(true); err != nil {
		return 0, pathErr("write", h.name, err)
	}
	q := p
	if ferr != nil {
		q = p[:len(p)/2] // a failing write persists part of its bytes
	}
	if end := off + int64(len(q)); end > int64(len(h.ino.data)) {
		h.ino.data = append(h.ino.data, make([]byte, end-int64(len(h.ino.data)))...)
	}
	copy(h.ino.data[off:], q)
	if ferr != nil {
		return len(q), pathErr("write", h.name, ferr)
	}
	return len(p), nil
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(false); err != nil {
		return 0, pathErr("read", h.name, err)
	}
	if off >= int64(len(h.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) Sync() error {
	if err := h.fs.before(OpSync, h.name); err != nil {
		return pathErr("fdatasync", h.name, err)
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(false); err != nil {
		return pathErr("fdatasync", h.name, err)
	}
	h.ino.synced = slices.Clone(h.ino.data)
	return nil
}

func (h *file) Truncate(size int64) error {
	if err := h.fs.before(OpTruncate, h.name); err != nil {
		return pathErr("truncate", h.name, err)
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(true); err != nil {
		return pathErr("truncate", h.name, err)
	}
	if size <= int64(len(h.ino.data)) {
		h.ino.data = h.ino.data[:size]
	} else {
		h.ino.data = append(h.ino.data, make([]byte, size-int64(len(h.ino.data)))...)
	}
	return nil
}

func (h *file) Stat() (fs.FileInfo, error) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check(false); err != nil {
		return nil, pathErr("stat", h.name, err)
	}
	return info{name: filepath.Base(h.name), size: int64(len(h.ino.data))}, nil
}

func (h *file) Close() error {
	err := h.fs.before(OpClose, h.name)
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return pathErr("close", h.name, fs.ErrClosed)
	}
	h.closed = true
	if err != nil {
		return pathErr("close", h.name, err)
	}
	return nil
}

type info struct {
	name string
	size int64
	dir  bool
}

func (i info) Name() string { return i.name }
func (i info) Size() int64  { return i.size }
func (i info) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.dir }
func (i info) Sys() any           { return nil }
