package faultfs

import (
	"errors"
	"io/fs"
	"sync/atomic"

	"github.com/reactorgo/reactor/journal"
)

// ErrProcessDead is what every operation of a killed Process returns.
var ErrProcessDead = errors.New("faultfs: the process is dead")

// Process is one process's view of a shared file system: once killed,
// every write, sync, rename and open fails, as a dead process writes
// nothing more, while the file system itself lives on. Crash tests kill
// the view, crash the disk (FS.Crash drops what was not synced), then open
// the next "process" on a new view of the same disk.
type Process struct {
	journal.FS
	dead atomic.Bool
}

// NewProcess returns a live view of fsys.
func NewProcess(fsys journal.FS) *Process { return &Process{FS: fsys} }

// Kill makes every later operation through this view fail.
func (p *Process) Kill() { p.dead.Store(true) }

func (p *Process) OpenFile(name string, flag int, perm fs.FileMode) (journal.File, error) {
	if p.dead.Load() {
		return nil, ErrProcessDead
	}
	f, err := p.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return processFile{File: f, p: p}, nil
}

func (p *Process) Rename(a, b string) error {
	if p.dead.Load() {
		return ErrProcessDead
	}
	return p.FS.Rename(a, b)
}

func (p *Process) Remove(name string) error {
	if p.dead.Load() {
		return ErrProcessDead
	}
	return p.FS.Remove(name)
}

func (p *Process) SyncDir(dir string) error {
	if p.dead.Load() {
		return ErrProcessDead
	}
	return p.FS.SyncDir(dir)
}

type processFile struct {
	journal.File
	p *Process
}

func (f processFile) Write(b []byte) (int, error) {
	if f.p.dead.Load() {
		return 0, ErrProcessDead
	}
	return f.File.Write(b)
}

func (f processFile) WriteAt(b []byte, off int64) (int, error) {
	if f.p.dead.Load() {
		return 0, ErrProcessDead
	}
	return f.File.WriteAt(b, off)
}

func (f processFile) Sync() error {
	if f.p.dead.Load() {
		return ErrProcessDead
	}
	return f.File.Sync()
}

func (f processFile) Truncate(n int64) error {
	if f.p.dead.Load() {
		return ErrProcessDead
	}
	return f.File.Truncate(n)
}
