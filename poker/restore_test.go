package poker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/poker"
	"github.com/reactorgo/reactor/reactortest"
)

// TestVoteAfterRestore: a round started before a graceful restart, or
// before the room was evicted, takes votes afterwards. (Session.Votes came
// back nil from the checkpoint and every vote panicked with "assignment to
// entry in nil map" until the leader restarted the round.)
func TestVoteAfterRestore(t *testing.T) {
	for _, how := range []string{"restart", "evict", "old checkpoint"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			store := checkpoint.NewMemStore()
			open := func() (*reactor.Runtime, *poker.Rooms) {
				rt, err := reactor.New(reactor.Config{Store: store})
				if err != nil {
					t.Fatal(err)
				}
				rooms, err := poker.Register(rt, poker.Options{MaxResident: 1})
				if err != nil {
					t.Fatal(err)
				}
				if err := rt.Start(ctx); err != nil {
					t.Fatal(err)
				}
				return rt, rooms
			}
			rt, rooms := open()
			c, err := rooms.Create(ctx, poker.CreateRequest{Title: "t", Leader: "ann"})
			if err != nil {
				t.Fatal(err)
			}
			if err := rooms.Start(ctx, c.Room, c.Token, poker.StartRequest{Story: "s"}); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "restart", "old checkpoint":
				rooms.Close()
				if err := rt.Close(ctx); err != nil {
					t.Fatal(err)
				}
				if how == "old checkpoint" { // written before Votes was always saved
					key := poker.Address + "/" + c.Room
					cp, err := store.Load(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					old := strings.Replace(string(cp.Data), `,"votes":{}`, "", 1)
					if old == string(cp.Data) {
						t.Fatalf("no empty votes in %s", cp.Data)
					}
					cp.Data = []byte(old)
					if err := store.Save(ctx, key, cp); err != nil {
						t.Fatal(err)
					}
				}
				rt, rooms = open()
			case "evict":
				n := reactortest.Evicted(rt, poker.Address)
				// A second room pushes the first out. (A room id that was never
				// created no longer reaches the runtime.)
				if _, err := rooms.Create(ctx, poker.CreateRequest{Title: "u", Leader: "bob"}); err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if err := reactortest.WaitEvicted(wctx, rt, poker.Address, n+1); err != nil {
					t.Fatal(err)
				}
			}
			defer rt.Close(ctx)
			defer rooms.Close()
			if err := rooms.Vote(ctx, c.Room, c.Token, poker.VoteRequest{Value: "5"}); err != nil {
				t.Fatalf("vote after %s: %v", how, err)
			}
			if err := rooms.Finish(ctx, c.Room, c.Token); err != nil {
				t.Fatal(err)
			}
			v, err := rooms.State(ctx, c.Room, c.Token)
			if err != nil {
				t.Fatal(err)
			}
			if v.Session == nil || v.Session.Votes[c.Member] != "5" {
				b, _ := json.Marshal(v)
				t.Fatalf("vote lost after %s: %s", how, b)
			}
		})
	}
}

// pokerRun is one run of the room workload: what the clients keep.
type pokerRun struct {
	rt    *reactor.Runtime
	rooms *poker.Rooms
	room  string
	// per member name: token and id
	token, id map[string]string
	tokenOf   map[string]string // every token a member ever had
	order     []string          // member names, in join order
	other     [2]string         // two more rooms, touched to evict
}

// watch opens, for every member still holding a token, a fresh event
// stream (a snapshot, then what follows), as a client connecting now; the
// returned function reads what each stream received since and closes it.
func (r *pokerRun) watch(ctx context.Context) func() (map[string][]json.RawMessage, error) {
	type stream struct {
		name string
		sub  *poker.Subscription
	}
	var subs []stream
	out := map[string][]json.RawMessage{}
	add := func(name string, v any) {
		b, _ := json.Marshal(v)
		out[name] = append(out[name], b)
	}
	for _, name := range r.order {
		if tok := r.token[name]; tok != "" && r.room != "" {
			sub, err := r.rooms.Subscribe(ctx, r.room, tok, "", 0)
			if err != nil {
				add(name, "subscribe: "+err.Error())
				continue
			}
			add(name, map[string]any{"snapshot": sub.Snapshot.ID, "view": json.RawMessage(sub.Snapshot.Data)})
			subs = append(subs, stream{name, sub})
		}
	}
	return func() (map[string][]json.RawMessage, error) {
		for _, s := range subs {
			evs, err := s.sub.Sub.Next(nil)
			s.sub.Close()
			if err != nil {
				return nil, fmt.Errorf("%s's stream: %w", s.name, err)
			}
			for _, e := range evs {
				add(s.name, map[string]any{"id": e.ID, "type": e.Type, "to": e.To, "data": json.RawMessage(e.Data)})
			}
		}
		return out, nil
	}
}

type pokerOutcome struct {
	Reply  any                          `json:"reply,omitempty"`
	Err    string                       `json:"err,omitempty"`
	Events map[string][]json.RawMessage `json:"events,omitempty"`
}

// cmd makes a step of a command: the outcome is its reply and error, and
// what every member's stream shows: the snapshot before, the events after.
func cmd(name string, do func(ctx context.Context, r *pokerRun) (any, error)) reactortest.Step[*pokerRun] {
	return reactortest.Step[*pokerRun]{Name: name, Do: func(ctx context.Context, r *pokerRun) (any, error) {
		read := r.watch(ctx)
		reply, err := do(ctx, r)
		o := pokerOutcome{Reply: reply}
		if err != nil {
			o.Err = err.Error()
		}
		evs, eerr := read()
		o.Events = evs
		return o, eerr
	}}
}

func vote(who, value string) reactortest.Step[*pokerRun] {
	return cmd(who+" votes "+value, func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Vote(ctx, r.room, r.token[who], poker.VoteRequest{Value: value})
	})
}

func join(who string) reactortest.Step[*pokerRun] { return joinAs(who, "") }

func joinAs(who, role string) reactortest.Step[*pokerRun] {
	return cmd(who+" joins "+role, func(ctx context.Context, r *pokerRun) (any, error) {
		c, err := r.rooms.Join(ctx, r.room, poker.JoinRequest{Name: who, Role: role})
		if err == nil {
			r.token[who], r.id[who], r.tokenOf[who] = c.Token, c.Member, c.Token
			r.order = append(r.order, who)
		}
		return nil, err
	})
}

func start(who, story string) reactortest.Step[*pokerRun] {
	return cmd(who+" starts "+story, func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Start(ctx, r.room, r.token[who], poker.StartRequest{Story: story})
	})
}

func finish(who string) reactortest.Step[*pokerRun] {
	return cmd(who+" finishes", func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Finish(ctx, r.room, r.token[who])
	})
}

func remove(who, whom string) reactortest.Step[*pokerRun] {
	return cmd(who+" removes "+whom, func(ctx context.Context, r *pokerRun) (any, error) {
		err := r.rooms.Remove(ctx, r.room, r.token[who], r.id[whom])
		if err == nil {
			r.token[whom] = ""
		}
		return nil, err
	})
}

func revote(who string) reactortest.Step[*pokerRun] {
	return cmd(who+" calls a re-vote", func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Revote(ctx, r.room, r.token[who])
	})
}

func next(who string) reactortest.Step[*pokerRun] {
	return cmd(who+" moves to the next story", func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Next(ctx, r.room, r.token[who])
	})
}

func queue(who string, replace bool, stories ...string) reactortest.Step[*pokerRun] {
	return cmd(fmt.Sprintf("%s queues %q (replace %t)", who, stories, replace), func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Queue(ctx, r.room, r.token[who], poker.QueueRequest{Stories: stories}, replace)
	})
}

func estimate(who, value string) reactortest.Step[*pokerRun] {
	return cmd(who+" records "+value, func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Estimate(ctx, r.room, r.token[who], poker.EstimateRequest{Value: value})
	})
}

func handOver(who, whom string) reactortest.Step[*pokerRun] {
	return cmd(who+" hands the lead to "+whom, func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.HandOver(ctx, r.room, r.token[who], poker.LeaderRequest{Member: r.id[whom]})
	})
}

func setRole(who, whom, role string) reactortest.Step[*pokerRun] {
	return cmd(who+" makes "+whom+" "+role, func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.SetRole(ctx, r.room, r.token[who], r.id[whom], poker.RoleRequest{Role: role})
	})
}

func settings(who string, autoReveal bool) reactortest.Step[*pokerRun] {
	return cmd(fmt.Sprintf("%s sets auto-reveal %t", who, autoReveal), func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Settings(ctx, r.room, r.token[who], poker.SettingsRequest{AutoReveal: &autoReveal})
	})
}

func timer(who string, seconds int) reactortest.Step[*pokerRun] {
	return cmd(fmt.Sprintf("%s sets a %ds countdown", who, seconds), func(ctx context.Context, r *pokerRun) (any, error) {
		return nil, r.rooms.Timer(ctx, r.room, r.token[who], poker.TimerRequest{Seconds: seconds})
	})
}

func history(who string) reactortest.Step[*pokerRun] {
	return cmd(who+" reads the history", func(ctx context.Context, r *pokerRun) (any, error) {
		return r.rooms.History(ctx, r.room, r.token[who])
	})
}

func view(who string) reactortest.Step[*pokerRun] {
	return cmd(who+" looks", func(ctx context.Context, r *pokerRun) (any, error) {
		return r.rooms.State(ctx, r.room, r.token[who])
	})
}

// TestRoomDifferential feeds one room the same commands with a restart,
// an eviction or a crash inserted before each of them, and requires the
// same answers, events and final state as the undisturbed run.
func TestRoomDifferential(t *testing.T) {
	d := &reactortest.Differential[*pokerRun]{
		New: func(testing.TB, string) *pokerRun {
			return &pokerRun{token: map[string]string{}, id: map[string]string{}, tokenOf: map[string]string{}}
		},
		Open: func(t testing.TB, rt *reactor.Runtime, r *pokerRun) {
			rooms, err := poker.Register(rt, poker.Options{MaxResident: 1, Extra: []reactor.Option{reactor.Journaled()}})
			if err != nil {
				t.Fatal(err)
			}
			r.rt, r.rooms = rt, rooms
		},
		Close: func(_ testing.TB, r *pokerRun) { r.rooms.Close() },
		Evict: func(ctx context.Context, r *pokerRun) error {
			resident := 0
			for _, st := range r.rt.Stats() {
				if st.Addr == poker.Address {
					resident = st.Resident
				}
			}
			if resident == 0 {
				return nil
			}
			n := reactortest.Evicted(r.rt, poker.Address)
			// MaxResident 1: touching the two other rooms in turn pushes
			// out whichever room was resident. (A room id that was never
			// created no longer reaches the runtime.)
			r.rooms.State(ctx, r.other[0], "")
			r.rooms.State(ctx, r.other[1], "")
			return reactortest.WaitEvicted(ctx, r.rt, poker.Address, n+1)
		},
		Steps: []reactortest.Step[*pokerRun]{
			cmd("two other rooms", func(ctx context.Context, r *pokerRun) (any, error) {
				for i, name := range []string{"yan", "zed"} {
					c, err := r.rooms.Create(ctx, poker.CreateRequest{Title: "Other", Leader: name})
					if err != nil {
						return nil, err
					}
					r.other[i], r.id[name], r.tokenOf[name] = c.Room, c.Member, c.Token
				}
				return nil, nil
			}),
			cmd("ann creates", func(ctx context.Context, r *pokerRun) (any, error) {
				c, err := r.rooms.Create(ctx, poker.CreateRequest{Title: "Sprint", Leader: "ann", Capacity: 3})
				if err == nil {
					r.room, r.token["ann"], r.id["ann"], r.tokenOf["ann"] = c.Room, c.Token, c.Member, c.Token
					r.order = append(r.order, "ann")
				}
				return nil, err
			}),
			join("bob"),
			vote("bob", "5"), // no round yet: rejected
			start("ann", "login"),
			vote("bob", "5"),
			join("cid"),
			join("dan"), // full
			vote("cid", "8"),
			vote("bob", "3"),    // changes the vote
			vote("cid", "nope"), // not a card: rejected
			start("bob", "x"),   // not the leader
			view("bob"),
			finish("ann"),
			vote("bob", "1"), // round over: rejected
			view("cid"),
			start("ann", "logout"),
			finish("ann"), // no votes
			start("ann", "signup"),
			vote("ann", "13"),
			vote("cid", "?"),
			remove("ann", "ann"), // the leader leaves: bob leads
			remove("cid", "bob"), // not the leader
			vote("bob", "2"),
			finish("bob"),
			remove("bob", "cid"),
			view("bob"),
			// Roles, the queue, re-votes, estimates, hand-off, history.
			joinAs("eve", "observer"),
			joinAs("fay", "voter"),
			estimate("bob", "3"), // the last finished round: signup
			estimate("fay", "5"), // not the leader
			queue("bob", false, "search", "export"),
			queue("bob", false, "import"),
			queue("fay", false, "x"), // not the leader
			next("bob"),              // search
			vote("eve", "5"),         // an observer: forbidden
			vote("fay", "8"),
			vote("bob", "2"),
			setRole("fay", "fay", "observer"), // withdraws fay's vote
			setRole("eve", "fay", "voter"),    // not the leader
			setRole("bob", "fay", "voter"),
			vote("fay", "3"),
			finish("bob"),
			revote("bob"),
			vote("fay", "3"),
			vote("bob", "3"),
			finish("bob"),
			estimate("bob", "3"),
			estimate("bob", "5"), // changes it
			queue("bob", true, "import", "export"),
			handOver("bob", "fay"),
			handOver("bob", "eve"), // no longer the leader
			next("fay"),            // import
			queue("fay", true),     // clears the queue
			next("fay"),            // empty
			revote("fay"),
			history("eve"),
			// Auto-reveal and the countdown (started and stopped: a
			// countdown that ends is timed, see TestCountdown).
			settings("eve", true), // not the leader
			settings("fay", true),
			vote("fay", "5"),
			timer("fay", 600),
			timer("eve", 0), // not the leader
			view("fay"),
			timer("fay", 0),
			vote("bob", "8"), // every voter voted: revealed by itself
			timer("fay", 60), // nothing open: rejected
			settings("fay", false),
			view("eve"),
		},
		Final: func(ctx context.Context, r *pokerRun) (any, error) {
			v, err := r.rooms.State(ctx, r.room, "")
			if err != nil {
				return nil, err
			}
			h, err := r.rooms.History(ctx, r.room, r.tokenOf["fay"])
			return map[string]any{"view": v, "history": h}, err
		},
		Normalize: func(r *pokerRun, s string) string {
			names := map[string]string{r.room: "ROOM", r.other[0]: "OTHER0", r.other[1]: "OTHER1"}
			for name, id := range r.id {
				names[id] = "ID-" + name
			}
			for name, tok := range r.tokenOf {
				names[base64.StdEncoding.EncodeToString(poker.HashToken(tok))] = "HASH-" + name
			}
			return reactortest.Replacer(names)(s)
		},
	}
	d.Run(t)
}
