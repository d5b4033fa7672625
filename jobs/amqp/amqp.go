// Package amqp delivers RabbitMQ messages to a journaled reactor service:
// each message is decoded into the method's request and sent with its
// message id as the idempotency key; it is acked only once the service
// accepted it durably (in the fsynced journal), so a broker redelivery —
// after our crash, a lost ack, a consumer restart — is not applied twice.
// ErrBusy (a full inbox) nacks the message back onto the queue after a
// backoff, and the channel's prefetch is the back-pressure window: the
// broker holds the rest.
package amqp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/reactorgo/reactor"
)

// Config configures a consumer. The zero value of every field but Queue is
// valid.
type Config struct {
	// Queue is the RabbitMQ queue to consume (required; declare it yourself).
	Queue string
	// Prefetch is how many unacknowledged messages the broker hands this
	// consumer at most (default 64).
	Prefetch int
	// BusyBackoff is the first wait before a message refused with ErrBusy is
	// requeued; it doubles per consecutive refusal up to 5s (default 50ms).
	BusyBackoff time.Duration
	// KeyPrefix is prepended to the message id to form the idempotency key
	// (default "amqp:"+Queue+":").
	KeyPrefix string
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// ErrNoMessageID: a message without a message id cannot be deduplicated;
// it is rejected without requeue (to the queue's dead-letter exchange, if
// one is configured).
var ErrNoMessageID = errors.New("amqp: message has no message id")

// Consume consumes cfg.Queue on ch and sends each message's body, decoded
// as JSON into Req, to m at to, until ctx ends or the channel closes.
// Messages are handled one at a time, in delivery order.
func Consume[S, Req, Resp any](ctx context.Context, ch *amqp091.Channel, cfg Config, m *reactor.MethodOf[S, Req, Resp], to reactor.Ref) error {
	if cfg.Queue == "" {
		return errors.New("amqp: Config.Queue is required")
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 64
	}
	if cfg.BusyBackoff == 0 {
		cfg.BusyBackoff = 50 * time.Millisecond
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "amqp:" + cfg.Queue + ":"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("amqp: set prefetch: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("amqp: consume %s: %w", cfg.Queue, err)
	}
	busy := 0
	for {
		var d amqp091.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case d, ok = <-deliveries:
			if !ok {
				return fmt.Errorf("amqp: consume %s: %w", cfg.Queue, amqp091.ErrClosed)
			}
		}
		err := deliver(ctx, cfg, m, to, d)
		switch {
		case err == nil:
			busy = 0
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("amqp: ack: %w", err) // the broker redelivers; the key dedups
			}
		case errors.Is(err, reactor.ErrBusy), errors.Is(err, context.DeadlineExceeded):
			wait := min(cfg.BusyBackoff<<min(busy, 10), 5*time.Second)
			busy++
			// Debug, not Warn: a full inbox is the back pressure working,
			// and a busy service would flood the log.
			cfg.Logger.Debug("amqp: service busy, message requeued", "queue", cfg.Queue, "id", d.MessageId, "delay", wait, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			if err := d.Nack(false, true); err != nil {
				return fmt.Errorf("amqp: nack: %w", err)
			}
		case errors.Is(err, ErrNoMessageID), errors.As(err, new(*decodeError)):
			cfg.Logger.Warn("amqp: message rejected", "queue", cfg.Queue, "id", d.MessageId, "err", err)
			if err := d.Reject(false); err != nil {
				return fmt.Errorf("amqp: reject: %w", err)
			}
		default:
			// Closed runtime, journal failure: give the message back and stop.
			d.Nack(false, true)
			return fmt.Errorf("amqp: deliver %s: %w", d.MessageId, err)
		}
	}
}

type decodeError struct{ err error }

func (e *decodeError) Error() string { return "amqp: decode body: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

func deliver[S, Req, Resp any](ctx context.Context, cfg Config, m *reactor.MethodOf[S, Req, Resp], to reactor.Ref, d amqp091.Delivery) error {
	if d.MessageId == "" {
		return ErrNoMessageID
	}
	var req Req
	if err := json.Unmarshal(d.Body, &req); err != nil {
		return &decodeError{err}
	}
	// Send from outside returns once the message is durable; a redelivered
	// message with the same key is answered from the idempotency table.
	return m.Send(reactor.WithDeliveryKey(ctx, cfg.KeyPrefix+d.MessageId), to, req)
}
