package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/reactortest"
)

// Room is a keyed child: /rooms/{key}.
type Room struct {
	ID      string
	Members []string
	loads   *atomic.Int32
	actives *atomic.Int32
}

func (r *Room) Join(c *reactor.Ctx, name string) (int, error) {
	r.Members = append(r.Members, name)
	return len(r.Members), nil
}

func (r *Room) Size(_ *reactor.Ctx, _ struct{}) (int, error) { return len(r.Members), nil }

func (r *Room) OnLoad(*reactor.Ctx) error { r.loads.Add(1); return nil }

func (r *Room) OnActive(*reactor.Ctx) { r.actives.Add(1) }

var (
	join     = reactor.Method("test.room.join", (*Room).Join)
	roomSize = reactor.Method("test.room.size", (*Room).Size, reactor.ReadOnly())
)

func rooms(t *testing.T, store checkpoint.Store, opts ...reactor.Option) (*reactor.Runtime, *atomic.Int32) {
	rt := newRuntime(t, reactor.Config{Store: store})
	loads, actives := &atomic.Int32{}, &atomic.Int32{}
	_, err := reactor.RegisterChildren(rt, "/rooms", func(key string) *Room {
		return &Room{ID: key, loads: loads, actives: actives}
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	start(t, rt)
	return rt, loads
}

func TestChildrenCreatedOnDemandEvictedAndReloaded(t *testing.T) {
	store := checkpoint.NewMemStore()
	rt, loads := rooms(t, store, reactor.MaxChildren(10))
	ctx := context.Background()
	for i := range 50 {
		ref := rt.Ref("/rooms/" + strconv.Itoa(i))
		for j := range 3 {
			if n, err := join.Call(ctx, ref, fmt.Sprint("m", j)); err != nil || n != j+1 {
				t.Fatalf("room %d join %d: %d %v", i, j, n, err)
			}
		}
	}
	testutil.WaitFor(t, func() bool {
		st := stat(rt, "/rooms")
		return st.Resident <= 10
	})
	st := stat(rt, "/rooms")
	if st.Evicted < 40 || st.Saves < 40 {
		t.Fatalf("evicted %d saved %d, want ≥ 40", st.Evicted, st.Saves)
	}
	// Every room comes back from its checkpoint with its members.
	for i := range 50 {
		n, err := roomSize.Call(ctx, rt.Ref("/rooms/"+strconv.Itoa(i)), struct{}{})
		if err != nil || n != 3 {
			t.Fatalf("room %d after reload: %d %v", i, n, err)
		}
	}
	if loads.Load() < 90 {
		t.Fatalf("OnLoad ran %d times", loads.Load())
	}
}

func TestChildMemoryBound(t *testing.T) {
	rt, _ := rooms(t, checkpoint.NewMemStore(), reactor.MaxChildMemory(20_000))
	ctx := context.Background()
	for i := range 500 {
		if _, err := join.Call(ctx, rt.Ref("/rooms/"+strconv.Itoa(i)), "a"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, func() bool { return stat(rt, "/rooms").Resident < 200 })
}

func TestIdleChildrenExpire(t *testing.T) {
	store := checkpoint.NewMemStore()
	rt, _ := rooms(t, store, reactor.IdleTimeout(time.Second))
	ctx := context.Background()
	for i := range 5 {
		join.Call(ctx, rt.Ref("/rooms/s"+strconv.Itoa(i)), "x")
	}
	testutil.WaitFor(t, func() bool { return stat(rt, "/rooms").Resident == 0 })
	keys, _ := store.Keys(ctx)
	if len(keys) != 5 {
		t.Fatalf("checkpoints %v", keys)
	}
}

func TestChildStateSavedAtClose(t *testing.T) {
	store := checkpoint.NewMemStore()
	rt, _ := reactor.New(reactor.Config{Store: store, CheckShared: reactortest.NoAliasing(t)})
	loads, actives := &atomic.Int32{}, &atomic.Int32{}
	reactor.RegisterChildren(rt, "/rooms", func(key string) *Room { return &Room{ID: key, loads: loads, actives: actives} })
	start(t, rt)
	join.Call(context.Background(), rt.Ref("/rooms/a"), "ann")
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp, err := store.Load(context.Background(), "/rooms/a")
	if err != nil || string(cp.Data) != `{"ID":"a","Members":["ann"]}` {
		t.Fatalf("checkpoint %q %v", cp.Data, err)
	}
}

func TestManyConcurrentChildren(t *testing.T) {
	rt, _ := rooms(t, checkpoint.NewMemStore(), reactor.MaxChildren(64))
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				key := strconv.Itoa((g*7 + i) % 200)
				if _, err := join.Call(ctx, rt.Ref("/rooms/"+key), "m"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for k := range 200 {
		n, err := roomSize.Call(ctx, rt.Ref("/rooms/"+strconv.Itoa(k)), struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 8*300 {
		t.Fatalf("members across rooms = %d, want %d (a message was lost across eviction)", total, 8*300)
	}
}

func stat(rt *reactor.Runtime, addr string) reactor.ServiceStats {
	for _, s := range rt.Stats() {
		if s.Addr == addr {
			return s
		}
	}
	return reactor.ServiceStats{}
}

// Desk defers replies and forwards work to a Room.
type Desk struct {
	pending []*reactor.Reply[int]
	rooms   reactor.Ref
}

func (d *Desk) Wait(c *reactor.Ctx, _ struct{}) (int, error) {
	d.pending = append(d.pending, reactor.Defer[int](c))
	return 0, nil
}

func (d *Desk) Release(_ *reactor.Ctx, v int) (int, error) {
	for _, r := range d.pending {
		r.OK(v)
	}
	n := len(d.pending)
	d.pending = nil
	return n, nil
}

func (d *Desk) JoinVia(c *reactor.Ctx, name string) (int, error) {
	join.Forward(c, d.rooms.Child("via"), name, reactor.Defer[int](c))
	return 0, nil
}

func (d *Desk) Doubled(c *reactor.Ctx, name string) (int, error) {
	r := reactor.Defer[int](c)
	join.Async(c, d.rooms.Child("dbl"), name, reactor.Then(r, func(_ *reactor.Ctx, n int) (int, error) {
		return 2 * n, nil
	}))
	return 0, nil
}

func (d *Desk) BadDefer(c *reactor.Ctx, _ struct{}) (int, error) {
	reactor.Defer[string](c)
	return 0, nil
}

func (d *Desk) SelfCall(c *reactor.Ctx, _ struct{}) (int, error) {
	return deskWait.Call(c, c.Self(), struct{}{})
}

var (
	deskWait     = reactor.Method("test.desk.wait", (*Desk).Wait)
	deskRelease  = reactor.Method("test.desk.release", (*Desk).Release)
	deskJoinVia  = reactor.Method("test.desk.joinvia", (*Desk).JoinVia)
	deskDoubled  = reactor.Method("test.desk.doubled", (*Desk).Doubled)
	deskBadDefer = reactor.Method("test.desk.baddefer", (*Desk).BadDefer)
	deskSelfCall = reactor.Method("test.desk.selfcall", (*Desk).SelfCall)
)

func TestDeferredRepliesForwardAndThen(t *testing.T) {
	rt := newRuntime(t, reactor.Config{})
	loads, actives := &atomic.Int32{}, &atomic.Int32{}
	reactor.RegisterChildren(rt, "/rooms", func(key string) *Room { return &Room{ID: key, loads: loads, actives: actives} })
	ref, _ := reactor.Register(rt, "/desk", &Desk{rooms: rt.Ref("/rooms")})
	start(t, rt)
	ctx := context.Background()
	results := make(chan int, 3)
	for range 3 {
		go func() {
			v, err := deskWait.Call(ctx, ref, struct{}{})
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	testutil.WaitFor(t, func() bool { return stat(rt, "/desk").Handled >= 3 })
	if n, err := deskRelease.Call(ctx, ref, 7); err != nil || n != 3 {
		t.Fatalf("release: %d %v", n, err)
	}
	for range 3 {
		if v := <-results; v != 7 {
			t.Fatalf("deferred reply %d, want 7", v)
		}
	}
	if n, err := deskJoinVia.Call(ctx, ref, "ann"); err != nil || n != 1 {
		t.Fatalf("forward: %d %v", n, err)
	}
	if n, err := deskDoubled.Call(ctx, ref, "bob"); err != nil || n != 2 {
		t.Fatalf("then: %d %v", n, err)
	}
	if _, err := deskBadDefer.Call(ctx, ref, struct{}{}); !errors.Is(err, reactor.ErrPanic) {
		t.Fatalf("Defer with the wrong type: %v", err)
	}
	if _, err := deskSelfCall.Call(ctx, ref, struct{}{}); !errors.Is(err, reactor.ErrDeadlock) {
		t.Fatalf("blocking self call: %v", err)
	}
}
