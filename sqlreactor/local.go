package sqlreactor

import "fmt"

// Local returns the value the DB keeps under name for its request
// functions, made by load on first use (on the writer, inside the calling
// request's transaction, so load sees the batch's own writes). Unlike the
// cache, a local value is never evicted and never undone: it suits
// writer-side state that request functions maintain themselves and that is
// cheaper in memory than in a table — the next number of an append-only
// ledger, a window of recent idempotency keys — provided that a change made
// by a request that is later rolled back is harmless (a gap in a sequence;
// a hint that is checked against the database before it is trusted).
// Values may be pointers and be changed in place; they are used only on the
// DB's turn. A local value lives as long as the DB (Open to Close): after a
// restart load runs again, from what the database holds.
//
// If load fails, nothing is kept and its error is returned. A value of
// another type than T under name is an error.
func Local[T any](tx *Tx, name string, load func(tx *Tx) (T, error)) (T, error) {
	db := tx.db
	if v, ok := db.local[name]; ok {
		t, ok := v.(T)
		if !ok {
			var zero T
			return zero, fmt.Errorf("sqlreactor: local %q is a %T, not a %T", name, v, zero)
		}
		return t, nil
	}
	t, err := load(tx)
	if err != nil {
		return t, err
	}
	if db.local == nil {
		db.local = make(map[string]any)
	}
	db.local[name] = t
	return t, nil
}
