package reactor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/internal/testutil"
)

// Note is a child that counts and can be finished.
type Note struct{ N int }

func (n *Note) Bump(*reactor.Ctx, struct{}) (int, error) { n.N++; return n.N, nil }

func (n *Note) Finish(c *reactor.Ctx, _ struct{}) (int, error) {
	n.N = -1 // a tombstone
	c.Forget()
	return n.N, nil
}

var (
	noteBump   = reactor.Method("test.note.bump", (*Note).Bump)
	noteFinish = reactor.Method("test.note.finish", (*Note).Finish)
)

// TestForgottenChildLeavesNoCheckpoint: a child whose handler called Forget
// is deleted from the store when evicted (and at Close) instead of saved,
// and its key starts afresh.
func TestForgottenChildLeavesNoCheckpoint(t *testing.T) {
	store := checkpoint.NewMemStore()
	rt := newRuntime(t, reactor.Config{Store: store})
	notes, _ := reactor.RegisterChildren(rt, "/notes", func(string) *Note { return &Note{} }, reactor.MaxChildren(1))
	start(t, rt)
	ctx := context.Background()
	for _, key := range []string{"a", "b"} {
		if _, err := noteBump.Call(ctx, notes.Child(key), struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, func() bool { _, err := store.Load(ctx, "/notes/a"); return err == nil }) // a was evicted and saved
	if _, err := noteFinish.Call(ctx, notes.Child("a"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	// Loading a asked b to leave: wait until it has, or the bump below may
	// reach b still resident and marked, and b — not a — leaves after it
	// (the family is then within its bound with a resident).
	testutil.WaitFor(t, func() bool { return residentNotes(rt) == 1 })
	if _, err := noteBump.Call(ctx, notes.Child("b"), struct{}{}); err != nil { // evicts a
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool {
		_, err := store.Load(ctx, "/notes/a")
		return errors.Is(err, checkpoint.ErrNotFound)
	})
	if n, err := noteBump.Call(ctx, notes.Child("a"), struct{}{}); err != nil || n != 1 {
		t.Fatalf("a after it was forgotten: %d %v, want a fresh state", n, err)
	}
	// Forgotten while resident at Close: deleted, not saved.
	if _, err := noteFinish.Call(ctx, notes.Child("a"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, "/notes/a"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("forgotten child saved at Close: %v", err)
	}
	if _, err := store.Load(ctx, "/notes/b"); err != nil {
		t.Fatalf("b not saved: %v", err)
	}
}

// residentNotes is how many /notes children are in memory.
func residentNotes(rt *reactor.Runtime) int {
	for _, st := range rt.Stats() {
		if st.Addr == "/notes" {
			return st.Resident
		}
	}
	return -1
}
