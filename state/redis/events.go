package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reactorgo/reactor"
)

// Events: beside its hash, a key may have a Redis Stream of events under
// Options.Prefix + "events:" + the address, appended by the same script
// that writes the state (CompareAndSwapEvents), so the stream holds exactly
// the events of the committed batches, in commit order. An event's ID is
// its stream entry ID "0-<ID>": readers resume after an ID with XRANGE or
// XREAD, on any process. The stream gets the state's TTL and is trimmed to
// about Options.EventsMaxLen entries.

var _ reactor.EventStore = (*Store)(nil)

// EventsKey returns the Redis key of the event stream of a service address.
func (s *Store) EventsKey(addr string) string { return s.prefix + "events:" + addr }

// casEventsScript is casScript that also appends events: KEYS[2] the
// stream; ARGV[4] the stream's MAXLEN; then pairs of (event id, payload);
// with a census, KEYS[3] the parent's census and the address last.
// The ids are checked against the stream's last entry before anything is
// written: a script that fails half-way is not rolled back.
var casEventsScript = goredis.NewScript(luaCheckVersion + `
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last > 0 then
  local seq = tonumber(string.match(last[1][1], '^0%-(%d+)$') or '-1')
  if seq < 0 or seq >= tonumber(ARGV[5]) then
    return redis.error_reply('event id ' .. ARGV[5] .. ' not after the last entry of the stream: ' .. last[1][1])
  end
end
` + luaWriteState + `
local pairsEnd = #ARGV
if KEYS[3] then pairsEnd = pairsEnd - 1 end
for i = 5, pairsEnd, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '0-' .. ARGV[i], 'e', ARGV[i+1])
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
` + luaCensusAdd("KEYS[3]", "ARGV[#ARGV]") + `
return {1, nv}
`)

// CompareAndSwapEvents implements reactor.EventStore: the state, its
// version, TTL and the events are written by one script, or nothing is.
func (s *Store) CompareAndSwapEvents(ctx context.Context, key string, data []byte, version uint64, events []reactor.StateEvent) (uint64, error) {
	if len(events) == 0 {
		return s.CompareAndSwap(ctx, key, data, version)
	}
	args := make([]any, 0, 4+2*len(events))
	args = append(args, strconv.FormatUint(version, 10), data, s.ttlMS, s.maxLen)
	for i, e := range events {
		if e.ID == 0 || (i > 0 && e.ID <= events[i-1].ID) {
			return 0, fmt.Errorf("redis: write %s: event ids must grow from 1: %d after %d", key, e.ID, prevID(events, i))
		}
		args = append(args, strconv.FormatUint(e.ID, 10), e.Data)
	}
	keys := []string{s.Key(key), s.EventsKey(key)}
	if census, ok := s.censusOf(key); ok {
		keys, args = append(keys, census), append(args, key) // the address last: after the event pairs
	}
	res, err := casEventsScript.Run(ctx, s.c, keys, args...).Result()
	if err != nil {
		return 0, fmt.Errorf("redis: write %s: %w", key, err)
	}
	return s.casResult(key, res)
}

func prevID(events []reactor.StateEvent, i int) uint64 {
	if i == 0 {
		return 0
	}
	return events[i-1].ID
}

// Events returns up to n events of addr's stream after id, oldest first
// (n <= 0: all retained).
func (s *Store) Events(ctx context.Context, addr string, after uint64, n int) ([]reactor.StateEvent, error) {
	var msgs []goredis.XMessage
	var err error
	start := "(0-" + strconv.FormatUint(after, 10)
	if n > 0 {
		msgs, err = s.c.XRangeN(ctx, s.EventsKey(addr), start, "+", int64(n)).Result()
	} else {
		msgs, err = s.c.XRange(ctx, s.EventsKey(addr), start, "+").Result()
	}
	if err != nil {
		return nil, fmt.Errorf("redis: read events of %s: %w", addr, err)
	}
	return decodeMessages(addr, msgs)
}

// LastEvents returns the newest n events of addr's stream, oldest first.
func (s *Store) LastEvents(ctx context.Context, addr string, n int) ([]reactor.StateEvent, error) {
	msgs, err := s.c.XRevRangeN(ctx, s.EventsKey(addr), "+", "-", int64(max(n, 1))).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: read events of %s: %w", addr, err)
	}
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return decodeMessages(addr, msgs)
}

var errEntry = errors.New("not an event entry")

func decodeMessages(addr string, msgs []goredis.XMessage) ([]reactor.StateEvent, error) {
	out := make([]reactor.StateEvent, 0, len(msgs))
	for _, m := range msgs {
		e, err := decodeEntry(m.ID, m.Values)
		if err != nil {
			return nil, fmt.Errorf("redis: events of %s: entry %q: %w", addr, m.ID, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeEntry reads one stream entry written by casEventsScript.
func decodeEntry(id string, values map[string]any) (reactor.StateEvent, error) {
	seq, ok := strings.CutPrefix(id, "0-")
	if !ok {
		return reactor.StateEvent{}, errEntry
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == 0 {
		return reactor.StateEvent{}, errEntry
	}
	d, ok := values["e"].(string)
	if !ok {
		return reactor.StateEvent{}, errEntry
	}
	return reactor.StateEvent{ID: n, Data: []byte(d)}, nil
}

// Follower reads the event streams of the addresses it follows with one
// blocking XREAD for all of them (one connection, however many streams),
// and hands what arrives to each stream's callback, in order, on its own
// goroutine. Following a new address wakes the read at once: it appends
// to a stream of the follower's own, which the XREAD includes.
type Follower struct {
	s     *Store
	log   *slog.Logger
	wake  string
	mu    sync.Mutex
	feeds map[string]*feed // by address
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}
}

type feed struct {
	after   uint64
	deliver func([]reactor.StateEvent, error)
}

// Follow starts a Follower. Close it when done.
func (s *Store) Follow(log *slog.Logger) *Follower {
	if log == nil {
		log = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &Follower{s: s, log: log, feeds: map[string]*feed{}, ctx: ctx, stop: stop, done: make(chan struct{}),
		wake: s.prefix + "wake:" + strconv.FormatUint(rand.Uint64(), 36)}
	go f.run()
	return f
}

// Add follows addr's stream after id: deliver gets every later event, in
// order, in batches (on the follower's goroutine: it must not block), or an
// error when the stream cannot be read (then the address is no longer
// followed). Adding an address again replaces its callback and position.
func (f *Follower) Add(addr string, after uint64, deliver func([]reactor.StateEvent, error)) {
	f.mu.Lock()
	f.feeds[addr] = &feed{after: after, deliver: deliver}
	f.mu.Unlock()
	f.poke()
}

// Remove stops following addr.
func (f *Follower) Remove(addr string) {
	f.mu.Lock()
	delete(f.feeds, addr)
	f.mu.Unlock()
}

// poke ends the current XREAD, so that it is issued again with the new set.
func (f *Follower) poke() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := f.s.c.Pipeline()
	pipe.XAdd(ctx, &goredis.XAddArgs{Stream: f.wake, MaxLen: 8, Approx: true, Values: []any{"w", 1}})
	pipe.PExpire(ctx, f.wake, time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		f.log.Warn("redis: wake the event follower", "err", err)
	}
}

// Close stops the follower and waits for its goroutine.
func (f *Follower) Close() {
	f.stop()
	f.poke()
	<-f.done
}

// followBlock bounds one XREAD, so that a stream removed meanwhile stops
// being read soon even without a wake-up.
const followBlock = 5 * time.Second

func (f *Follower) run() {
	defer close(f.done)
	wakeID := "$"
	backoff := 10 * time.Millisecond
	for f.ctx.Err() == nil {
		f.mu.Lock()
		streams := []string{f.wake}
		ids := []string{wakeID}
		addrs := make([]string, 0, len(f.feeds))
		for a, fd := range f.feeds {
			addrs = append(addrs, a)
			streams = append(streams, f.s.EventsKey(a))
			ids = append(ids, "0-"+strconv.FormatUint(fd.after, 10))
		}
		f.mu.Unlock()
		res, err := f.s.c.XRead(f.ctx, &goredis.XReadArgs{Streams: append(streams, ids...), Block: followBlock, Count: 1000}).Result()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			if f.ctx.Err() != nil {
				return
			}
			f.log.Warn("redis: read event streams", "err", err)
			select {
			case <-time.After(backoff):
			case <-f.ctx.Done():
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		for _, st := range res {
			if st.Stream == f.wake {
				if n := len(st.Messages); n > 0 {
					wakeID = st.Messages[n-1].ID
				}
				continue
			}
			addr := strings.TrimPrefix(st.Stream, f.s.prefix+"events:")
			events, err := decodeMessages(addr, st.Messages)
			f.mu.Lock()
			fd := f.feeds[addr]
			if fd != nil && err == nil && len(events) > 0 {
				if events[0].ID <= fd.after {
					// Added again meanwhile with a later position: skip what it has.
					i := 0
					for i < len(events) && events[i].ID <= fd.after {
						i++
					}
					events = events[i:]
				}
				if len(events) > 0 {
					fd.after = events[len(events)-1].ID
				}
			}
			if fd != nil && err != nil {
				delete(f.feeds, addr)
			}
			f.mu.Unlock()
			if fd != nil && (err != nil || len(events) > 0) {
				fd.deliver(events, err)
			}
		}
	}
}
