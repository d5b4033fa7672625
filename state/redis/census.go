package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Census (Options.Census): a sorted set per parent address ("/rooms")
// under Options.Prefix + "census:" + the parent, whose members are the
// children's addresses and whose scores are their expiry in Unix
// milliseconds (+inf without a TTL). Every write of a child sets its
// score in the same script as the state, so the set follows the keys'
// TTLs exactly; members whose expiry has passed are dropped lazily by Live
// and Admit. Admit is the one place a new child is counted against a
// limit, atomically, whichever process asks.

// censusOf returns the census key of addr's parent; false without a
// census or for a top-level address.
func (s *Store) censusOf(addr string) (string, bool) {
	if !s.census {
		return "", false
	}
	i := strings.LastIndexByte(addr, '/')
	if i <= 0 {
		return "", false
	}
	return s.CensusKey(addr[:i]), true
}

// CensusKey returns the Redis key of the census of parent.
func (s *Store) CensusKey(parent string) string { return s.prefix + "census:" + parent }

// luaDropExpired drops the members of the census KEYS[1] whose expiry has
// passed, by the server's clock (now, in ms).
const luaDropExpired = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
`

// admitScript: KEYS[1] the census; ARGV[1] the address, ARGV[2] the limit,
// ARGV[3] the TTL in ms ("0": none). Drops expired members, then admits
// the address if it is counted already or the census has room. Returns 1
// (admitted) or 0 (full).
var admitScript = goredis.NewScript(luaDropExpired + `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local ttl = tonumber(ARGV[3])
local exp = '+inf'
if ttl > 0 then exp = now + ttl end
redis.call('ZADD', KEYS[1], exp, ARGV[1])
return 1
`)

// liveScript: KEYS[1] the census. Drops expired members; returns the count.
var liveScript = goredis.NewScript(luaDropExpired + `
return redis.call('ZCARD', KEYS[1])
`)

// Admit counts addr (a child address, "/rooms/42") among its parent's live
// children if fewer than limit are live, atomically across processes, and
// reports whether it did (true also if addr is counted already). Call it
// before the child's first write; Leave it if that write never happens.
// The store needs Options.Census.
func (s *Store) Admit(ctx context.Context, addr string, limit int) (bool, error) {
	census, ok := s.censusOf(addr)
	if !ok {
		return false, fmt.Errorf("redis: admit %s: %w", addr, errNoCensus)
	}
	n, err := admitScript.Run(ctx, s.c, []string{census}, addr, limit, s.ttlMS).Int()
	if err != nil {
		return false, fmt.Errorf("redis: admit %s: %w", addr, err)
	}
	return n == 1, nil
}

// Leave stops counting addr (a closed room, a create that failed).
func (s *Store) Leave(ctx context.Context, addr string) error {
	census, ok := s.censusOf(addr)
	if !ok {
		return fmt.Errorf("redis: leave %s: %w", addr, errNoCensus)
	}
	if err := s.c.ZRem(ctx, census, addr).Err(); err != nil {
		return fmt.Errorf("redis: leave %s: %w", addr, err)
	}
	return nil
}

// Live returns how many children of parent are live.
func (s *Store) Live(ctx context.Context, parent string) (int, error) {
	if !s.census {
		return 0, fmt.Errorf("redis: live children of %s: %w", parent, errNoCensus)
	}
	n, err := liveScript.Run(ctx, s.c, []string{s.CensusKey(parent)}).Int()
	if err != nil {
		return 0, fmt.Errorf("redis: live children of %s: %w", parent, err)
	}
	return n, nil
}

var errNoCensus = errors.New("no census (Options.Census) for this address")
