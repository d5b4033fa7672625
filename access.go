package reactor

import (
	"context"

	"github.com/reactorgo/reactor/checkpoint"
)

// Store returns the checkpoint store the runtime saves services into
// (Config.Store, or the MemStore it defaulted to). A domain package may list
// its Keys before Start to learn which keyed children exist, so that it can
// refuse messages for children that do not exist without creating them.
// Writing to it behind the runtime's back is the caller's responsibility.
func (rt *Runtime) Store() checkpoint.Store { return rt.cfg.Store }

// IdempotencyKey returns the key WithIdempotencyKey attached to ctx, or "".
func IdempotencyKey(ctx context.Context) string { return keyFrom(ctx) }

// Remembers reports whether the journaled or External service on whose turn c runs
// still remembers the answer to a request with idempotency key (within
// Config.IdempotencyWindow of c.Now()): a retry with that key will get that
// answer and not be applied again. A read-only check that refuses requests
// before they are journaled (authentication, say) lets such a retry through,
// so that it gets its first answer even if the check would now refuse it.
func (c *Ctx) Remembers(key string) bool {
	if key == "" || c.svc == nil {
		return false
	}
	var t *replyTable
	switch {
	case c.svc.js != nil:
		t = c.svc.js.replies
	case c.svc.ext != nil:
		t = c.svc.ext.replies
	}
	if t == nil {
		return false
	}
	_, ok := t.get(key, c.Now().UnixNano(), c.rt.cfg.IdempotencyWindow)
	return ok
}
