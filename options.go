package reactor

import (
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/reactorgo/reactor/checkpoint"
)

// Config configures a Runtime. The zero value is valid: every field documents
// its default.
type Config struct {
	// InboxSize is the default inbox capacity of a service (default 1024).
	InboxSize int
	// BatchSize is the default number of messages a service handles per turn
	// before it yields its goroutine to other ready services (default 256).
	BatchSize int
	// Goroutines is the number of goroutines that run service turns
	// (default GOMAXPROCS). Idle services own no goroutine. (Not to be
	// confused with the Workers option, which lets one service run several
	// turns at once.)
	Goroutines int
	// SingleGoroutine runs every service on one goroutine (the (Re)Actor
	// "all reactors on one thread" deployment). Service code does not change.
	SingleGoroutine bool
	// Seed, with SingleGoroutine (required), picks the next ready service
	// with a PRNG seeded by Seed, and seeds Ctx.Rand from it, so that a run
	// with the same inputs in the same order is reproducible. 0: no seed.
	Seed uint64
	// Store keeps checkpoints of evicted children and, at Close, of every
	// modified service (default: a new checkpoint.MemStore).
	Store checkpoint.Store
	// Codec encodes state for checkpoints and requests for the journal
	// (default JSONCodec).
	Codec Codec
	// Clock returns the time handlers see through Ctx.Now (default
	// Timers.Now if Timers is set, otherwise time.Now).
	Clock func() time.Time
	// Timers drives the runtime's own timers: MethodOf.After, idle eviction
	// and the periodic checkpoint rounds (default: the machine's clock). A
	// simulator sets it to advance time without sleeping.
	Timers Timers
	// Logger receives the runtime's logs (default slog.Default()).
	Logger *slog.Logger
	// Journal receives the inputs of Journaled services (required if any
	// service is Journaled): a *journal.Journal (local files), or another
	// implementation of Journal. The runtime does not close it.
	Journal Journal
	// CheckpointInterval is how often modified journaled services are
	// checkpointed and the journal released up to the oldest input not
	// covered by a checkpoint (default 30s).
	CheckpointInterval time.Duration
	// IdempotencyWindow is how long a journaled service remembers the answer
	// to a request that carried a key (WithIdempotencyKey, and the keys the
	// runtime gives messages between journaled services) (default 5m).
	IdempotencyWindow time.Duration
	// StateAttempts is how many times a batch of an External service runs
	// when its write keeps conflicting with other writers, before its
	// callers get ErrBusy (default 8).
	StateAttempts int
	// StateTimeout bounds each read and write of an External service's
	// StateStore (default 5s).
	StateTimeout time.Duration
	// CheckShared, if set, sees every value a handler hands out — each
	// reply it returns, each message it sends, each callback value it
	// invokes — together with the service's live state, on the service's
	// turn, before the value leaves. It is a test hook:
	// reactortest.NoAliasing fails a test whose services hand out maps,
	// slices or pointers of their state (the next turn would race with the
	// reader). what names the value: "reply of m", "send of m to addr",
	// "callback to addr". Unset, it costs one nil check.
	CheckShared func(addr, what string, state, value any)
	// Remote, if set, serves the addresses this runtime does not own (see
	// Remote): a cluster node's router. nil: every address is served here.
	Remote Remote
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.InboxSize < 0:
		return fmt.Errorf("reactor: Config.InboxSize %d is negative", c.InboxSize)
	case c.BatchSize < 0:
		return fmt.Errorf("reactor: Config.BatchSize %d is negative", c.BatchSize)
	case c.Goroutines < 0:
		return fmt.Errorf("reactor: Config.Goroutines %d is negative", c.Goroutines)
	case c.StateAttempts < 0 || c.StateTimeout < 0:
		return fmt.Errorf("reactor: negative Config.StateAttempts or StateTimeout")
	case c.CheckpointInterval < 0 || c.IdempotencyWindow < 0:
		return fmt.Errorf("reactor: negative Config.CheckpointInterval or IdempotencyWindow")
	case c.SingleGoroutine && c.Goroutines > 1:
		return fmt.Errorf("reactor: Config.SingleGoroutine conflicts with Goroutines=%d", c.Goroutines)
	case c.Seed != 0 && !c.SingleGoroutine:
		return fmt.Errorf("reactor: Config.Seed needs SingleGoroutine: with several goroutines the order of turns cannot be reproduced")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.InboxSize == 0 {
		c.InboxSize = 1024
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.SingleGoroutine {
		c.Goroutines = 1
	}
	if c.Goroutines == 0 {
		c.Goroutines = runtime.GOMAXPROCS(0)
	}
	if c.Store == nil {
		c.Store = checkpoint.NewMemStore()
	}
	if c.Codec == nil {
		c.Codec = JSONCodec{}
	}
	if c.Timers == nil {
		c.Timers = realTimers{}
		if c.Clock == nil {
			c.Clock = time.Now
		}
	}
	if c.Clock == nil {
		c.Clock = c.Timers.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 30 * time.Second
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = 5 * time.Minute
	}
	if c.StateAttempts == 0 {
		c.StateAttempts = 8
	}
	if c.StateTimeout == 0 {
		c.StateTimeout = 5 * time.Second
	}
}

// Option configures one registered service.
type Option func(*serviceOptions)

type serviceOptions struct {
	inboxSize   int
	batchSize   int
	workers     int
	maxChildren int
	maxMemory   int64
	idleTimeout time.Duration
	place       placement  // where the state lives: InMemory, Journaled, External
	store       StateStore // External only
}

// InboxSize sets the service's inbox capacity (for keyed children: each
// child's). A send to a full inbox fails with ErrBusy.
func InboxSize(n int) Option { return func(o *serviceOptions) { o.inboxSize = n } }

// BatchSize sets how many messages one turn may handle before the service
// yields (BeforeBatch/AfterBatch wrap each such batch).
func BatchSize(n int) Option { return func(o *serviceOptions) { o.batchSize = n } }

// Workers lets n turns of the service run at once, sharing one inbox. This
// opts out of "one turn at a time": use it for stateless or internally
// synchronised services that block on I/O. Per-sender order is not kept
// across workers. The default batch of a Workers service is 1 message.
func Workers(n int) Option { return func(o *serviceOptions) { o.workers = n } }

// MaxChildren bounds how many keyed children stay in memory (default
// 100,000). Beyond it the least recently used idle child is saved and evicted.
func MaxChildren(n int) Option { return func(o *serviceOptions) { o.maxChildren = n } }

// MaxChildMemory bounds the approximate memory of resident children, in
// bytes (default: no bound). A child's size is its SizeHint if its state
// implements Sizer, otherwise the size of its state struct, plus the
// runtime's own per-child overhead.
func MaxChildMemory(bytes int64) Option { return func(o *serviceOptions) { o.maxMemory = bytes } }

// IdleTimeout saves and evicts a child that has handled no message for d
// (default: never). Children with an IdleTimeout are how per-session services
// are built: one child per session key, gone when the session goes quiet.
func IdleTimeout(d time.Duration) Option { return func(o *serviceOptions) { o.idleTimeout = d } }

func (o *serviceOptions) validate() error {
	switch {
	case o.inboxSize < 0, o.batchSize < 0, o.workers < 0, o.maxChildren < 0, o.maxMemory < 0, o.idleTimeout < 0:
		return fmt.Errorf("reactor: negative service option")
	}
	return nil
}
