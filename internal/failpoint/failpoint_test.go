package failpoint_test

import (
	"errors"
	"testing"

	"github.com/reactorgo/reactor/internal/failpoint"
)

func TestInjectFollowsItsOwner(t *testing.T) {
	a, b := new(int), new(int)
	if err := failpoint.Inject("p", a); err != nil {
		t.Fatalf("off: %v", err)
	}
	boom := errors.New("boom")
	var seen []string
	disable := failpoint.Enable(func(name string) error { seen = append(seen, name); return boom }, a)
	if err := failpoint.Inject("p", a); !errors.Is(err, boom) {
		t.Fatalf("owner a: %v", err)
	}
	if err := failpoint.Inject("p", b); err != nil {
		t.Fatalf("owner b has no hook: %v", err)
	}
	disable()
	disable()
	if err := failpoint.Inject("p", a); err != nil || len(seen) != 1 {
		t.Fatalf("after disable: %v, seen %v", err, seen)
	}
}

func BenchmarkInjectOff(b *testing.B) {
	o := new(int)
	for b.Loop() {
		_ = failpoint.Inject("p", o)
	}
}
