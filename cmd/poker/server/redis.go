package server

import (
	"context"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/poker"
	"github.com/reactorgo/reactor/state/redis"
)

// redisRooms is the Redis side of a server in Redis mode: the rooms' store
// and the reader of their event streams.
type redisRooms struct {
	client   *goredis.Client
	store    *redis.Store
	follower *redis.Follower
}

// eventHistory is what a room keeps for resuming clients (poker's default),
// in Redis too.
const eventHistory = 256

// ValidateCluster checks a -cluster name: 1-64 characters of letters,
// digits, '-', '_' and '.', so that keys stay readable and no name is a
// prefix of another's keys by a ':' inside it.
func ValidateCluster(name string) error {
	if name == "" || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return &configError{"Cluster", fmt.Sprintf("%q: want 1-64 letters, digits, '-', '_' or '.'", name)}
	}
	return nil
}

func openRedisRooms(ctx context.Context, cfg Config) (*redisRooms, error) {
	if cfg.Cluster == "" {
		cfg.Cluster = "poker"
	}
	if err := ValidateCluster(cfg.Cluster); err != nil {
		return nil, err
	}
	store, client, err := redis.Open(ctx, cfg.RedisURL, redis.Options{
		Prefix: cfg.Cluster + ":", TTL: cfg.RoomTTL + redisGrace, EventsMaxLen: eventHistory, Census: true,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return &redisRooms{client: client, store: store, follower: store.Follow(cfg.Logger)}, nil
}

func (r *redisRooms) shared() *poker.Shared {
	return &poker.Shared{Store: r.store, Events: r, Census: r.store}
}

// close stops reading streams and closes the connection (nil: nothing).
func (r *redisRooms) close() {
	if r == nil {
		return
	}
	r.follower.Close()
	r.client.Close()
}

// LastEvents implements poker.SharedEvents.
func (r *redisRooms) LastEvents(ctx context.Context, addr string, n int) ([]reactor.StateEvent, error) {
	return r.store.LastEvents(ctx, addr, n)
}

// Follow implements poker.SharedEvents.
func (r *redisRooms) Follow(addr string, after uint64, deliver func([]reactor.StateEvent, error)) {
	r.follower.Add(addr, after, deliver)
}

// Unfollow implements poker.SharedEvents.
func (r *redisRooms) Unfollow(addr string) { r.follower.Remove(addr) }
