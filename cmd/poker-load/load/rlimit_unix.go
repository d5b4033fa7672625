//go:build unix

package load

import "syscall"

// RaiseFileLimit raises the soft open-file limit (RLIMIT_NOFILE) to at
// least need, as far as the hard limit allows, and reports whether the
// limit now covers need. (Go already raises the soft limit to the hard one
// at start on Linux; this also says when even that is not enough.)
func RaiseFileLimit(need uint64) bool {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return false
	}
	if l.Cur >= need {
		return true
	}
	l.Cur = min(max(need, l.Cur), l.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return false
	}
	return l.Cur >= need
}
