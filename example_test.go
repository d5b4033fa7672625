package reactor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
)

// Account is a service's state: a plain struct. Its handlers never run
// concurrently, so it needs no locks.
type Account struct{ Balance int64 }

// Deposit is a handler: state, context, typed request, typed reply.
func (a *Account) Deposit(_ *reactor.Ctx, amount int64) (int64, error) {
	if amount <= 0 {
		return 0, fmt.Errorf("deposit %d: amount must be positive", amount)
	}
	a.Balance += amount
	return a.Balance, nil
}

// Methods are defined once, by a stable name (what the journal records).
var deposit = reactor.Method("example.account.deposit", (*Account).Deposit)

func Example() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{})
	defer rt.Close(ctx)
	// Every /accounts/{key} is a child created on its first message.
	reactor.RegisterChildren(rt, "/accounts", func(key string) *Account { return &Account{} })
	rt.Start(ctx)

	ann := rt.Ref("/accounts/ann")
	deposit.Call(ctx, ann, 100)
	balance, err := deposit.Call(ctx, ann, 50)
	fmt.Println(balance, err)
	_, err = deposit.Call(ctx, ann, -5)
	fmt.Println(err)
	// Output:
	// 150 <nil>
	// deposit -5: amount must be positive
}

// Teller pays into accounts with async calls: each continuation runs later
// on the Teller's own turn, with the Account's answer.
type Teller struct {
	accounts reactor.Ref
	Log      []string
}

func (t *Teller) Pay(c *reactor.Ctx, to string) (struct{}, error) {
	deposit.Async(c, t.accounts.Child(to), 10, func(c *reactor.Ctx, balance int64, err error) {
		t.Log = append(t.Log, fmt.Sprintf("%s now has %d", to, balance))
	})
	return struct{}{}, nil
}

func (t *Teller) Report(*reactor.Ctx, struct{}) ([]string, error) { return t.Log, nil }

var (
	pay    = reactor.Method("example.teller.pay", (*Teller).Pay)
	report = reactor.Method("example.teller.report", (*Teller).Report, reactor.ReadOnly())
)

func ExampleMethodOf_Async() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{})
	defer rt.Close(ctx)
	reactor.RegisterChildren(rt, "/accounts", func(string) *Account { return &Account{} })
	teller, _ := reactor.Register(rt, "/teller", &Teller{accounts: rt.Ref("/accounts")})
	rt.Start(ctx)

	pay.Call(ctx, teller, "bob")
	pay.Call(ctx, teller, "bob")
	for {
		if log, _ := report.Call(ctx, teller, struct{}{}); len(log) == 2 {
			fmt.Println(log)
			break
		}
	}
	// Output: [bob now has 10 bob now has 20]
}

// A journaled service: every accepted deposit is in the fsynced journal
// before Call returns, and a restart replays it.
func Example_journaled() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reactor-example")
	defer os.RemoveAll(dir)

	open := func() (*reactor.Runtime, *journal.Journal) {
		j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(dir, "journal")})
		if err != nil {
			panic(err)
		}
		store, _ := file.Open(file.Options{Dir: filepath.Join(dir, "checkpoints")})
		rt, _ := reactor.New(reactor.Config{Journal: j, Store: store})
		reactor.RegisterChildren(rt, "/accounts", func(string) *Account { return &Account{} }, reactor.Journaled())
		if err := rt.Start(ctx); err != nil {
			panic(err)
		}
		return rt, j
	}

	rt, j := open()
	deposit.Call(ctx, rt.Ref("/accounts/ann"), 70)
	j.Close() // a crash: no checkpoint was taken, only the journal has it

	rt, j = open()
	balance, _ := deposit.Call(ctx, rt.Ref("/accounts/ann"), 5)
	fmt.Println(balance)
	rt.Close(ctx)
	j.Close()
	// Output: 75
}

// Scoreboard publishes scores; Fan subscribes with a pinned callback.
type Scoreboard struct {
	Fans reactor.Subscribers[int]
}

// Fan keeps what it saw. Its callback runs on its own turn, so it touches
// Seen without locks.
type Fan struct {
	board  reactor.Ref
	Seen   []int
	cancel reactor.Cancel
}

var (
	scores = reactor.Topic("example.scores", func(s *Scoreboard) *reactor.Subscribers[int] { return &s.Fans })
	score  = reactor.Method("example.board.score", func(s *Scoreboard, c *reactor.Ctx, points int) (int, error) {
		return scores.Publish(c, points), nil // to every fan, on each fan's turn
	})
	follow = reactor.Method("example.fan.follow", func(f *Fan, c *reactor.Ctx, _ struct{}) (struct{}, error) {
		cb := reactor.Pin(c, func(c *reactor.Ctx, points int) { f.Seen = append(f.Seen, points) })
		r := reactor.Defer[struct{}](c)
		scores.Subscribe.Async(c, f.board, cb, func(_ *reactor.Ctx, cancel reactor.Cancel, err error) {
			f.cancel = cancel // pinned to the board: it runs on the board's turn
			r.Complete(struct{}{}, err)
		})
		return struct{}{}, nil
	})
	unfollow = reactor.Method("example.fan.unfollow", func(f *Fan, c *reactor.Ctx, _ struct{}) (struct{}, error) {
		return struct{}{}, f.cancel.Cancel(c)
	})
	seen = reactor.Method("example.fan.seen", func(f *Fan, _ *reactor.Ctx, _ struct{}) ([]int, error) {
		return slices.Clone(f.Seen), nil // a copy: never hand out the state's own slice
	}, reactor.ReadOnly())
)

func ExampleTopic() {
	ctx := context.Background()
	rt, _ := reactor.New(reactor.Config{})
	defer rt.Close(ctx)
	board, _ := reactor.Register(rt, "/board", &Scoreboard{})
	fans, _ := reactor.RegisterChildren(rt, "/fans", func(string) *Fan { return &Fan{board: board} })
	rt.Start(ctx)

	follow.Call(ctx, fans.Child("ann"), struct{}{})
	follow.Call(ctx, fans.Child("bob"), struct{}{})
	n, _ := score.Call(ctx, board, 3)
	fmt.Println("delivered to", n)
	// The cancel reaches the board's inbox before this Call returns, so
	// the next score is not delivered to bob.
	unfollow.Call(ctx, fans.Child("bob"), struct{}{})
	score.Call(ctx, board, 7)
	for { // deliveries are messages: wait until ann's ran
		if s, _ := seen.Call(ctx, fans.Child("ann"), struct{}{}); len(s) == 2 {
			break
		}
	}
	ann, _ := seen.Call(ctx, fans.Child("ann"), struct{}{})
	bob, _ := seen.Call(ctx, fans.Child("bob"), struct{}{})
	fmt.Println("ann saw", ann, "bob saw", bob)
	// Output:
	// delivered to 2
	// ann saw [3 7] bob saw [3]
}
