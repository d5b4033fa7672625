package sqlreactor

import (
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// Dialect is what differs between database backends. The backend packages
// (sqlreactor/sqlite, sqlreactor/postgres) provide one; request functions
// write '?' placeholders and the dialect rewrites them.
type Dialect interface {
	// Name is a short name ("sqlite", "postgres").
	Name() string
	// Begin is the statement that opens the writer's batch transaction.
	Begin() string
	// Placeholder returns the n-th (1-based) bind placeholder.
	Placeholder(n int) string
	// ReleaseSavepoints reports whether a successful request's savepoint
	// should be released at once (cheap in SQLite; a round trip in
	// PostgreSQL, where it also frees nothing, so it is skipped).
	ReleaseSavepoints() bool
	// ReadTxOptions are the options of read-only pool transactions.
	ReadTxOptions() *sql.TxOptions
}

// rebinder rewrites '?' placeholders (outside string literals) into the
// dialect's, caching the result per query text.
type rebinder struct {
	d     Dialect
	cache sync.Map // string → string
}

func (r *rebinder) rebind(q string) string {
	if r.d.Placeholder(1) == "?" {
		return q
	}
	if v, ok := r.cache.Load(q); ok {
		return v.(string)
	}
	out := Rebind(q, r.d.Placeholder)
	r.cache.Store(q, out)
	return out
}

// Rebind replaces each '?' outside single-quoted literals, double-quoted
// identifiers and comments of q with ph(n), n counting from 1.
func Rebind(q string, ph func(n int) string) string {
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		ch := q[i]
		switch {
		case ch == '\'' || ch == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == ch {
					if j+1 < len(q) && q[j+1] == ch { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(q) {
				j = len(q) - 1
			}
			b.WriteString(q[i : j+1])
			i = j
		case ch == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case ch == '?':
			n++
			b.WriteString(ph(n))
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// DollarPlaceholder is PostgreSQL's $n.
func DollarPlaceholder(n int) string { return "$" + strconv.Itoa(n) }
