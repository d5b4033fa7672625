// Package split moves value between two databases, each owned by its own DB
// reactor — a users database and a tournaments database — by asynchronous,
// eventually consistent, exactly-once transfers (slide 38 of the (Re)Actor
// talk): entering a tournament moves the buy-in from the user's wallet to
// the tournament's, a payout moves the prize back.
//
// The protocol: the sender debits the wallet and writes an outbox row in the
// same transaction (so a transfer exists iff its debit does); a relay reads
// committed outbox rows from the sender's read pool and delivers each to the
// receiver, which credits the wallet and records the transfer id in the same
// transaction (so a redelivery is recognised and only acknowledged); once
// the receiver has acknowledged, the relay marks the outbox row done. A
// crash anywhere leaves either an undone outbox row (delivered again: the
// receiver deduplicates) or a done one (delivered for good).
package split

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/sqlreactor"
)

// Errors.
var (
	ErrOverdraft  = errors.New("split: insufficient funds")
	ErrBadAmount  = errors.New("split: amount must be positive")
	ErrKeyReused  = errors.New("split: transfer id reused with a different transfer")
	ErrNoTransfer = errors.New("split: transfer id is empty")
)

// Schema is the same in both databases: wallets, the outbox of transfers
// sent, and the ids of transfers received.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS wallets (id TEXT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0))`,
	`CREATE TABLE IF NOT EXISTS outbox (xid TEXT PRIMARY KEY, src TEXT NOT NULL, dst TEXT NOT NULL,
		amount BIGINT NOT NULL, done INTEGER NOT NULL DEFAULT 0)`,
	`CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (done, xid)`,
	`CREATE TABLE IF NOT EXISTS received (xid TEXT PRIMARY KEY, dst TEXT NOT NULL, amount BIGINT NOT NULL)`,
}

// Transfer moves Amount from wallet Src in the sending database to wallet
// Dst in the other one. Xid identifies it in both, forever.
type Transfer struct {
	Xid    string `json:"xid"`
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	Amount int64  `json:"amount"`
}

func walletKey(id string) string { return "wallet:" + id }

func wallet(tx *sqlreactor.Tx, id string) (int64, error) {
	return sqlreactor.Cached(tx, walletKey(id), func(tx *sqlreactor.Tx) (int64, error) {
		var b int64
		err := tx.QueryRow(`SELECT balance FROM wallets WHERE id = ?`, id).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil // a wallet that never held money
		}
		return b, err
	})
}

func credit(tx *sqlreactor.Tx, id string, old, delta int64) error {
	q := `INSERT INTO wallets (id, balance) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET balance = wallets.balance + excluded.balance`
	args := []any{id, delta}
	if delta < 0 { // the row exists (its balance covered the debit); the CHECK would refuse the negative insert row
		q, args = `UPDATE wallets SET balance = balance + ? WHERE id = ?`, []any{delta, id}
	}
	if _, err := tx.Exec(q, args...); err != nil {
		return fmt.Errorf("split: credit %q: %w", id, err)
	}
	tx.Put(walletKey(id), old+delta)
	return nil
}

// The requests both DB reactors serve.
var (
	// Fund adds money to a local wallet (test and setup money).
	Fund = sqlreactor.Method("split.fund", func(tx *sqlreactor.Tx, t Transfer) (int64, error) {
		if t.Amount <= 0 {
			return 0, ErrBadAmount
		}
		old, err := wallet(tx, t.Dst)
		if err != nil {
			return 0, err
		}
		return old + t.Amount, credit(tx, t.Dst, old, t.Amount)
	})

	// Send debits the local wallet and queues the transfer in the outbox, in
	// one transaction. Sending the same transfer again is a no-op.
	Send = sqlreactor.Method("split.send", func(tx *sqlreactor.Tx, t Transfer) (bool, error) {
		switch {
		case t.Xid == "":
			return false, ErrNoTransfer
		case t.Amount <= 0:
			return false, ErrBadAmount
		}
		res, err := tx.Exec(`INSERT INTO outbox (xid, src, dst, amount) VALUES (?, ?, ?, ?) ON CONFLICT (xid) DO NOTHING`, t.Xid, t.Src, t.Dst, t.Amount)
		if err != nil {
			return false, fmt.Errorf("split: outbox %q: %w", t.Xid, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var first Transfer
			if err := tx.QueryRow(`SELECT src, dst, amount FROM outbox WHERE xid = ?`, t.Xid).Scan(&first.Src, &first.Dst, &first.Amount); err != nil {
				return false, err
			}
			if first.Src != t.Src || first.Dst != t.Dst || first.Amount != t.Amount {
				return false, fmt.Errorf("%w: %q", ErrKeyReused, t.Xid)
			}
			return false, nil // sent before
		}
		bal, err := wallet(tx, t.Src)
		if err != nil {
			return false, err
		}
		if bal < t.Amount {
			return false, fmt.Errorf("%w: %q has %d, needs %d", ErrOverdraft, t.Src, bal, t.Amount)
		}
		return true, credit(tx, t.Src, bal, -t.Amount)
	})

	// Receive credits the local wallet once per transfer id; a redelivery
	// is only acknowledged.
	Receive = sqlreactor.Method("split.receive", func(tx *sqlreactor.Tx, t Transfer) (bool, error) {
		res, err := tx.Exec(`INSERT INTO received (xid, dst, amount) VALUES (?, ?, ?) ON CONFLICT (xid) DO NOTHING`, t.Xid, t.Dst, t.Amount)
		if err != nil {
			return false, fmt.Errorf("split: receive %q: %w", t.Xid, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return false, nil // a redelivery: already credited
		}
		bal, err := wallet(tx, t.Dst)
		if err != nil {
			return false, err
		}
		return true, credit(tx, t.Dst, bal, t.Amount)
	})

	// Done marks outbox rows acknowledged by the receiver.
	Done = sqlreactor.Method("split.done", func(tx *sqlreactor.Tx, xids []string) (int, error) {
		for _, x := range xids {
			if _, err := tx.Exec(`UPDATE outbox SET done = 1 WHERE xid = ?`, x); err != nil {
				return 0, err
			}
		}
		return len(xids), nil
	})

	// Balance returns a wallet's balance (coherent, through the reactor).
	Balance = sqlreactor.Method("split.balance", func(tx *sqlreactor.Tx, id string) (int64, error) {
		return wallet(tx, id)
	})
)

// System is the two DB reactors and the relays between them.
type System struct {
	Users, Tourneys       *sqlreactor.DB
	UsersRef, TourneysRef reactor.Ref
	rt                    *reactor.Runtime
	ownsRT                bool // made by Start: Close closes it
	log                   *slog.Logger
	cancel                context.CancelFunc
	wg                    sync.WaitGroup
	closeOnce             sync.Once
}

// Start registers both databases in a new runtime and starts one relay per
// direction. Close stops everything (it does not close the databases).
func Start(ctx context.Context, users, tourneys *sqlreactor.DB, log *slog.Logger) (*System, error) {
	rt, err := reactor.New(reactor.Config{Logger: log})
	if err != nil {
		return nil, err
	}
	s, err := Register(rt, users, tourneys, log)
	if err != nil {
		return nil, err
	}
	s.ownsRT = true
	if err := rt.Start(ctx); err != nil {
		return nil, err
	}
	s.StartRelays()
	return s, nil
}

// Register registers both databases on rt (before rt.Start), with opts
// (e.g. reactor.Journaled()). Start rt, then the relays with StartRelays.
// Close then stops the relays only: the runtime is the caller's.
func Register(rt *reactor.Runtime, users, tourneys *sqlreactor.DB, log *slog.Logger, opts ...reactor.Option) (*System, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &System{Users: users, Tourneys: tourneys, rt: rt, log: log}
	opts = append([]reactor.Option{reactor.InboxSize(4096)}, opts...)
	var err error
	if s.UsersRef, err = reactor.Register(rt, "/users", users, opts...); err != nil {
		return nil, err
	}
	if s.TourneysRef, err = reactor.Register(rt, "/tourneys", tourneys, opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// StartRelays starts one relay per direction, once the runtime has started.
func (s *System) StartRelays() {
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go s.relay(rctx, s.Users, s.UsersRef, s.TourneysRef)
	go s.relay(rctx, s.Tourneys, s.TourneysRef, s.UsersRef)
}

// Enter sends a tournament buy-in from a user's wallet.
func (s *System) Enter(ctx context.Context, xid, user, tourney string, buyIn int64) error {
	_, err := Send.Call(ctx, s.UsersRef, Transfer{Xid: xid, Src: user, Dst: tourney, Amount: buyIn})
	return err
}

// Payout sends a prize from a tournament's wallet back to a user.
func (s *System) Payout(ctx context.Context, xid, tourney, user string, prize int64) error {
	_, err := Send.Call(ctx, s.TourneysRef, Transfer{Xid: xid, Src: tourney, Dst: user, Amount: prize})
	return err
}

// relay delivers src's committed, undone outbox rows to dst until ctx ends:
// deliver, then (after dst's commit acknowledged it) mark done in src.
func (s *System) relay(ctx context.Context, src *sqlreactor.DB, srcRef, dstRef reactor.Ref) {
	defer s.wg.Done()
	idle := time.Millisecond
	for ctx.Err() == nil {
		batch, err := Pending(ctx, src, 256)
		if err == nil && len(batch) > 0 {
			err = s.deliver(ctx, batch, srcRef, dstRef)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("split: relay", "err", err)
		}
		if err != nil || len(batch) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(idle):
			}
			idle = min(2*idle, 50*time.Millisecond)
			continue
		}
		idle = time.Millisecond
	}
}

func (s *System) deliver(ctx context.Context, batch []Transfer, srcRef, dstRef reactor.Ref) error {
	// Deliver concurrently so the receiver batches them in one commit.
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, t := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Receive.Call(ctx, dstRef, t)
		}()
	}
	wg.Wait()
	var acked []string
	for i, t := range batch {
		if errs[i] == nil {
			acked = append(acked, t.Xid)
		}
	}
	if len(acked) > 0 {
		if _, err := Done.Call(ctx, srcRef, acked); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// Pending lists up to limit undone outbox rows of db, from its read pool
// (committed rows only).
func Pending(ctx context.Context, db *sqlreactor.DB, limit int) ([]Transfer, error) {
	var out []Transfer
	err := db.View(ctx, func(r *sqlreactor.ReadTx) error {
		return r.Query(`SELECT xid, src, dst, amount FROM outbox WHERE done = 0 ORDER BY xid LIMIT ?`, []any{limit}, func(rows *sql.Rows) error {
			var t Transfer
			if err := rows.Scan(&t.Xid, &t.Src, &t.Dst, &t.Amount); err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// Close stops the relays and, for a System made by Start, the runtime. The
// databases stay open.
func (s *System) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		if s.ownsRT {
			err = s.rt.Close(ctx)
		}
	})
	return err
}

// Audit is what a database holds, read from its read pool.
type Audit struct {
	Wallets  map[string]int64
	Total    int64
	Sent     map[string]Transfer // outbox, by xid
	Undone   int
	Received map[string]int64 // xid → amount
}

// Inspect reads db's wallets, outbox and received transfers.
func Inspect(ctx context.Context, db *sqlreactor.DB) (Audit, error) {
	a := Audit{Wallets: map[string]int64{}, Sent: map[string]Transfer{}, Received: map[string]int64{}}
	err := db.View(ctx, func(r *sqlreactor.ReadTx) error {
		if err := r.Query(`SELECT id, balance FROM wallets`, nil, func(rows *sql.Rows) error {
			var id string
			var b int64
			err := rows.Scan(&id, &b)
			a.Wallets[id] = b
			a.Total += b
			return err
		}); err != nil {
			return err
		}
		if err := r.Query(`SELECT xid, src, dst, amount, done FROM outbox`, nil, func(rows *sql.Rows) error {
			var t Transfer
			var done int
			err := rows.Scan(&t.Xid, &t.Src, &t.Dst, &t.Amount, &done)
			a.Sent[t.Xid] = t
			if done == 0 {
				a.Undone++
			}
			return err
		}); err != nil {
			return err
		}
		return r.Query(`SELECT xid, amount FROM received`, nil, func(rows *sql.Rows) error {
			var x string
			var amt int64
			err := rows.Scan(&x, &amt)
			a.Received[x] = amt
			return err
		})
	})
	return a, err
}
