package poker_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint"
	"github.com/reactorgo/reactor/poker"
)

func newStore() *checkpoint.MemStore { return checkpoint.NewMemStore() }

func Example() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{})
	rooms, _ := poker.Register(rt, poker.Options{})
	_ = rt.Start(ctx)
	defer rt.Close(ctx)
	defer rooms.Close()

	ann, _ := rooms.Create(ctx, poker.CreateRequest{Title: "Sprint 42", Leader: "ann", Deck: []string{"1", "2", "3", "5"}})
	bob, _ := rooms.Join(ctx, ann.Room, poker.JoinRequest{Name: "bob"})
	_, err := rooms.Join(ctx, ann.Room, poker.JoinRequest{Name: " BOB "})
	fmt.Println(errors.Is(err, poker.ErrNameTaken))

	_ = rooms.Start(ctx, ann.Room, ann.Token, poker.StartRequest{Story: "Login page"})
	_ = rooms.Vote(ctx, ann.Room, ann.Token, poker.VoteRequest{Value: "3"})
	_ = rooms.Vote(ctx, ann.Room, bob.Token, poker.VoteRequest{Value: "5"})
	_ = rooms.Finish(ctx, ann.Room, ann.Token)

	v, _ := rooms.State(ctx, ann.Room, bob.Token)
	fmt.Println(v.Session.Status, *v.Session.MyVote, *v.Session.Stats.Average, v.Session.Stats.Consensus)
	// Output:
	// true
	// finished 5 4 false
}
