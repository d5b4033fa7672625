// Package reactor runs services in the (Re)Actor style: plain Go structs
// whose handlers run one message at a time, off a bounded inbox, with their
// state in memory.
//
// A service is a state struct plus methods defined once, by name, with
// compile-time typed requests and replies:
//
//	type Counter struct{ N int }
//
//	func (c *Counter) Add(ctx *reactor.Ctx, n int) (int, error) { c.N += n; return c.N, nil }
//
//	var Add = reactor.Method("counter.add", (*Counter).Add)
//
//	rt, _ := reactor.New(reactor.Config{})
//	ref, _ := reactor.Register(rt, "/counter", &Counter{})
//	rt.Start(ctx)
//	n, err := Add.Call(ctx, ref, 5)
//
// The contract:
//
//   - One turn at a time: a service's handlers never run concurrently with
//     each other (unless it opts out with Workers), so handlers take no locks.
//   - Bounded inbox: Send to a full inbox fails at once with ErrBusy; Call
//     waits for space and for the reply only as long as its context allows.
//     One exception: a Send made by a journaled handler to a journaled
//     service is admitted regardless — it is output of a durable input,
//     which a replay would send again anyway.
//   - Idle services own no goroutine: a service with mail is scheduled onto
//     one of a fixed set of workers, which drains a batch (BatchStarter and
//     BatchEnder wrap it) and moves on, so one process can hold millions of
//     keyed children (RegisterChildren) in an LRU bounded by count and memory.
//   - Per-sender FIFO: messages from one goroutine to one service are
//     handled in send order.
//   - Continuations run in the caller's turn: Async delivers the reply into
//     the calling service's inbox, never onto the callee's goroutine.
//   - A panicking handler fails its own call with a *PanicError carrying the
//     stack; the service lives on.
//
// Call styles: Call (blocking, with a context), TryCall (Call that fails at
// once with ErrBusy on a full inbox instead of waiting for space), Send
// (fire-and-forget, never blocks), SendWait (fire-and-forget with back
// pressure), Async (from a handler, continuation on the caller's turn),
// Forward and Defer (a reply completed later, or by another service; a
// deferred reply dropped uncompleted fails its caller with ErrNoReply),
// After (a timer message to self). Extract runs read-only work over the
// frozen state in parallel inside a turn.
//
// Inside a handler, pass its *Ctx — or any context derived from it
// (context.WithTimeout(c, …), WithValue, WithCancel) — to the calls it
// makes: the runtime finds the handler through it.
//
// # Journaled services
//
// A service registered with Journaled gets its modifying messages through
// the journal (Config.Journal): a message is appended, and enqueued only
// once the journal reports it durable. So:
//
//   - Accepted means durable: Call and Send return without error only after
//     the fsync that covers the message (one fsync covers a whole batch).
//   - Output commit: a handler runs only on durable inputs, so its replies,
//     sends and published events never get ahead of the journal.
//   - Recovery is exact: Start loads each service's checkpoint, replays the
//     journal after it in the original order with the recorded Ctx.Now and
//     Ctx.Rand, then calls OnActive. Side effects other than sends belong in
//     OnActive or behind Ctx.Replaying.
//   - Exactly once between services: messages a journaled handler sends to
//     journaled services carry an origin key; replay sends them again and
//     the receiver drops the duplicates. Async replies to a journaled caller
//     are journaled as its inputs, so continuations replay in place.
//   - Idempotency keys (WithIdempotencyKey): a retry within
//     Config.IdempotencyWindow gets the first answer, also after a restart;
//     a key reused for another request fails with ErrKeyReused.
//   - A handler that panics on a journaled input fails that input for good:
//     the outcome is journaled, and replay answers with it instead of
//     running the handler again.
//
// # External state
//
// A family registered with External(store) keeps each child's state in a
// StateStore (state/redis for Redis) instead of the process: many
// processes can serve the same keys. A batch runs on the cached state and
// writes it back once with a compare-and-swap on its version; its replies,
// sends, async calls and timers are held until that write succeeded. On a
// conflict the batch runs again on the newer state with the same Ctx.Now and
// Ctx.Rand; after Config.StateAttempts runs its callers get ErrBusy. Defer
// is refused in this mode. See docs/DEPLOYMENT.md.
//
// # Errors
//
// Errors answered from the idempotency table or replayed from the journal
// keep their identity: define sentinels with NewError (or register existing
// ones with RegisterError, error types with RegisterErrorType) and
// errors.Is, errors.As and CodeOf hold on a retry after a restart as they
// did on the first answer. Unregistered errors keep their text under
// CodeUnknown.
//
// Handlers get time and randomness from their Ctx (Ctx.Now, Ctx.Rand), so
// that a run can be replayed: with Config.SingleGoroutine and a Seed the
// whole runtime is deterministic, which tests and simulations build on.
package reactor
