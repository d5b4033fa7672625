package reactortest_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/reactortest"
)

type member struct {
	Name  string
	Votes []int
}

type board struct {
	Title   string
	Members map[string]*member
	Order   []string
	Inner   struct{ N int }
	self    *board
	peer    reactor.Ref
}

func newBoard() *board {
	b := &board{Title: "t", Members: map[string]*member{"ann": {Name: "Ann", Votes: []int{1, 2, 3}}}, Order: []string{"ann", "bob"}}
	b.self = b // a cycle
	return b
}

func TestShared(t *testing.T) {
	b := newBoard()
	type view struct {
		Members map[string]*member
		Names   []string
		Inner   *struct{ N int }
	}
	ann := b.Members["ann"]
	for _, tc := range []struct {
		name  string
		value any
		want  string // a fragment of the path, "" for none
	}{
		{"the state's map", view{Members: b.Members}, "value.Members"},
		{"a member inside a copied map", map[string]*member{"ann": ann}, `value["ann"]`},
		{"a sub-slice of the state's array", b.Order[1:], "value"},
		{"votes deep inside a copy", []member{{Name: "Ann", Votes: ann.Votes}}, "value[0].Votes"},
		{"a pointer to a field", view{Inner: &b.Inner}, "value.Inner"},
		{"the whole state", b, "value"},
		{"a copy", view{Members: maps.Clone(b.Members), Names: slices.Clone(b.Order)}, "value.Members"}, // the map is new, its *member values are not
		{"a deep copy", map[string]member{"ann": {Name: ann.Name, Votes: slices.Clone(ann.Votes)}}, ""},
		{"strings", []string{b.Title, b.Order[0]}, ""},
		{"a reactor handle", struct{ R reactor.Ref }{b.peer}, ""},
		{"nil and scalars", []any{nil, 1, "x", struct{}{}}, ""},
	} {
		got := reactortest.Shared(b, tc.value)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: Shared = %q, want a path with %q", tc.name, got, tc.want)
		}
	}
}

type tally struct{ Counts map[string]int }

var (
	tallyAdd = reactor.Method("alias.tally.add", func(s *tally, _ *reactor.Ctx, k string) (int, error) {
		if s.Counts == nil {
			s.Counts = map[string]int{}
		}
		s.Counts[k]++
		return s.Counts[k], nil
	})
	tallyLeaky = reactor.Method("alias.tally.leaky", func(s *tally, _ *reactor.Ctx, _ struct{}) (map[string]int, error) {
		return s.Counts, nil
	}, reactor.ReadOnly())
	tallyCopy = reactor.Method("alias.tally.copy", func(s *tally, _ *reactor.Ctx, _ struct{}) (map[string]int, error) {
		return maps.Clone(s.Counts), nil
	}, reactor.ReadOnly())
)

// recorder is a testing.TB that keeps the failures NoAliasing reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) { r.errs = append(r.errs, format) }

// TestNoAliasingFindsALeakyReply: through the runtime's hook, a handler
// returning its state's map is reported; one returning a copy is not.
func TestNoAliasingFindsALeakyReply(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{TB: t}
	rt, err := reactor.New(reactor.Config{CheckShared: reactortest.NoAliasing(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	ref, _ := reactor.Register(rt, "/tally", &tally{})
	rt.Start(ctx)
	tallyAdd.Call(ctx, ref, "a")
	if _, err := tallyCopy.Call(ctx, ref, struct{}{}); err != nil || len(rec.errs) != 0 {
		t.Fatalf("a copied reply reported: %v %v", err, rec.errs)
	}
	if _, err := tallyLeaky.Call(ctx, ref, struct{}{}); err != nil || len(rec.errs) != 1 {
		t.Fatalf("a reply of the state's own map: %d reports (%v), want 1", len(rec.errs), err)
	}
}
