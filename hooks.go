package reactor

// Optional hooks a service's state may implement. Each runs on the
// service's own turn, like a handler.

// BatchStarter is called at the start of every batch of messages.
type BatchStarter interface{ BeforeBatch(c *Ctx) }

// BatchEnder is called after the last message of every batch: the place to
// flush what the batch's handlers accumulated (one write for many messages).
type BatchEnder interface{ AfterBatch(c *Ctx) }

// Loader is called after the state was restored from its checkpoint (or
// created fresh, for a child with no checkpoint), before any message.
type Loader interface{ OnLoad(c *Ctx) error }

// Saver is called before the state is encoded into a checkpoint.
type Saver interface{ OnSave(c *Ctx) error }

// Activator is called once the service is ready to serve live messages: after
// loading (and, for journaled services, after replay). Side effects that must
// not repeat on replay — re-arming timers, announcing presence — go here.
type Activator interface{ OnActive(c *Ctx) }

// Sizer reports the approximate memory a child's state holds, in bytes, for
// MaxChildMemory. Without it the size of the state struct itself is used.
type Sizer interface{ SizeHint() int }
