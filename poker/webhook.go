package poker

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reactorgo/reactor"
)

// MaxWebhookLen bounds a webhook URL (bytes).
const MaxWebhookLen = 2048

// Webhook is where a room delivers its finished rounds, and the secret the
// deliveries are signed with. It is part of the room's state (journal and
// checkpoints), because a delivery needs it after a restart; it is never
// part of a View.
type Webhook struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// WebhookPayload is the JSON body of a webhook delivery: one finished
// round. Votes and names are keyed by member id.
type WebhookPayload struct {
	Room       string            `json:"room"`
	Title      string            `json:"title"`
	Round      int               `json:"round"`
	Story      string            `json:"story"`
	Votes      map[string]string `json:"votes"`
	Names      map[string]string `json:"names"`
	Stats      Stats             `json:"stats"`
	FinishedAt time.Time         `json:"finishedAt"`
}

// Finished is what a room with a webhook hands to Options.OnFinished when a
// round is finished: where to deliver, and what.
type Finished struct {
	Webhook Webhook
	Payload WebhookPayload
}

// NewWebhookSecret returns a webhook signing secret: 256 random bits, hex
// (crypto/rand). It is drawn outside the room's turn and journaled with
// the create command, so a replay restores the same secret.
func NewWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on its own)
	return hex.EncodeToString(b)
}

// cleanWebhook checks the shape of a webhook URL: absolute http or https
// with a host, no control characters, at most MaxWebhookLen bytes. Whether
// the host may be reached (loopback and private addresses) is the HTTP
// server's decision: it needs DNS, which the domain does not do.
func cleanWebhook(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return "", nil
	case len(s) > MaxWebhookLen:
		return "", invalid("webhook", "webhook must be at most %d bytes", MaxWebhookLen)
	case !utf8.ValidString(s) || !printable(s) || strings.ContainsAny(s, " \t"):
		return "", invalid("webhook", "webhook must be a URL without spaces or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", invalid("webhook", "webhook is not a valid URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", invalid("webhook", "webhook must be an http:// or https:// URL")
	}
	if u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return "", invalid("webhook", "webhook must name a host")
	}
	return s, nil
}

// finished hands a finished round to Options.OnFinished, inside the finish
// command's turn: whatever the hook sends (a job enqueued transactionally)
// exists iff the finish is durable.
func (r *Room) finished(c *reactor.Ctx, round Round) {
	hook := r.rooms.opt.OnFinished
	if r.Webhook == nil || hook == nil {
		return
	}
	f := Finished{Webhook: *r.Webhook, Payload: WebhookPayload{
		Room: r.ID, Title: r.Title, Round: round.Round, Story: round.Story,
		Votes: maps(round.Votes), Names: maps(round.Names), Stats: round.Stats.clone(), FinishedAt: round.FinishedAt,
	}}
	if err := hook(c, f); err != nil {
		// The round is finished and durable whatever happens here; the
		// delivery is what is lost, so say so loudly.
		r.rooms.log.Error("poker: webhook delivery not enqueued", "room", r.ID, "round", round.Round, "err", err)
	}
}
