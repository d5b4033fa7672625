package sqlreactor

import "sync/atomic"

// Cache is the DB reactor's coherent row cache: since the reactor owns the
// only writing connection, a row it has read or written stays exact for as
// long as every request that changes the row also updates (Tx.Put) or drops
// (Tx.Evict) its entry. It is bounded by a number of entries and evicts the
// least recently used one. It is used only on the reactor's turn; its
// counters may be read from anywhere.
type Cache struct {
	max   int
	items map[string]*centry
	head  centry // sentinel of the LRU ring: head.next is the most recent
	stats cacheCounters
}

type cacheCounters struct {
	hits, misses, evictions, undone atomic.Uint64
	n                               atomic.Int64
}

type centry struct {
	key        string
	val        any
	prev, next *centry
}

// CacheStats is a snapshot of a Cache's counters.
type CacheStats struct {
	Len       int
	Max       int
	Hits      uint64
	Misses    uint64
	Evictions uint64
	// Undone counts cache changes reverted because their request, or their
	// batch, was rolled back.
	Undone uint64
}

// undoRec restores one key to what it was before a change.
type undoRec struct {
	key     string
	val     any
	present bool
}

func newCache(max int) *Cache {
	c := &Cache{max: max, items: make(map[string]*centry)}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

func (c *Cache) unlink(e *centry) { e.prev.next, e.next.prev = e.next, e.prev }

func (c *Cache) front(e *centry) {
	e.next, e.prev = c.head.next, &c.head
	c.head.next.prev = e
	c.head.next = e
}

func (c *Cache) get(key string) (any, bool) {
	e, ok := c.items[key]
	if !ok {
		c.stats.misses.Add(1)
		return nil, false
	}
	c.stats.hits.Add(1)
	if c.head.next != e {
		c.unlink(e)
		c.front(e)
	}
	return e.val, true
}

func (c *Cache) peek(key string) (any, bool) {
	if e, ok := c.items[key]; ok {
		return e.val, true
	}
	return nil, false
}

// set stores key=val and returns the undo record for the change.
func (c *Cache) set(key string, val any) undoRec {
	if e, ok := c.items[key]; ok {
		u := undoRec{key: key, val: e.val, present: true}
		e.val = val
		if c.head.next != e {
			c.unlink(e)
			c.front(e)
		}
		return u
	}
	if c.max <= 0 {
		return undoRec{key: key}
	}
	for len(c.items) >= c.max {
		old := c.head.prev
		c.unlink(old)
		delete(c.items, old.key)
		c.stats.n.Add(-1)
		c.stats.evictions.Add(1)
	}
	e := &centry{key: key, val: val}
	c.items[key] = e
	c.stats.n.Add(1)
	c.front(e)
	return undoRec{key: key}
}

func (c *Cache) del(key string) undoRec {
	e, ok := c.items[key]
	if !ok {
		return undoRec{key: key}
	}
	c.unlink(e)
	delete(c.items, key)
	c.stats.n.Add(-1)
	return undoRec{key: key, val: e.val, present: true}
}

// undo reverts changes, newest first.
func (c *Cache) undo(log []undoRec) {
	for i := len(log) - 1; i >= 0; i-- {
		u := log[i]
		if u.present {
			c.set(u.key, u.val)
		} else {
			c.del(u.key)
		}
		c.stats.undone.Add(1)
	}
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{
		Len: int(c.stats.n.Load()), Max: c.max,
		Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		Evictions: c.stats.evictions.Load(), Undone: c.stats.undone.Load(),
	}
}
