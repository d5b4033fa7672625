package outbox

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS publishes to JetStream: the id is the Nats-Msg-Id header, so the
// stream's duplicate window (2 minutes by default; make it longer than
// the outbox's retry horizon if a confirmation may be lost for longer)
// stores one copy however often a retry publishes it.
type NATS struct{ js jetstream.JetStream }

var _ Publisher = (*NATS)(nil)

// NewNATS returns a publisher on js.
func NewNATS(js jetstream.JetStream) *NATS { return &NATS{js: js} }

// Publish publishes m and waits for the stream's acknowledgement.
func (p *NATS) Publish(ctx context.Context, id string, m Message) error {
	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{}}
	for k, v := range m.Header {
		msg.Header.Set(k, v)
	}
	if m.ContentType != "" {
		msg.Header.Set("Content-Type", m.ContentType)
	}
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("outbox: jetstream publish: %w", err)
	}
	return nil // a duplicate (ack.Duplicate) was stored before: done too
}
