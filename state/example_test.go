package state_test

import (
	"context"
	"fmt"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/state"
)

type Account struct{ Balance int }

func (a *Account) Deposit(_ *reactor.Ctx, n int) (int, error) { a.Balance += n; return a.Balance, nil }

var deposit = reactor.Method("example.account.deposit", (*Account).Deposit)

// Two runtimes — two nodes — serve the same accounts through one store:
// each batch is written back with a compare-and-swap, and a node whose
// cached state is stale runs its batch again on the newer state.
func Example() {
	ctx := context.Background()
	store := state.NewMemStore() // in production: redis.New(client, redis.Options{Prefix: "bank:"})
	var nodes []*reactor.Runtime
	for range 2 {
		rt, _ := reactor.New(reactor.Config{})
		reactor.RegisterChildren(rt, "/accounts", func(string) *Account { return &Account{} }, reactor.External(store))
		rt.Start(ctx)
		defer rt.Close(ctx)
		nodes = append(nodes, rt)
	}
	fmt.Println(deposit.Call(ctx, nodes[0].Ref("/accounts/ann"), 10))
	fmt.Println(deposit.Call(ctx, nodes[1].Ref("/accounts/ann"), 5))
	fmt.Println(deposit.Call(ctx, nodes[0].Ref("/accounts/ann"), 1)) // node 0's cache is stale: conflict, re-run
	for _, st := range nodes[0].Stats() {
		if st.Addr == "/accounts" {
			fmt.Println("node 0 conflicts:", st.Conflicts)
		}
	}
	// Output:
	// 10 <nil>
	// 15 <nil>
	// 16 <nil>
	// node 0 conflicts: 1
}
