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
// Call styles: Call (blocking, with a context), Send (fire-and-forget, never
// blocks), SendWait (fire-and-forget with back pressure), Async (from a
// handler, continuation on the caller's turn), Forward and Defer (a reply
// completed later, or by another service), After (a timer message to self).
// Extract runs read-only work over the frozen state in parallel inside a turn.
//
// Handlers get time and randomness from their Ctx (Ctx.Now, Ctx.Rand), so
// that a run can be replayed: with Config.SingleGoroutine and a Seed the
// whole runtime is deterministic, which tests and simulations build on.
package reactor
