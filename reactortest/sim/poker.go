package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/internal/failpoint"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/poker"
)

// The poker workload: planning-poker rooms (journaled, one resident at a
// time, so they are evicted and reloaded) driven through poker.Rooms
// under the same faults as the bank. Its oracle, checked after every
// recovery and at every reveal: every acknowledged join is a member exactly
// once, a join of unknown outcome is there at most once, every
// acknowledged vote is the member's vote (or the vote of unknown outcome
// that followed it), and a reveal shows exactly the votes the model holds.

type pmember struct {
	name, token, id string
}

type proom struct {
	id, leader string // leader's token
	members    []pmember
	ghosts     map[string]bool // joins of unknown outcome: name → seen in the room
	votes      map[string]string
	maybe      map[string]string // vote of unknown outcome per member name
	voting     bool
}

// RunPoker runs the poker workload for cfg.Seed (Steps operations).
func RunPoker(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	s := newSim(cfg)
	s.installHook()
	var rooms *poker.Rooms
	s.register = func(rt *reactor.Runtime) error {
		var err error
		rooms, err = poker.Register(rt, poker.Options{MaxResident: 1, Logger: s.log, Extra: []reactor.Option{reactor.Journaled()}})
		return err
	}
	ps := &pokerSim{sim: s, rooms: func() *poker.Rooms { return rooms }}
	err := ps.run(ctx)
	s.release()
	if s.p != nil {
		rooms.Close()
		s.p.stop(ctx, true)
	}
	s.res.SimTime = s.clock.Now().Sub(epoch)
	if err != nil {
		return s.res, fmt.Errorf("sim: poker seed %d: %w\nrerun exactly this run: %s", cfg.Seed, err, Rerun(cfg))
	}
	return s.res, nil
}

type pokerSim struct {
	*sim
	rooms func() *poker.Rooms
	rs    []*proom
	names int
}

func (ps *pokerSim) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 5*time.Second)
}

func (ps *pokerSim) run(ctx context.Context) error {
	if err := ps.open(ctx); err != nil {
		return err
	}
	for len(ps.rs) < 2 {
		cctx, cancel := ps.call(ctx)
		c, err := ps.rooms().Create(cctx, poker.CreateRequest{Title: "r", Leader: "lead"})
		cancel()
		if err != nil {
			return fmt.Errorf("create: %w", err) // no fault is armed yet
		}
		r := &proom{id: c.Room, leader: c.Token, ghosts: map[string]bool{}, votes: map[string]string{}, maybe: map[string]string{}}
		r.members = append(r.members, pmember{name: "lead", token: c.Token, id: c.Member})
		ps.rs = append(ps.rs, r)
	}
	for step := 0; step < ps.cfg.Steps; step++ {
		r := ps.rs[ps.rng.IntN(len(ps.rs))]
		switch k := ps.rng.IntN(10); {
		case k < 2 && len(r.members)+len(r.ghosts) < 8:
			ps.names++
			name := "m" + strconv.Itoa(ps.names)
			cctx, cancel := ps.call(ctx)
			c, err := ps.rooms().Join(cctx, r.id, poker.JoinRequest{Name: name})
			cancel()
			if err == nil {
				r.members = append(r.members, pmember{name: name, token: c.Token, id: c.Member})
			} else {
				r.ghosts[name] = false
			}
		case k < 3 || !r.voting:
			if err := ps.round(ctx, r); err != nil {
				return err
			}
		default:
			// Up to three members vote at once (votes of different members
			// commute), while faults strike.
			var wg sync.WaitGroup
			var mu sync.Mutex
			n := 1 + ps.rng.IntN(3)
			seen := map[int]bool{}
			for range n {
				i := ps.rng.IntN(len(r.members))
				if seen[i] {
					continue
				}
				seen[i] = true
				m, v := r.members[i], poker.DefaultDeck[ps.rng.IntN(len(poker.DefaultDeck))]
				wg.Add(1)
				go func() {
					defer wg.Done()
					cctx, cancel := ps.call(ctx)
					err := ps.rooms().Vote(cctx, r.id, m.token, poker.VoteRequest{Value: v})
					cancel()
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						r.votes[m.name] = v
						delete(r.maybe, m.name)
					} else {
						r.maybe[m.name] = v
					}
				}()
			}
			if ps.rng.IntN(3) == 0 {
				// Strike while the votes are in flight.
				ps.reach("poker: crash with votes in flight")
				ps.p.view.Kill()
				if ps.rng.IntN(2) == 0 {
					ps.disk.CrashTorn(ps.rng)
				}
				wg.Wait()
				if err := ps.restart(ctx); err != nil {
					return err
				}
				continue
			}
			wg.Wait()
		}
		ps.clock.Advance(time.Duration(ps.rng.IntN(60)) * time.Second) // past the rooms' 15 min idle timeout now and then
		if ps.faulted() {
			if err := ps.restart(ctx); err != nil {
				return err
			}
			continue
		}
		switch f := ps.rng.IntN(100); {
		case f < 4:
			ps.p.view.Kill()
			if err := ps.restart(ctx); err != nil {
				return err
			}
		case f < 7:
			ps.p.view.Kill()
			ps.disk.CrashTorn(ps.rng)
			if err := ps.restart(ctx); err != nil {
				return err
			}
		case f < 9:
			ps.eioWrite.Store(true)
		case f < 11:
			ps.arm(failpoint.JournalSynced)
		case f < 13:
			ps.arm(failpoint.CheckpointWrite)
			ps.p.rt.Checkpoint()
		}
	}
	if err := ps.check(ctx); err != nil {
		return ps.restartIfFaulted(ctx, err)
	}
	return nil
}

// round reveals the current round (checking the revealed votes against
// the model) and starts the next.
func (ps *pokerSim) round(ctx context.Context, r *proom) error {
	if r.voting {
		cctx, cancel := ps.call(ctx)
		err := ps.rooms().Finish(cctx, r.id, r.leader)
		cancel()
		if err != nil {
			return ps.restartIfFaulted(ctx, fmt.Errorf("finish: %w", err))
		}
		cctx, cancel = ps.call(ctx)
		v, err := ps.rooms().State(cctx, r.id, r.leader)
		cancel()
		if err != nil {
			return ps.restartIfFaulted(ctx, fmt.Errorf("state after finish: %w", err))
		}
		if v.Session == nil {
			return fmt.Errorf("room %s: finished, no session", r.id)
		}
		if err := ps.revealed(r, v.Session.Votes); err != nil {
			return err
		}
		r.voting = false
	}
	cctx, cancel := ps.call(ctx)
	err := ps.rooms().Start(cctx, r.id, r.leader, poker.StartRequest{Story: "s"})
	cancel()
	if err != nil {
		return ps.restartIfFaulted(ctx, fmt.Errorf("start: %w", err))
	}
	r.voting = true
	clear(r.votes)
	clear(r.maybe)
	return nil
}

// revealed compares a reveal with the model: by member id.
func (ps *pokerSim) revealed(r *proom, got map[string]string) error {
	want := map[string]bool{}
	for _, m := range r.members {
		v, acked := r.votes[m.name]
		mv, maybe := r.maybe[m.name]
		g, ok := got[m.id]
		want[m.id] = true
		switch {
		case ok && maybe && g == mv:
			r.votes[m.name] = g
			ps.reach("poker: unknown vote applied")
		case ok && acked && g == v:
		case !ok && !acked:
		default:
			return fmt.Errorf("room %s member %s: revealed vote %q (present %v), model %q (acked %v), unknown %q", r.id, m.name, g, ok, v, acked, mv)
		}
	}
	for id := range got {
		if !want[id] && len(r.ghosts) == 0 {
			return fmt.Errorf("room %s: a vote by %s, who is no member the model knows", r.id, id)
		}
	}
	return nil
}

func (ps *pokerSim) restartIfFaulted(ctx context.Context, err error) error {
	if ps.faulted() || errors.Is(err, journal.ErrFailed) {
		return ps.restart(ctx)
	}
	return err
}

func (ps *pokerSim) restart(ctx context.Context) error {
	ps.reach("crash")
	ps.p.view.Kill()
	if ps.dying.Load() {
		ps.disk.CrashTorn(ps.rng)
	}
	ps.reachN("evicted", int(ps.p.evicted()))
	ps.rooms().Close()
	ps.p.stop(ctx, false)
	ps.p = nil
	ps.disarm()
	ps.dying.Store(false)
	ps.journalFailed.Store(false)
	ps.eioWrite.Store(false)
	if ps.rng.IntN(4) == 0 {
		ps.arm(failpoint.Replay)
	}
	err := ps.open(ctx)
	if ps.dying.Load() && errors.Is(err, errFailpoint) {
		ps.dying.Store(false)
		ps.disk.CrashTorn(ps.rng)
		err = ps.open(ctx)
	}
	ps.disarm()
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	if err := ps.check(ctx); err != nil {
		return ps.restartIfFaulted(ctx, err)
	}
	// A round start of unknown outcome: start again.
	for _, r := range ps.rs {
		if !r.voting {
			if err := ps.round(ctx, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// check compares every room's members and every member's own vote with the
// model; unknown outcomes are resolved by what is seen.
func (ps *pokerSim) check(ctx context.Context) error {
	for _, r := range ps.rs {
		cctx, cancel := ps.call(ctx)
		v, err := ps.rooms().State(cctx, r.id, r.leader)
		cancel()
		if err != nil {
			return fmt.Errorf("room %s: state: %w", r.id, err)
		}
		count := map[string]int{}
		for _, m := range v.Members {
			count[m.Name]++
		}
		for _, m := range r.members {
			if count[m.name] != 1 {
				return fmt.Errorf("room %s: acknowledged member %s is there %d times", r.id, m.name, count[m.name])
			}
		}
		for name, seen := range r.ghosts {
			switch c := count[name]; {
			case c > 1:
				return fmt.Errorf("room %s: member %s (join of unknown outcome) is there %d times", r.id, name, c)
			case c == 1 && !seen:
				r.ghosts[name] = true
				ps.reach("poker: unknown join present after recovery")
			case c == 0 && seen:
				return fmt.Errorf("room %s: member %s was seen, then vanished", r.id, name)
			}
		}
		if len(v.Members) != len(r.members)+countTrue(r.ghosts) {
			return fmt.Errorf("room %s: %d members, the model knows %d (+%d unknown)", r.id, len(v.Members), len(r.members), len(r.ghosts))
		}
		if v.Session == nil || v.Session.Status != poker.StatusVoting {
			r.voting = false // its start was unknown and not applied
			continue
		}
		r.voting = true
		for _, m := range r.members {
			cctx, cancel := ps.call(ctx)
			mv, err := ps.rooms().State(cctx, r.id, m.token)
			cancel()
			if err != nil {
				return fmt.Errorf("room %s: state as %s: %w", r.id, m.name, err)
			}
			var got *string
			if mv.Session != nil {
				got = mv.Session.MyVote
			}
			want, acked := r.votes[m.name]
			maybe, unknown := r.maybe[m.name]
			switch {
			case got != nil && unknown && *got == maybe:
				r.votes[m.name] = maybe
				ps.reach("poker: unknown vote applied")
			case got != nil && acked && *got == want:
			case got == nil && !acked:
			default:
				g := "none"
				if got != nil {
					g = *got
				}
				return fmt.Errorf("room %s member %s: vote %s, model %q (acked %v), unknown %q", r.id, m.name, g, want, acked, maybe)
			}
			delete(r.maybe, m.name)
		}
	}
	return nil
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
