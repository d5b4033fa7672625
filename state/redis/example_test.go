package redis_test

import (
	"context"
	"log"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/state/redis"
)

type Room struct{ Members []string }

func (r *Room) Join(_ *reactor.Ctx, name string) (int, error) {
	r.Members = append(r.Members, name)
	return len(r.Members), nil
}

var join = reactor.Method("example.room.join", (*Room).Join)

// Rooms whose state lives in Redis under "poker-prod:/rooms/{id}", expiring
// a day after their last change. Any number of processes can run this.
func Example() {
	ctx := context.Background()
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	store := redis.New(client, redis.Options{Prefix: "poker-prod:", TTL: 24 * time.Hour})

	rt, err := reactor.New(reactor.Config{})
	if err != nil {
		log.Fatal(err)
	}
	reactor.RegisterChildren(rt, "/rooms", func(string) *Room { return &Room{} }, reactor.External(store))
	if err := rt.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer rt.Close(ctx)
	n, err := join.Call(ctx, rt.Ref("/rooms/42"), "ann") // 503-able: errors.Is(err, reactor.ErrBusy) under contention
	log.Println(n, err)
}
