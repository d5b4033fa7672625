package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// flaky fails a third of its attempts; it records every run.
var flakyRuns sync.Map // id → *atomic.Int32

var flaky = jobs.Define("test.flaky", func(_ context.Context, j *jobs.Job[Note]) error {
	v, _ := flakyRuns.LoadOrStore(j.ID, new(atomic.Int32))
	v.(*atomic.Int32).Add(1)
	if rand.IntN(3) == 0 {
		return errors.New("flaky")
	}
	return nil
}, jobs.Queue("crash"), jobs.MaxAttempts(4), jobs.Backoff(time.Millisecond, 5*time.Millisecond))

// Shop is a journaled service whose handler enqueues a job in its turn.
type Shop struct {
	Orders map[string]string // order → job id
	qs     *jobs.Queues
}

func (s *Shop) Order(c *reactor.Ctx, name string) (string, error) {
	id, err := flaky.Enqueue(c, s.qs, Note{name}, jobs.Queue("tx"))
	if err != nil {
		return "", err
	}
	if s.Orders == nil {
		s.Orders = map[string]string{}
	}
	s.Orders[name] = id
	return id, nil
}

func (s *Shop) Dump(*reactor.Ctx, struct{}) (map[string]string, error) {
	return maps.Clone(s.Orders), nil
}

var (
	shopOrder = reactor.Method("test.shop.order", (*Shop).Order)
	shopDump  = reactor.Method("test.shop.dump", (*Shop).Dump, reactor.ReadOnly())
)

func crashApp(t *testing.T, fsys *faultfs.Process, workers int) *app {
	qc := jobs.QueueConfig{Workers: workers, LeaseTime: 150 * time.Millisecond, PollInterval: 5 * time.Millisecond, TickInterval: 20 * time.Millisecond}
	return openApp(t, appOpts{fsys: fsys, queues: map[string]jobs.QueueConfig{"crash": qc, "tx": qc},
		register: func(rt *reactor.Runtime, qs *jobs.Queues) error {
			_, err := reactor.Register(rt, "/shop", &Shop{qs: qs}, reactor.Journaled())
			return err
		}})
}

// TestCrashWithJobsInFlight crashes the process (a killed file-system view,
// then a power loss that drops everything not fsynced) several times while
// producers enqueue from outside and from a handler and workers run, fail
// and retry jobs. Afterwards: every acknowledged enqueue exists and ends
// completed or dead-lettered; every job a durable Shop order made exists
// exactly once, and no other job does in that queue (the job exists iff the
// input is durable); every completed job ran at least once.
func TestCrashWithJobsInFlight(t *testing.T) {
	fsys := faultfs.New()
	var mu sync.Mutex
	acked := map[string]bool{} // external job ids
	ordered := 0
	for cycle := range 6 {
		proc := faultfs.NewProcess(fsys)
		a := crashApp(t, proc, 3)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for p := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if p == 0 {
						mu.Lock()
						ordered++
						name := fmt.Sprintf("o%d", ordered)
						mu.Unlock()
						if _, err := shopOrder.Call(ctx, a.rt.Ref("/shop"), name); err != nil {
							return
						}
						continue
					}
					id, err := flaky.Enqueue(ctx, a.qs, Note{fmt.Sprintf("c%d.p%d.%d", cycle, p, i)})
					if err != nil {
						return
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(30+rand.IntN(60)) * time.Millisecond)
		proc.Kill()
		fsys.Crash()
		close(stop)
		wg.Wait()
		a.close(t, true)
	}
	// Recover and let everything finish.
	a := crashApp(t, faultfs.NewProcess(fsys), 8)
	defer a.close(t, false)
	ctx := context.Background()
	if len(acked) == 0 {
		t.Fatal("no enqueue was acknowledged")
	}
	final := func(queue, id string) jobs.Info {
		var info jobs.Info
		defer func() {
			if t.Failed() {
				st, _ := a.qs.Stats(ctx)
				t.Logf("last seen: %+v\nstats: %+v", info, st)
			}
		}()
		waitFor(t, queue+" job "+id+" final", func() bool {
			var err error
			info, err = a.qs.Get(ctx, queue, id)
			if err != nil {
				t.Fatalf("acknowledged job %s lost: %v", id, err)
			}
			return info.State == jobs.Completed || info.State == jobs.Dead
		})
		if info.State == jobs.Completed {
			v, ok := flakyRuns.Load(info.ID)
			if !ok || v.(*atomic.Int32).Load() < 1 {
				t.Fatalf("%s completed without running", id)
			}
		}
		return info
	}
	counts := map[jobs.State]int{}
	for id := range acked {
		counts[final("crash", id).State]++
	}
	orders, err := shopDump.Call(ctx, a.rt.Ref("/shop"), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for name, id := range orders {
		if ids[id] {
			t.Fatalf("two orders share job %s", id)
		}
		ids[id] = true
		info := final("tx", id)
		if want := fmt.Sprintf(`{"Text":%q}`, name); string(info.Args) != want {
			t.Fatalf("order %s: job %s has args %s", name, id, info.Args)
		}
	}
	waitFor(t, "tx queue drained", func() bool {
		st, _ := a.qs.Stats(ctx)
		return st[1].Pending == 0 && st[1].Running == 0
	})
	st, _ := a.qs.Stats(ctx)
	if tx := st[1]; tx.Queue != "tx" || int(tx.Completed)+tx.Dead != len(orders) {
		t.Fatalf("tx queue: %+v, but %d durable orders", tx, len(orders))
	}
	t.Logf("%d acknowledged external jobs (%v), %d durable orders of %d attempted", len(acked), counts, len(orders), ordered)
}
