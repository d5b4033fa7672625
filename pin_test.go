package reactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/testutil"
	"github.com/reactorgo/reactor/reactortest"
)

// feed publishes ints to its subscribers.
type feed struct {
	Subs reactor.Subscribers[int]
	Sent int
}

var (
	feedTopic   = reactor.Topic("pintest.feed", func(f *feed) *reactor.Subscribers[int] { return &f.Subs })
	feedPublish = reactor.Method("pintest.feed.publish", func(f *feed, c *reactor.Ctx, v int) (int, error) {
		f.Sent++
		return feedTopic.Publish(c, v), nil
	})
	feedLen = reactor.Method("pintest.feed.len", func(f *feed, _ *reactor.Ctx, _ struct{}) (int, error) {
		return f.Subs.Len(), nil
	}, reactor.ReadOnly())
)

// watcher is an in-memory subscriber: it pins a closure over its state.
type watcher struct {
	feed      reactor.Ref
	Got       []int
	WrongTurn int
	cb        reactor.Callback[int]
	cancel    reactor.Cancel
	block     chan struct{}
}

var (
	watcherWatch = reactor.Method("pintest.watcher.watch", func(w *watcher, c *reactor.Ctx, _ struct{}) (reactor.Callback[int], error) {
		self := c.Self().Addr()
		w.cb = reactor.Pin(c, func(c *reactor.Ctx, v int) {
			if c.Self().Addr() != self {
				w.WrongTurn++
			}
			w.Got = append(w.Got, v)
		})
		r := reactor.Defer[reactor.Callback[int]](c)
		feedTopic.Subscribe.Async(c, w.feed, w.cb, func(_ *reactor.Ctx, cancel reactor.Cancel, err error) {
			w.cancel = cancel
			r.Complete(w.cb, err)
		})
		return reactor.Callback[int]{}, nil
	})
	watcherStop = reactor.Method("pintest.watcher.stop", func(w *watcher, c *reactor.Ctx, _ struct{}) (bool, error) {
		return w.cb.Release(c), w.cancel.Cancel(c)
	})
	watcherGot = reactor.Method("pintest.watcher.got", func(w *watcher, _ *reactor.Ctx, _ struct{}) ([]int, error) {
		if w.WrongTurn != 0 {
			return nil, fmt.Errorf("%d callbacks ran on another service's turn", w.WrongTurn)
		}
		return append([]int(nil), w.Got...), nil
	}, reactor.ReadOnly())
	watcherHold = reactor.Method("pintest.watcher.hold", func(w *watcher, _ *reactor.Ctx, _ struct{}) (struct{}, error) {
		<-w.block
		return struct{}{}, nil
	})
)

func startPinRuntime(t *testing.T, opts ...reactor.Option) (*reactor.Runtime, reactor.Ref, reactor.Ref, chan struct{}) {
	t.Helper()
	ctx := context.Background()
	rt, err := reactor.New(reactor.Config{Goroutines: 2, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	block := make(chan struct{})
	feedRef, err := reactor.Register(rt, "/feed", &feed{})
	if err != nil {
		t.Fatal(err)
	}
	watchers, err := reactor.RegisterChildren(rt, "/watchers", func(string) *watcher {
		return &watcher{feed: feedRef, block: block}
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return rt, feedRef, watchers, block
}

// TestPinnedCallbackRunsOnOwnersTurn: values published by the feed and
// invoked from outside goroutines run on the watcher's turn, serialised
// with its own handlers (the race detector checks the state is never
// touched concurrently), in each sender's order.
func TestPinnedCallbackRunsOnOwnersTurn(t *testing.T) {
	ctx := context.Background()
	_, feedRef, watchers, _ := startPinRuntime(t)
	names := []string{"a", "b", "c"}
	cbs := map[string]reactor.Callback[int]{}
	for _, n := range names {
		cb, err := watcherWatch.Call(ctx, watchers.Child(n), struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		cbs[n] = cb
	}
	const published, direct = 300, 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= published; i++ {
			if n, err := feedPublish.Call(ctx, feedRef, i); err != nil || n != len(names) {
				t.Errorf("publish %d: delivered %d, %v", i, n, err)
				return
			}
		}
	})
	wg.Go(func() { // an outside goroutine invoking a's callback directly
		for i := 1; i <= direct; i++ {
			for {
				err := cbs["a"].Invoke(ctx, -i)
				if err == nil {
					break
				}
				if !errors.Is(err, reactor.ErrBusy) {
					t.Errorf("invoke %d: %v", i, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	wg.Go(func() { // the watchers' own handlers, concurrently with the callbacks
		for range 200 {
			for _, n := range names {
				if _, err := watcherGot.Call(ctx, watchers.Child(n), struct{}{}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	wg.Wait()
	for _, n := range names {
		want := published
		if n == "a" {
			want += direct
		}
		var got []int
		testutil.WaitFor(t, func() bool {
			var err error
			got, err = watcherGot.Call(ctx, watchers.Child(n), struct{}{})
			if err != nil {
				t.Fatal(err)
			}
			return len(got) == want
		})
		pub, dir := 0, 0
		for _, v := range got {
			switch {
			case v > 0:
				pub++
				if v != pub {
					t.Fatalf("%s: published value %d arrived as number %d", n, v, pub)
				}
			default:
				dir++
				if -v != dir {
					t.Fatalf("%s: invoked value %d arrived as number %d", n, -v, dir)
				}
			}
		}
	}
}

// TestCancelStopsDelivery: after Cancel (which runs on the publisher) the
// subscriber gets nothing more, the publisher's set shrinks, and the
// released closure refuses further invocations.
func TestCancelStopsDelivery(t *testing.T) {
	ctx := context.Background()
	_, feedRef, watchers, _ := startPinRuntime(t)
	cbA, err := watcherWatch.Call(ctx, watchers.Child("a"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watcherWatch.Call(ctx, watchers.Child("b"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	if n, err := feedPublish.Call(ctx, feedRef, 1); n != 2 || err != nil {
		t.Fatalf("publish: %d, %v", n, err)
	}
	if released, err := watcherStop.Call(ctx, watchers.Child("a"), struct{}{}); !released || err != nil {
		t.Fatalf("stop: %v, %v", released, err)
	}
	testutil.WaitFor(t, func() bool { n, _ := feedLen.Call(ctx, feedRef, struct{}{}); return n == 1 })
	if n, err := feedPublish.Call(ctx, feedRef, 2); n != 1 || err != nil {
		t.Fatalf("publish after cancel: %d, %v", n, err)
	}
	if err := cbA.Invoke(ctx, 3); !errors.Is(err, reactor.ErrCallbackGone) {
		t.Fatalf("invoke of a released callback: %v, want ErrCallbackGone", err)
	}
	testutil.WaitFor(t, func() bool { got, _ := watcherGot.Call(ctx, watchers.Child("b"), struct{}{}); return len(got) == 2 })
	got, _ := watcherGot.Call(ctx, watchers.Child("a"), struct{}{})
	if fmt.Sprint(got) != "[1]" {
		t.Fatalf("a got %v after cancelling, want [1]", got)
	}
	// Cancelling again is harmless.
	if _, err := watcherStop.Call(ctx, watchers.Child("a"), struct{}{}); err != nil {
		t.Fatal(err)
	}
}

// TestEvictedOwnerDropsCallbacks: a watcher that is evicted (here by the
// family's bound of one child) takes its callbacks with it: invokers get
// ErrCallbackGone and the publisher drops it; the eviction did not wait for
// anyone to release them.
func TestEvictedOwnerDropsCallbacks(t *testing.T) {
	ctx := context.Background()
	rt, feedRef, watchers, _ := startPinRuntime(t, reactor.MaxChildren(1))
	cb, err := watcherWatch.Call(ctx, watchers.Child("a"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	// Touching b makes a the least recently used child over the bound of
	// one; a is evicted once idle (b may go first while a is still busy,
	// so touch b until a is gone).
	testutil.WaitFor(t, func() bool {
		if _, err := watcherGot.Call(ctx, watchers.Child("b"), struct{}{}); err != nil {
			t.Fatal(err)
		}
		err := cb.Invoke(ctx, 1)
		if err != nil && !errors.Is(err, reactor.ErrCallbackGone) {
			t.Fatalf("invoke: %v", err)
		}
		return err != nil
	})
	if reactortest.Evicted(rt, "/watchers") == 0 {
		t.Fatal("callback gone without an eviction")
	}
	if n, err := feedPublish.Call(ctx, feedRef, 1); n != 0 || err != nil {
		t.Fatalf("publish to an evicted subscriber: delivered %d, %v", n, err)
	}
	if n, _ := feedLen.Call(ctx, feedRef, struct{}{}); n != 0 {
		t.Fatalf("publisher kept %d gone subscribers", n)
	}
}

// TestClosedRuntimeDropsCallbacks: after Close every pinned closure is gone.
func TestClosedRuntimeDropsCallbacks(t *testing.T) {
	ctx := context.Background()
	rt, _, watchers, _ := startPinRuntime(t)
	cb, err := watcherWatch.Call(ctx, watchers.Child("a"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cb.Invoke(ctx, 1); !errors.Is(err, reactor.ErrCallbackGone) {
		t.Fatalf("invoke after Close: %v, want ErrCallbackGone", err)
	}
}

// TestCallbackInvokeIsBounded: a callback's invocation takes an inbox slot
// like any message: a full inbox answers ErrBusy at once.
func TestCallbackInvokeIsBounded(t *testing.T) {
	ctx := context.Background()
	_, _, watchers, block := startPinRuntime(t, reactor.InboxSize(2))
	a := watchers.Child("a")
	cb, err := watcherWatch.Call(ctx, a, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if err := watcherHold.Send(ctx, a, struct{}{}); err != nil {
		t.Fatal(err)
	}
	busy := 0
	for i := range 10 {
		if err := cb.Invoke(ctx, i); errors.Is(err, reactor.ErrBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	close(block)
	if busy == 0 {
		t.Fatal("10 invocations into an inbox of 2 held by a running handler: none refused")
	}
}

// ledger is a journaled subscriber: it pins a method (a closure could not
// be replayed).
type ledger struct {
	feed   reactor.Ref
	Total  int
	Seen   int
	Cancel reactor.Cancel
}

var (
	ledgerCredit = reactor.Method("pintest.ledger.credit", func(l *ledger, _ *reactor.Ctx, v int) (struct{}, error) {
		l.Total += v
		l.Seen++
		return struct{}{}, nil
	})
	ledgerWatch = reactor.Method("pintest.ledger.watch", func(l *ledger, c *reactor.Ctx, _ struct{}) (struct{}, error) {
		r := reactor.Defer[struct{}](c)
		feedTopic.Subscribe.Async(c, l.feed, ledgerCredit.Pin(c), func(_ *reactor.Ctx, cancel reactor.Cancel, err error) {
			l.Cancel = cancel
			r.Complete(struct{}{}, err)
		})
		return struct{}{}, nil
	})
	ledgerStop = reactor.Method("pintest.ledger.stop", func(l *ledger, c *reactor.Ctx, _ struct{}) (struct{}, error) {
		return struct{}{}, l.Cancel.Cancel(c)
	})
	ledgerRead = reactor.Method("pintest.ledger.read", func(l *ledger, _ *reactor.Ctx, _ struct{}) ([2]int, error) {
		return [2]int{l.Total, l.Seen}, nil
	}, reactor.ReadOnly())
	ledgerPinClosure = reactor.Method("pintest.ledger.pinclosure", func(l *ledger, c *reactor.Ctx, _ struct{}) (struct{}, error) {
		reactor.Pin(c, func(*reactor.Ctx, int) {})
		return struct{}{}, nil
	})
)

var originSeq = regexp.MustCompile(`\\u0000o[0-9a-z]+\.`)

type pinRun struct {
	feed, ledgers reactor.Ref
	delivered     int // what publishes reported, summed
}

// TestPinnedMethodSubscriptionDifferential: journaled subscribers pin a
// method of theirs at a journaled publisher; with a restart, an eviction
// or a crash before every step the replies, the subscribers' totals and
// the checkpoints are the same — invocations are journaled inputs of the
// subscriber, replayed in place and deduplicated by origin key, and the
// Callback and Cancel values survive the journal and checkpoints.
func TestPinnedMethodSubscriptionDifferential(t *testing.T) {
	read := func(ctx context.Context, r *pinRun) (any, error) {
		// Deliveries are sends: wait until every one reported is applied.
		var a, b [2]int
		for deadline := time.Now().Add(5 * time.Second); ; {
			var errA, errB error
			a, errA = ledgerRead.Call(ctx, r.ledgers.Child("a"), struct{}{})
			b, errB = ledgerRead.Call(ctx, r.ledgers.Child("b"), struct{}{})
			if err := errors.Join(errA, errB); err != nil {
				return nil, err
			}
			if a[1]+b[1] == r.delivered || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		return []int{a[0], a[1], b[0], b[1]}, nil
	}
	publish := func(v int) reactortest.Step[*pinRun] {
		return reactortest.Step[*pinRun]{Name: fmt.Sprint("publish ", v), Do: func(ctx context.Context, r *pinRun) (any, error) {
			n, err := feedPublish.Call(ctx, r.feed, v)
			r.delivered += n
			return n, err
		}}
	}
	d := &reactortest.Differential[*pinRun]{
		New: func(testing.TB, string) *pinRun { return &pinRun{} },
		Open: func(t testing.TB, rt *reactor.Runtime, r *pinRun) {
			var err error
			if r.feed, err = reactor.Register(rt, "/feed", &feed{}, reactor.Journaled()); err != nil {
				t.Fatal(err)
			}
			if r.ledgers, err = reactor.RegisterChildren(rt, "/ledgers", func(string) *ledger { return &ledger{feed: r.feed} }, reactor.Journaled()); err != nil {
				t.Fatal(err)
			}
		},
		Steps: []reactortest.Step[*pinRun]{
			{Name: "a watches", Do: func(ctx context.Context, r *pinRun) (any, error) {
				return ledgerWatch.Call(ctx, r.ledgers.Child("a"), struct{}{})
			}},
			{Name: "b watches", Do: func(ctx context.Context, r *pinRun) (any, error) {
				return ledgerWatch.Call(ctx, r.ledgers.Child("b"), struct{}{})
			}},
			publish(5),
			publish(7),
			{Name: "read", Do: read},
			{Name: "a stops", Do: func(ctx context.Context, r *pinRun) (any, error) {
				if _, err := ledgerStop.Call(ctx, r.ledgers.Child("a"), struct{}{}); err != nil {
					return nil, err
				}
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
					if n, err := feedLen.Call(ctx, r.feed, struct{}{}); err != nil || n == 1 || time.Now().After(deadline) {
						return n, err
					}
				}
			}},
			publish(11),
			{Name: "read again", Do: read},
		},
		Final: func(ctx context.Context, r *pinRun) (any, error) { return read(ctx, r) },
		// Origin keys carry the sender's journal sequence, which a crash
		// (resent records) moves on: compare them without it.
		Normalize:   func(_ *pinRun, text string) string { return originSeq.ReplaceAllString(text, `\u0000o#.`) },
		Disruptions: []reactortest.Disruption{reactortest.Reload, reactortest.Crash, reactortest.ReloadCrash},
	}
	d.Run(t)
}

// TestPinInJournaledServiceRefused: a journaled service cannot pin a
// closure (it could not be replayed): the handler panics with a message
// naming Method.Pin, and the service lives on.
func TestPinInJournaledServiceRefused(t *testing.T) {
	ctx := context.Background()
	rt, j := testutil.OpenDurable(t, t.TempDir(), reactor.Config{}, func(rt *reactor.Runtime) error {
		_, err := reactor.RegisterChildren(rt, "/ledgers", func(string) *ledger { return &ledger{} }, reactor.Journaled())
		return err
	})
	defer j.Close()
	defer rt.Close(ctx)
	_, err := ledgerPinClosure.Call(ctx, rt.Ref("/ledgers/a"), struct{}{})
	if !errors.Is(err, reactor.ErrPanic) || !strings.Contains(err.Error(), "Method.Pin") {
		t.Fatalf("Pin in a journaled service: %v, want a panic naming Method.Pin", err)
	}
}

// TestJournaledPublisherDropsClosuresOfEarlierProcess: a journaled feed
// keeps its subscribers across a restart, but closures pinned by the
// earlier process are gone: the first publish drops them (by a journaled
// removal), and a new subscriber gets the values.
func TestJournaledPublisherDropsClosuresOfEarlierProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (func(), reactor.Ref, reactor.Ref) {
		var feedRef, watchers reactor.Ref
		rt, j := testutil.OpenDurable(t, dir, reactor.Config{}, func(rt *reactor.Runtime) error {
			var err error
			if feedRef, err = reactor.Register(rt, "/feed", &feed{}, reactor.Journaled()); err != nil {
				return err
			}
			watchers, err = reactor.RegisterChildren(rt, "/watchers", func(string) *watcher { return &watcher{feed: feedRef} })
			return err
		})
		closeAll := func() {
			if err := rt.Close(ctx); err != nil {
				t.Error(err)
			}
			j.Close()
		}
		return closeAll, feedRef, watchers
	}
	closeAll, feedRef, watchers := open()
	if _, err := watcherWatch.Call(ctx, watchers.Child("a"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	if n, err := feedPublish.Call(ctx, feedRef, 1); n != 1 || err != nil {
		t.Fatalf("publish: %d, %v", n, err)
	}
	closeAll()
	closeAll, feedRef, watchers = open()
	defer closeAll()
	if n, _ := feedLen.Call(ctx, feedRef, struct{}{}); n != 1 {
		t.Fatalf("feed restored with %d subscribers, want the 1 saved", n)
	}
	if n, err := feedPublish.Call(ctx, feedRef, 2); n != 0 || err != nil {
		t.Fatalf("publish to a closure of the earlier process: delivered %d, %v", n, err)
	}
	testutil.WaitFor(t, func() bool { n, _ := feedLen.Call(ctx, feedRef, struct{}{}); return n == 0 })
	if _, err := watcherWatch.Call(ctx, watchers.Child("b"), struct{}{}); err != nil {
		t.Fatal(err)
	}
	if n, err := feedPublish.Call(ctx, feedRef, 3); n != 1 || err != nil {
		t.Fatalf("publish to a new subscriber: %d, %v", n, err)
	}
	testutil.WaitFor(t, func() bool {
		got, _ := watcherGot.Call(ctx, watchers.Child("b"), struct{}{})
		return fmt.Sprint(got) == "[3]"
	})
}

// FuzzCallbackDecode: any bytes decode to a valid callback or fail with an
// error; what decodes encodes back to the same value.
func FuzzCallbackDecode(f *testing.F) {
	for _, s := range []string{`{"owner":"/watchers/a","pin":"42"}`, `{"owner":"/ledgers/a","method":"pintest.ledger.credit"}`,
		`{"owner":"/x","method":"pintest.feed.len"}`, `{}`, `{"owner":"/x"}`, `{"pin":"1"}`, `null`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cb reactor.Callback[int]
		if err := json.Unmarshal(data, &cb); err != nil {
			return
		}
		again, err := json.Marshal(cb)
		if err != nil {
			t.Fatal(err)
		}
		var cb2 reactor.Callback[int]
		if err := json.Unmarshal(again, &cb2); err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
		if cb2 != cb {
			t.Fatalf("round trip changed %+v into %+v", cb, cb2)
		}
	})
}

// FuzzSubscribersDecode: the same for a publisher's subscriber set and a
// Cancel.
func FuzzSubscribersDecode(f *testing.F) {
	for _, s := range []string{`{"next":"2","subs":{"1":{"owner":"/w/a","pin":"9"},"2":{"owner":"/l/b","method":"pintest.ledger.credit"}}}`,
		`{"next":"0"}`, `{"next":"1","subs":{"2":{"owner":"/w","pin":"1"}}}`, `{"next":"1","subs":{"1":{}}}`,
		`{"publisher":"/feed","method":"pintest.feed.cancel","id":"3"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s reactor.Subscribers[int]
		if err := json.Unmarshal(data, &s); err == nil {
			again, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var s2 reactor.Subscribers[int]
			if err := json.Unmarshal(again, &s2); err != nil {
				t.Fatalf("re-decode of %s: %v", again, err)
			}
			if third, _ := json.Marshal(s2); string(third) != string(again) {
				t.Fatalf("round trip changed %s into %s", again, third)
			}
		}
		var x reactor.Cancel
		if err := json.Unmarshal(data, &x); err == nil {
			again, _ := json.Marshal(x)
			var x2 reactor.Cancel
			if err := json.Unmarshal(again, &x2); err != nil || x2 != x {
				t.Fatalf("cancel round trip of %s: %+v, %v", again, x2, err)
			}
		}
	})
}
