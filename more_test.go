package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
)

// Fetcher is a Workers service: handlers may overlap.
type Fetcher struct {
	inside, peak atomic.Int32
}

func (f *Fetcher) Fetch(_ *reactor.Ctx, d time.Duration) (int32, error) {
	n := f.inside.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(d)
	f.inside.Add(-1)
	return n, nil
}

var fetch = reactor.Method("test.fetcher.fetch", (*Fetcher).Fetch)

func TestWorkersRunConcurrently(t *testing.T) {
	rt := newRuntime(t, reactor.Config{Goroutines: 8})
	f := &Fetcher{}
	ref, _ := reactor.Register(rt, "/fetch", f, reactor.Workers(4))
	start(t, rt)
	var wg sync.WaitGroup
	began := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fetch.Call(context.Background(), ref, 50*time.Millisecond); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := f.peak.Load(); p != 4 {
		t.Fatalf("peak concurrency %d, want 4", p)
	}
	if el := time.Since(began); el > 300*time.Millisecond {
		t.Fatalf("8 × 50ms with 4 workers took %v", el)
	}
}

// Clock uses timers.
type Clock struct {
	Ticks int
	timer *reactor.Timer
}

func (c *Clock) Arm(ctx *reactor.Ctx, d time.Duration) (struct{}, error) {
	c.timer = tick.After(ctx, d, 1)
	return struct{}{}, nil
}

func (c *Clock) Disarm(*reactor.Ctx, struct{}) (bool, error) { return c.timer.Stop(), nil }

func (c *Clock) Tick(_ *reactor.Ctx, n int) (struct{}, error) { c.Ticks += n; return struct{}{}, nil }

func (c *Clock) Count(*reactor.Ctx, struct{}) (int, error) { return c.Ticks, nil }

var (
	arm    = reactor.Method("test.clock.arm", (*Clock).Arm)
	disarm = reactor.Method("test.clock.disarm", (*Clock).Disarm)
	tick   = reactor.Method("test.clock.tick", (*Clock).Tick)
	ticks  = reactor.Method("test.clock.count", (*Clock).Count, reactor.ReadOnly())
)

func TestTimers(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	ref, _ := reactor.Register(rt, "/clock", &Clock{})
	start(t, rt)
	ctx := context.Background()
	arm.Call(ctx, ref, 5*time.Millisecond)
	testutil.WaitFor(t, func() bool { n, _ := ticks.Call(ctx, ref, struct{}{}); return n == 1 })
	arm.Call(ctx, ref, time.Hour)
	if stopped, _ := disarm.Call(ctx, ref, struct{}{}); !stopped {
		t.Fatal("Stop of a pending timer reported false")
	}
	arm.Call(ctx, ref, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if stopped, _ := disarm.Call(ctx, ref, struct{}{}); stopped {
		t.Fatal("Stop of a fired timer reported true")
	}
	if n, _ := ticks.Call(ctx, ref, struct{}{}); n != 2 {
		t.Fatalf("ticks = %d, want 2", n)
	}
}

// Book has a large read-only state scanned by extractors.
type Book struct{ Lines []int }

func (b *Book) Sums(c *reactor.Ctx, parts int) ([]int, error) {
	chunk := len(b.Lines) / parts
	idx := make([]int, parts)
	for i := range idx {
		idx[i] = i
	}
	sums := reactor.ExtractEach(c, idx, func(p int) int {
		s := 0
		for _, v := range b.Lines[p*chunk : (p+1)*chunk] {
			s += v
		}
		return s
	})
	b.Lines = append(b.Lines, 0) // back on the single-threaded turn: writing is fine again
	return sums, nil
}

var sums = reactor.Method("test.book.sums", (*Book).Sums)

func TestExtractorsReadFrozenStateInParallel(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	b := &Book{}
	for i := range 4000 {
		b.Lines = append(b.Lines, i)
	}
	ref, _ := reactor.Register(rt, "/book", b)
	start(t, rt)
	got, err := sums.Call(context.Background(), ref, 4)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range got {
		total += s
	}
	if len(got) != 4 || total != 3999*4000/2 {
		t.Fatalf("sums %v", got)
	}
}

// Tracer records the global order of handling across services.
type Tracer struct {
	Name  string
	trace *[]string
}

func (tr *Tracer) Hit(c *reactor.Ctx, n int) (struct{}, error) {
	*tr.trace = append(*tr.trace, fmt.Sprintf("%s%d:%d", tr.Name, n, c.Rand().IntN(1000)))
	return struct{}{}, nil
}

var hit = reactor.Method("test.tracer.hit", (*Tracer).Hit)

func runDeterministic(t *testing.T, seed uint64) []string {
	rt, err := reactor.New(reactor.Config{SingleGoroutine: true, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	var trace []string
	var refs []reactor.Ref
	for _, name := range []string{"a", "b", "c", "d"} {
		ref, _ := reactor.Register(rt, "/"+name, &Tracer{Name: name, trace: &trace})
		refs = append(refs, ref)
	}
	for i := range 50 {
		for _, ref := range refs {
			if err := hit.Send(context.Background(), ref, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	start(t, rt)
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return trace
}

func TestSingleGoroutineSeededIsDeterministic(t *testing.T) {
	a, b := runDeterministic(t, 42), runDeterministic(t, 42)
	if len(a) != 200 || !slices.Equal(a, b) {
		t.Fatalf("two runs with one seed differ")
	}
	if c := runDeterministic(t, 43); slices.Equal(a, c) {
		t.Fatalf("another seed gave the same schedule")
	}
}

// Probe reports how many flood messages were handled when it ran.
type Probe struct {
	rt   *reactor.Runtime
	seen chan uint64
}

func (p *Probe) Look(*reactor.Ctx, struct{}) (struct{}, error) {
	p.seen <- stat(p.rt, "/flood").Handled
	return struct{}{}, nil
}

var probeLook = reactor.Method("test.probe.look", (*Probe).Look)

func TestFloodDoesNotStarveOthers(t *testing.T) {
	rt := newRuntime(t, reactor.Config{Goroutines: 1, BatchSize: 16, InboxSize: 1 << 16})
	fref, _ := reactor.Register(rt, "/flood", newCounter())
	probe := &Probe{rt: rt, seen: make(chan uint64, 1)}
	pref, _ := reactor.Register(rt, "/quiet", probe)
	for range 1 << 16 {
		if err := add.Send(context.Background(), fref, 1); err != nil {
			t.Fatal(err)
		}
	}
	// Queued behind the whole flood before the workers start, so how soon
	// it runs depends on the scheduler's fairness only, not on timing.
	if err := probeLook.Send(context.Background(), pref, struct{}{}); err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	select {
	case h := <-probe.seen:
		if h > 1<<15 {
			t.Fatalf("quiet service waited for %d flood messages", h)
		}
	case <-time.After(testutil.WaitTimeout):
		t.Fatal("quiet service never ran")
	}
}

func TestTryCallFailsFastOnFullInbox(t *testing.T) {
	rt := newRuntime(t, reactor.Config{InboxSize: 2})
	c := newCounter()
	ref, _ := reactor.Register(rt, "/c", c)
	start(t, rt)
	ctx := context.Background()
	block.Send(ctx, ref, struct{}{})
	<-c.started
	add.Send(ctx, ref, 1)
	add.Send(ctx, ref, 1)
	if _, err := add.TryCall(ctx, ref, 1); !errors.Is(err, reactor.ErrBusy) {
		t.Fatalf("TryCall on a full inbox: %v", err)
	}
	close(c.block)
	add.Call(ctx, ref, 0) // waits for space and for the queued adds
	if n, err := add.TryCall(ctx, ref, 1); err != nil || n != 3 {
		t.Fatalf("TryCall with room: %d %v", n, err)
	}
}

func TestRefusedChildKey(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	reactor.RegisterChildren(rt, "/rooms", func(key string) *Room {
		if key == "bad" {
			return nil
		}
		return &Room{ID: key, loads: new(atomic.Int32), actives: new(atomic.Int32)}
	})
	start(t, rt)
	if _, err := join.Call(context.Background(), rt.Ref("/rooms/bad"), "x"); !errors.Is(err, reactor.ErrNoService) {
		t.Fatalf("refused key: %v", err)
	}
	if n, err := join.Call(context.Background(), rt.Ref("/rooms/good"), "x"); err != nil || n != 1 {
		t.Fatalf("good key: %d %v", n, err)
	}
}

func TestConfigVocabulary(t *testing.T) {
	if _, err := reactor.New(reactor.Config{Seed: 7}); err == nil {
		t.Fatal("Seed without SingleGoroutine was accepted (and would be ignored)")
	}
	if _, err := reactor.New(reactor.Config{SingleGoroutine: true, Goroutines: 2}); err == nil {
		t.Fatal("SingleGoroutine with Goroutines=2 was accepted")
	}
}

// Dice draws twice per message from Ctx.Rand.
type Dice struct{ Rolls [][2]int64 }

func (d *Dice) Roll(c *reactor.Ctx, _ struct{}) ([2]int64, error) {
	r := [2]int64{c.Rand().Int64(), c.Rand().Int64()}
	d.Rolls = append(d.Rolls, r)
	return r, nil
}

var diceRoll = reactor.Method("test.dice.roll", (*Dice).Roll)

// TestRandContinuesWithinAMessage: two draws in one handler differ (Rand is
// seeded once per message, not on every call).
func TestRandContinuesWithinAMessage(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	ref, _ := reactor.Register(rt, "/dice", &Dice{})
	start(t, rt)
	for range 3 {
		r, err := diceRoll.Call(context.Background(), ref, struct{}{})
		if err != nil || r[0] == r[1] {
			t.Fatalf("two draws in one message: %v %v", r, err)
		}
	}
}
