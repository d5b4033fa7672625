package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// AMQP publishes to RabbitMQ on a channel in confirm mode: Publish returns
// once the broker confirmed the message (persistent: written to disk for
// durable queues). The id is the message-id property; RabbitMQ does not
// deduplicate, so a retry after a lost confirmation can deliver a second
// copy — consumers deduplicate by message id (jobs/amqp does).
//
// Messages that no queue is bound to receive are dropped by the broker
// (and confirmed): declare queues and bindings first.
type AMQP struct {
	conn *amqp091.Connection

	mu sync.Mutex // guards ch: re-opened after the broker closed it
	ch *amqp091.Channel
}

var _ Publisher = (*AMQP)(nil)

// NewAMQP returns a publisher on conn; it opens its own channel.
func NewAMQP(conn *amqp091.Connection) *AMQP { return &AMQP{conn: conn} }

func (p *AMQP) channel() (*amqp091.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("outbox: open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("outbox: confirm mode: %w", err)
	}
	p.ch = ch
	return ch, nil
}

// ErrNacked: the broker refused the message (a publisher confirm nack).
var ErrNacked = errors.New("outbox: broker nacked the message")

// Publish publishes m persistently and waits for its confirmation.
func (p *AMQP) Publish(ctx context.Context, id string, m Message) error {
	ch, err := p.channel()
	if err != nil {
		return err
	}
	ct := m.ContentType
	if ct == "" {
		ct = "application/json"
	}
	var headers amqp091.Table
	if len(m.Header) > 0 {
		headers = amqp091.Table{}
		for k, v := range m.Header {
			headers[k] = v
		}
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.Subject, false, false, amqp091.Publishing{
		MessageId: id, ContentType: ct, DeliveryMode: amqp091.Persistent, Headers: headers, Body: m.Data})
	if err != nil {
		return fmt.Errorf("outbox: amqp publish: %w", err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("outbox: amqp confirm: %w", err)
	}
	if !ok {
		return ErrNacked
	}
	return nil
}

// Close closes the publisher's channel (not the connection).
func (p *AMQP) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		return nil
	}
	return p.ch.Close()
}
