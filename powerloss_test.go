package reactor_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
	"strings"
)

// TestPowerLossCycles cuts the power (dropping every unsynced byte) 30
// times while six producers make durable calls that each send on to /total,
// and checks after every restart that each message the streams hold reached
// /total exactly once.
func TestPowerLossCycles(t *testing.T) {
	fsys := faultfs.New()
	ctx := context.Background()
	for cycle := range 30 {
		proc := newProcFS(fsys)
		app, err := openDurable(t, proc, "/d", reactor.Config{Logger: discardLogger, CheckpointInterval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{}
		sum := 0
		for p := range producers {
			s, _ := streamDump.Call(ctx, app.rt.Ref("/streams/"+strconv.Itoa(p)), struct{}{})
			for _, v := range s.Seen {
				want[fmt.Sprintf("%d.%d", p, v)] = 1
			}
			sum += len(s.Seen)
		}
		miss, _ := totalMiss.Call(ctx, app.rt.Ref("/total"), want)
		if len(miss) > 0 {
			id := strings.SplitN(strings.Trim(miss[0], `"`), "×", 2)[0]
			journal.Inspect(ctx, fsys, "/d/journal", func(r *journal.Record) error {
				if strings.Contains(string(r.Payload), id) || r.Service == "/streams/"+strings.SplitN(id, ".", 2)[0] && string(r.Payload) == strings.SplitN(id, ".", 2)[1] {
					t.Logf("seq %d %s %s key=%q %s", r.Seq, r.Service, r.Method, r.Key, r.Payload)
				}
				return nil
			})
			t.Fatalf("cycle %d: %d messages, missing at total: %v", cycle, sum, miss)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ref := app.rt.Ref("/streams/" + strconv.Itoa(p))
				s, _ := streamDump.Call(ctx, ref, struct{}{})
				for next := len(s.Seen) + 1; ; next++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := streamPut.Call(ctx, ref, next); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(10+cycle%7*5) * time.Millisecond)
		proc.kill()
		fsys.Crash()
		close(stop)
		wg.Wait()
		dead, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		app.rt.Close(dead) // the dead process's goroutines stop; its writes fail
		cancel()
		app.j.Close()
	}
}
