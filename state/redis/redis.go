// Package redis keeps the state of External services in Redis: one hash
// per service instance, holding the encoded state ("d") and its version
// ("v"), under Options.Prefix + the service address.
//
// Every write is one Lua script (EVALSHA, falling back to EVAL when the
// server lost its script cache) that compares the version and sets state,
// version and TTL atomically: never MULTI/EXEC, which Redis does not roll
// back, and no second command for the TTL. A refused write returns the
// current value with the conflict, so the runtime re-runs the batch without
// another round trip. A read with a known version returns no data when the
// version is unchanged.
//
// Versions are the Redis server's clock in microseconds, raised to the
// previous version + 1 when that is larger: they only grow per key, also
// across an expiry, so a process holding a version from before the key
// expired cannot overwrite the new value (no ABA). That holds while the
// server's clock does not step back by more than the time between two
// writes of a key (a failover to a replica with a clock behind is such a
// step).
//
// Durability is Redis's: see docs/DEPLOYMENT.md. An acknowledged write is
// lost if the server dies before its append-only file reaches the disk
// (appendfsync everysec: up to about a second; no persistence: everything),
// and a failover to a replica can lose writes the old primary acknowledged
// (replication is asynchronous; WAIT narrows the window but does not close
// it).
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor"
)

// Options configures a Store. The zero value is valid.
type Options struct {
	// Prefix is put before every key, typically "<cluster name>:" so that
	// several deployments share one Redis (default "reactor:").
	Prefix string
	// TTL, if set, makes every key expire TTL after its last write (set in
	// the same script as the state). An expired instance starts fresh.
	TTL time.Duration
	// EventsMaxLen bounds each key's event stream (CompareAndSwapEvents):
	// about this many of the newest events are kept (XADD MAXLEN ~;
	// default 1000).
	EventsMaxLen int
	// Census keeps, for every parent address, a sorted set of its live
	// children with their expiry, updated by the same script as each
	// write: Live counts them and Admit bounds them across processes (a
	// room limit that holds whichever process creates the room).
	Census bool
}

// Store is a reactor.StateStore in Redis. It is safe for concurrent use.
type Store struct {
	c      goredis.UniversalClient
	prefix string
	ttlMS  int64
	maxLen int
	census bool
}

var _ reactor.StateStore = (*Store)(nil)

// New returns a store that uses c (a *goredis.Client, ClusterClient or
// Ring: each script touches one key). The caller closes c.
func New(c goredis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "reactor:"
	}
	if opts.EventsMaxLen <= 0 {
		opts.EventsMaxLen = 1000
	}
	return &Store{c: c, prefix: opts.Prefix, ttlMS: opts.TTL.Milliseconds(), maxLen: opts.EventsMaxLen, census: opts.Census}
}

// Open connects to the Redis at url ("redis://host:6379/0") and checks it
// answers. Close the returned client when done.
func Open(ctx context.Context, url string, opts Options) (*Store, *goredis.Client, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, nil, fmt.Errorf("redis: parse %q: %w", url, err)
	}
	c := goredis.NewClient(o)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("redis: connect to %s: %w", o.Addr, err)
	}
	return New(c, opts), c, nil
}

// Key returns the Redis key of a service address.
func (s *Store) Key(addr string) string { return s.prefix + addr }

// casScript: KEYS[1] the hash; ARGV[1] the expected version ("0": none),
// ARGV[2] the state, ARGV[3] the TTL in ms ("0": none); with a census,
// KEYS[2] the parent's census and ARGV[4] the address. Returns {1, new
// version} or, on a conflict, {0, current version, current state}.
var casScript = goredis.NewScript(luaCheckVersion + luaWriteState + `
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
` + luaCensusAdd("KEYS[2]", "ARGV[4]") + `
return {1, nv}
`)

// The pieces the write scripts share. luaCheckVersion returns the conflict
// answer unless the hash KEYS[1] holds version ARGV[1]; luaWriteState
// stores ARGV[2] under a new version nv, taken from the server's clock (t)
// and above the old one; luaCensusAdd counts the address (member) in the
// census key until the key's expiry (ttl, in ms; none: +inf).
const (
	luaCheckVersion = `
local cur = redis.call('HMGET', KEYS[1], 'v', 'd')
local v = tonumber(cur[1] or '0')
if v ~= tonumber(ARGV[1]) then
  if v == 0 then return {0, 0} end
  return {0, v, cur[2]}
end
`
	luaWriteState = `
local t = redis.call('TIME')
local nv = tonumber(t[1]) * 1000000 + tonumber(t[2])
if nv <= v then nv = v + 1 end
redis.call('HSET', KEYS[1], 'v', string.format('%d', nv), 'd', ARGV[2])
`
)

func luaCensusAdd(key, member string) string {
	return `
if ` + key + ` then
  local exp = '+inf'
  if ttl > 0 then exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl end
  redis.call('ZADD', ` + key + `, exp, ` + member + `)
end
`
}

// loadScript: KEYS[1] the hash; ARGV[1] the version the caller holds
// ("0": none). Returns {} for no value, {version} if unchanged, else
// {version, state}.
var loadScript = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'd')
if not cur[1] then return {} end
if cur[1] == ARGV[1] then return {tonumber(cur[1])} end
return {tonumber(cur[1]), cur[2]}
`)

// Load implements reactor.StateStore.
func (s *Store) Load(ctx context.Context, key string, known uint64) ([]byte, uint64, error) {
	res, err := loadScript.Run(ctx, s.c, []string{s.Key(key)}, strconv.FormatUint(known, 10)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redis: load %s: %w", key, err)
	}
	r, err := parseReply(res)
	if err != nil {
		return nil, 0, fmt.Errorf("redis: load %s: %w", key, err)
	}
	switch {
	case len(r.fields) == 0 && !r.hasData:
		return nil, 0, nil
	case len(r.fields) != 1 || r.fields[0] == 0:
		return nil, 0, fmt.Errorf("redis: load %s: %w", key, errReply)
	case !r.hasData:
		if r.fields[0] != known {
			return nil, 0, fmt.Errorf("redis: load %s: %w: version %d without data", key, errReply, r.fields[0])
		}
		return nil, known, nil
	}
	return r.data, r.fields[0], nil
}

// CompareAndSwap implements reactor.StateStore. A conflict is a
// *reactor.ConflictError carrying the current value.
func (s *Store) CompareAndSwap(ctx context.Context, key string, data []byte, version uint64) (uint64, error) {
	keys := []string{s.Key(key)}
	args := []any{strconv.FormatUint(version, 10), data, s.ttlMS}
	if census, ok := s.censusOf(key); ok {
		keys, args = append(keys, census), append(args, key)
	}
	res, err := casScript.Run(ctx, s.c, keys, args...).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: write %s: %w", key, err)
	}
	return s.casResult(key, res)
}

// casResult decodes the answer of a CAS script.
func (s *Store) casResult(key string, res any) (uint64, error) {
	r, err := parseReply(res)
	if err != nil || len(r.fields) < 2 {
		return 0, fmt.Errorf("redis: write %s: %w", key, errReply)
	}
	if r.fields[0] == 1 {
		if r.fields[1] == 0 {
			return 0, fmt.Errorf("redis: write %s: %w: version 0", key, errReply)
		}
		return r.fields[1], nil
	}
	ce := &reactor.ConflictError{Key: key, Version: r.fields[1]}
	if ce.Version != 0 {
		if !r.hasData {
			return 0, fmt.Errorf("redis: write %s: %w: conflict without data", key, errReply)
		}
		ce.Data = r.data
		if ce.Data == nil {
			ce.Data = []byte{}
		}
	}
	return 0, ce
}

var errReply = errors.New("unexpected script reply")

// reply is a script's answer: leading integers, then at most one string.
type reply struct {
	fields  []uint64
	data    []byte
	hasData bool
}

// parseReply decodes a script's answer: an array of non-negative integers
// optionally followed by one bulk string.
func parseReply(v any) (reply, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) > 3 {
		return reply{}, errReply
	}
	var r reply
	for i, x := range arr {
		switch x := x.(type) {
		case int64:
			if x < 0 || r.hasData {
				return reply{}, errReply
			}
			r.fields = append(r.fields, uint64(x))
		case string:
			if i != len(arr)-1 || i == 0 {
				return reply{}, errReply
			}
			r.data, r.hasData = []byte(x), true
		default:
			return reply{}, errReply
		}
	}
	return r, nil
}
