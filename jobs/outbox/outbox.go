// Package outbox publishes messages to RabbitMQ or NATS JetStream with
// output commit: a journaled handler's message leaves the process only
// after the input that caused it is durable, and it is published at least
// once, with a deduplication id, until the broker confirmed it.
//
// It is a job kind: Publish called with a handler's *reactor.Ctx enqueues
// the message transactionally (the job exists iff the handler's input is
// durable), and a worker of the "outbox" queue publishes it through a
// registered Publisher, waiting for the broker's confirmation (JetStream's
// PubAck, RabbitMQ's publisher confirm). A failure or a lost confirmation
// retries with backoff; every attempt carries the same id — Nats-Msg-Id
// for JetStream, whose duplicate window drops a second copy, and the AMQP
// message-id, by which consumers (such as jobs/amqp) deduplicate.
//
//	outbox.Register("events", outbox.NewNATS(js))
//	qs, _ := jobs.New(rt, jobs.Config{Queues: map[string]jobs.QueueConfig{outbox.Queue: {Workers: 4}}})
//
//	func (o *Orders) Place(c *reactor.Ctx, req PlaceReq) (string, error) {
//		… change state …
//		_, err := outbox.Publish(c, o.qs, outbox.Message{Via: "events", Subject: "orders.placed", Data: b})
//		return id, err
//	}
package outbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/reactorgo/reactor/jobs"
)

// Queue is the jobs queue the publish jobs go to by default: configure it
// (with Workers) in jobs.Config.Queues.
const Queue = "outbox"

// Message is one message to publish.
type Message struct {
	// Via names the registered Publisher (Register).
	Via string `json:"via"`
	// Subject is the NATS subject, or the AMQP routing key.
	Subject string `json:"subject"`
	// Exchange is the AMQP exchange ("" is the default exchange, which
	// routes to the queue named by Subject). NATS ignores it.
	Exchange string `json:"exchange,omitempty"`
	// Header is copied into the message's headers.
	Header map[string]string `json:"header,omitempty"`
	// ContentType is the AMQP content type (default application/json);
	// NATS carries it as the Content-Type header when set.
	ContentType string `json:"contentType,omitempty"`
	Data        []byte `json:"data"`
	// ID is the deduplication id (default: derived from the job, stable
	// across its attempts and unique across processes). Set it to your own
	// business key to deduplicate across separate publishes too.
	ID string `json:"id,omitempty"`
}

// Publisher publishes one message with a deduplication id and returns once
// the broker confirmed it (an error means "maybe not published": the job
// retries with the same id).
type Publisher interface {
	Publish(ctx context.Context, id string, m Message) error
}

var publishers sync.Map // name → Publisher

// Register makes p available as Message.Via name. Register the publishers
// before the queues' Start: a job naming an unknown publisher fails
// permanently (dead letter; redrive it once the publisher exists).
// Registering a name again replaces its publisher.
func Register(name string, p Publisher) { publishers.Store(name, p) }

// ErrNoPublisher: a message names a publisher that is not registered.
var ErrNoPublisher = errors.New("outbox: no such publisher")

// Kind is the publish job kind: 100 attempts, backoff from 100ms up to a
// minute, 30s per attempt.
var Kind = jobs.Define("outbox.publish", publish, jobs.Queue(Queue), jobs.MaxAttempts(100),
	jobs.Backoff(100*time.Millisecond, time.Minute), jobs.Timeout(30*time.Second))

// Publish enqueues m for publishing. Called with a journaled handler's
// *reactor.Ctx it is transactional (output commit: the message exists, and
// will be published, iff the handler's input is durable); from outside it
// returns once the job is durable. opts are jobs options (Queue, Priority,
// MaxAttempts, Backoff, Delay …).
func Publish(ctx context.Context, qs *jobs.Queues, m Message, opts ...jobs.Option) (string, error) {
	if m.Via == "" || (m.Subject == "" && m.Exchange == "") {
		return "", errors.New("outbox: a message needs Via and a Subject or an Exchange")
	}
	return Kind.Enqueue(ctx, qs, m, opts...)
}

// DedupID is the id a job's message is published with: m.ID, or the
// job's queue, id and enqueue time — the same for every attempt, and not
// reused by another process whose journal restarts its sequence numbers.
func DedupID(j *jobs.Job[Message]) string {
	if j.Args.ID != "" {
		return j.Args.ID
	}
	return j.Queue + ":" + j.ID + ":" + strconv.FormatInt(j.EnqueuedAt.UnixNano(), 36)
}

func publish(ctx context.Context, j *jobs.Job[Message]) error {
	v, ok := publishers.Load(j.Args.Via)
	if !ok {
		return jobs.Permanent(fmt.Errorf("outbox: publisher %q: %w", j.Args.Via, ErrNoPublisher))
	}
	m := j.Args
	m.Header = maps.Clone(m.Header)
	if err := v.(Publisher).Publish(ctx, DedupID(j), m); err != nil {
		return fmt.Errorf("outbox: publish via %s to %s: %w", m.Via, m.Subject, err)
	}
	return nil
}
