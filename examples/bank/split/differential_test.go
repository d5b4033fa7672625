package split_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/examples/bank/split"
	"github.com/reactorgo/reactor/reactortest"
	"github.com/reactorgo/reactor/sqlreactor"
	"github.com/reactorgo/reactor/sqlreactor/sqlite"
)

// splitRun is one run of the transfers workload: both database files
// survive every restart of the run.
type splitRun struct {
	dir string
	sys *split.System
}

func transfer(name string, enter bool, xid, src, dst string, amount int64) reactortest.Step[*splitRun] {
	return reactortest.Step[*splitRun]{Name: name, Do: func(ctx context.Context, r *splitRun) (any, error) {
		from := r.sys.UsersRef
		if !enter {
			from = r.sys.TourneysRef
		}
		return split.Send.Call(ctx, from, split.Transfer{Xid: xid, Src: src, Dst: dst, Amount: amount})
	}}
}

// settle waits for the relays to deliver every transfer sent, then reads
// both databases: what is in flight at a disruption must arrive once.
func settle(ctx context.Context, r *splitRun) (any, error) {
	for {
		pu, err := split.Pending(ctx, r.sys.Users, 1)
		if err != nil {
			return nil, err
		}
		pt, err := split.Pending(ctx, r.sys.Tourneys, 1)
		if err != nil {
			return nil, err
		}
		if len(pu) == 0 && len(pt) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	u, err := split.Inspect(ctx, r.sys.Users)
	if err != nil {
		return nil, err
	}
	t, err := split.Inspect(ctx, r.sys.Tourneys)
	return []split.Audit{u, t}, err
}

// TestTransfersDifferential runs buy-ins and payouts between the two
// journaled DB reactors with a restart or a crash before each request (so
// also with transfers in flight in the outboxes), and requires the same
// answers and, once the relays have settled, the same databases.
func TestTransfersDifferential(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := &reactortest.Differential[*splitRun]{
		New: func(_ testing.TB, dir string) *splitRun { return &splitRun{dir: dir} },
		Open: func(t testing.TB, rt *reactor.Runtime, r *splitRun) {
			ctx := context.Background()
			open := func(name string) *sqlreactor.DB {
				db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(r.dir, name), Schema: split.Schema, Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				return db
			}
			sys, err := split.Register(rt, open("users.db"), open("tourneys.db"), quiet, reactor.Journaled())
			if err != nil {
				t.Fatal(err)
			}
			r.sys = sys
		},
		Started: func(_ context.Context, r *splitRun) error { r.sys.StartRelays(); return nil },
		Close: func(t testing.TB, r *splitRun) {
			r.sys.Close(context.Background())
			r.sys.Users.Close()
			r.sys.Tourneys.Close()
		},
		Steps: []reactortest.Step[*splitRun]{
			{Name: "fund u1", Do: func(ctx context.Context, r *splitRun) (any, error) {
				return split.Fund.Call(ctx, r.sys.UsersRef, split.Transfer{Dst: "u1", Amount: 1000})
			}},
			{Name: "fund t1", Do: func(ctx context.Context, r *splitRun) (any, error) {
				return split.Fund.Call(ctx, r.sys.TourneysRef, split.Transfer{Dst: "t1", Amount: 500})
			}},
			transfer("u1 enters t1", true, "x1", "u1", "t1", 100),
			transfer("u1 overdraws", true, "x2", "u1", "t1", 2000),
			transfer("t1 pays u2", false, "x3", "t1", "u2", 50),
			transfer("u1 enters again (resent)", true, "x1", "u1", "t1", 100),
			transfer("x1 reused", true, "x1", "u1", "t1", 101),
			{Name: "settle", Do: settle},
			transfer("u2 enters t1 with the payout", true, "x4", "u2", "t1", 50),
			transfer("t1 pays u1", false, "x5", "t1", "u1", 200),
			{Name: "settle again", Do: settle},
		},
		Final: settle,
		// Top-level services only: nothing to evict.
		Disruptions: []reactortest.Disruption{reactortest.Reload, reactortest.Crash, reactortest.ReloadCrash},
	}
	d.Run(t)
}
