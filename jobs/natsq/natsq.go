// Package natsq delivers NATS JetStream messages to a journaled reactor
// service, the JetStream twin of jobs/amqp: each message is decoded into
// the method's request and sent with an idempotency key made from its
// Nats-Msg-Id header (or, without one, its stream sequence number); it is
// acked only once the service accepted it durably (in the fsynced
// journal), so a redelivery — after our crash, a lost ack, an expired ack
// wait — is answered from the idempotency table and not applied twice.
// ErrBusy (a full inbox) naks the message with a delay and pauses the
// consumer, and the consumer's MaxAckPending is the back-pressure window:
// the server holds the rest.
package natsq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/reactorgo/reactor"
)

// Config configures a consumer. Stream and Consumer are required; every
// other zero value is valid.
type Config struct {
	// Stream is the JetStream stream to consume (create it yourself).
	Stream string
	// Consumer is the durable consumer's name; Consume creates it or
	// updates its settings. Several processes consuming with the same name
	// share the messages.
	Consumer string
	// FilterSubject restricts the consumer to matching subjects (default:
	// the whole stream).
	FilterSubject string
	// MaxAckPending is how many delivered, unacknowledged messages the
	// server allows this consumer (default 64): the back-pressure window.
	MaxAckPending int
	// AckWait is how long the server waits for an ack before redelivering
	// (default 30s).
	AckWait time.Duration
	// BusyBackoff is the first delay of a message refused with ErrBusy; it
	// doubles per consecutive refusal up to 5s (default 50ms).
	BusyBackoff time.Duration
	// KeyPrefix is prepended to the message id to form the delivery key
	// (reactor.WithDeliveryKey; default "nats/"+Stream+":"). A redelivery
	// is recognised within the runtime's Config.IdempotencyWindow.
	KeyPrefix string
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Stream == "" || c.Consumer == "" {
		return errors.New("natsq: Config.Stream and Config.Consumer are required")
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 64
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.BusyBackoff <= 0 {
		c.BusyBackoff = 50 * time.Millisecond
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "nats/" + c.Stream + ":"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Key returns the idempotency key of msg: prefix + its Nats-Msg-Id header,
// or prefix + "seq:" + its stream sequence number when it has none (a
// redelivery keeps its sequence number, a republish does not).
func Key(prefix string, msg jetstream.Msg) (string, error) {
	if id := msg.Headers().Get(nats.MsgIdHdr); id != "" {
		return prefix + id, nil
	}
	md, err := msg.Metadata()
	if err != nil {
		return "", fmt.Errorf("natsq: message metadata: %w", err)
	}
	return prefix + "seq:" + strconv.FormatUint(md.Sequence.Stream, 10), nil
}

// DecodeError is the error of a message whose body does not decode into
// the request: it is terminated (never redelivered).
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "natsq: decode body: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Deliver decodes msg as JSON into Req and sends it to m at to with msg's
// idempotency key, returning once the service accepted it durably. It does
// not ack: Consume does, after Deliver returned nil.
func Deliver[S, Req, Resp any](ctx context.Context, keyPrefix string, m *reactor.MethodOf[S, Req, Resp], to reactor.Ref, msg jetstream.Msg) error {
	key, err := Key(keyPrefix, msg)
	if err != nil {
		return err
	}
	var req Req
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		return &DecodeError{err}
	}
	// Send from outside returns once the message is durable; a redelivery
	// with the same key is answered from the idempotency table.
	return m.Send(reactor.WithDeliveryKey(ctx, key), to, req)
}

// Consume creates (or updates) the durable consumer cfg.Consumer on
// cfg.Stream and delivers its messages to m at to, one at a time in
// delivery order, until ctx ends (it then returns ctx.Err()) or a
// delivery fails for a reason other than back pressure or a bad body.
func Consume[S, Req, Resp any](ctx context.Context, js jetstream.JetStream, cfg Config, m *reactor.MethodOf[S, Req, Resp], to reactor.Ref) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable: cfg.Consumer, FilterSubject: cfg.FilterSubject, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("natsq: consumer %s on %s: %w", cfg.Consumer, cfg.Stream, err)
	}
	// The client buffers at most the window the server allows anyway.
	it, err := cons.Messages(jetstream.PullMaxMessages(cfg.MaxAckPending))
	if err != nil {
		return fmt.Errorf("natsq: consume %s: %w", cfg.Stream, err)
	}
	defer it.Stop()
	busy := 0
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("natsq: consume %s: %w", cfg.Stream, err)
		}
		err = Deliver(ctx, cfg.KeyPrefix, m, to, msg)
		var de *DecodeError
		switch {
		case err == nil:
			busy = 0
			if err := msg.Ack(); err != nil {
				// The server redelivers after AckWait; the key dedups.
				cfg.Logger.Warn("natsq: ack failed", "stream", cfg.Stream, "err", err)
			}
		case errors.Is(err, reactor.ErrBusy), errors.Is(err, context.DeadlineExceeded):
			wait := min(cfg.BusyBackoff<<min(busy, 10), 5*time.Second)
			busy++
			// Debug, not Warn: a full inbox is the back pressure working,
			// and a busy service would flood the log.
			cfg.Logger.Debug("natsq: service busy, message naked", "stream", cfg.Stream, "subject", msg.Subject(), "delay", wait, "err", err)
			if err := msg.NakWithDelay(wait); err != nil {
				cfg.Logger.Warn("natsq: nak failed", "stream", cfg.Stream, "err", err)
			}
			// Stop pulling too: more messages now would meet the same
			// full inbox.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		case errors.As(err, &de):
			cfg.Logger.Warn("natsq: message terminated", "stream", cfg.Stream, "subject", msg.Subject(), "err", err)
			// Term, not TermWithReason: servers before 2.10.4 ignore the
			// latter and redeliver forever.
			if err := msg.Term(); err != nil {
				cfg.Logger.Warn("natsq: term failed", "stream", cfg.Stream, "err", err)
			}
		default:
			// Closed runtime, journal failure: give the message back and stop.
			msg.Nak()
			return fmt.Errorf("natsq: deliver: %w", err)
		}
	}
}
