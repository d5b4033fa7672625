// Package sqlreactor is the DB server reactor: a reactor service that owns
// the only writing connection to a SQL database and serves business-level
// requests ("move money from X to Y"), never SQL from its callers.
//
// Requests are Go functions over a *Tx, defined once by name with Method
// (closure transactions, in the style of bbolt's Update/Batch). The service
// handles its inbox in batches: one database transaction per batch, one
// savepoint per request. A request that returns an error or panics is rolled
// back alone — its SQL and its cache changes — and only its caller sees the
// error; the others commit together. Callers are answered after the COMMIT,
// so an answer means the change is durable; if the commit fails, every
// request of the batch gets an error wrapping ErrCommit.
//
// Being the only writer, the reactor keeps a coherent cache of the rows its
// requests read and write (Tx.Put, Tx.Evict, Cached): bounded, LRU, counted,
// and undone with the savepoint or batch that made a change. Reports and
// statements go to View, a read-only pool (a replica where there is one),
// which never touches the writer.
//
// Backends are subpackages with the same names: sqlite.Open (embedded,
// default) and postgres.Open (pgx). The contract suite in sqlreactortest
// runs against both.
package sqlreactor
