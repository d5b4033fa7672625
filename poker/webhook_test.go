package poker_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/poker"
	"github.com/reactorgo/reactor/reactortest"
)

// TestOnFinished: a room created with a webhook hands each finished round
// to Options.OnFinished from the finish turn, with the webhook and secret
// the create answered; a room without one does not.
func TestOnFinished(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var got []poker.Finished
	rooms := startRooms(t, reactor.Config{CheckShared: reactortest.NoAliasing(t)}, poker.Options{OnFinished: func(c *reactor.Ctx, f poker.Finished) error {
		if c == nil {
			t.Error("OnFinished outside a turn")
		}
		mu.Lock()
		got = append(got, f)
		mu.Unlock()
		return nil
	}})

	play := func(req poker.CreateRequest) poker.Credentials {
		ann, err := rooms.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(rooms.Start(ctx, ann.Room, ann.Token, poker.StartRequest{Story: "Login"}))
		must(rooms.Vote(ctx, ann.Room, ann.Token, poker.VoteRequest{Value: "5"}))
		must(rooms.Finish(ctx, ann.Room, ann.Token))
		return ann
	}
	plain := play(poker.CreateRequest{Title: "Plain", Leader: "ann"})
	if plain.WebhookSecret != "" {
		t.Fatalf("secret without a webhook: %q", plain.WebhookSecret)
	}
	hooked := play(poker.CreateRequest{Title: " Hooked ", Leader: "ann", Webhook: " https://example.com/h "})
	if len(hooked.WebhookSecret) != 64 {
		t.Fatalf("secret %q", hooked.WebhookSecret)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("OnFinished called %d times, want 1", len(got))
	}
	f := got[0]
	if f.Webhook.URL != "https://example.com/h" || f.Webhook.Secret != hooked.WebhookSecret {
		t.Fatalf("webhook %+v", f.Webhook)
	}
	p := f.Payload
	if p.Room != hooked.Room || p.Title != "Hooked" || p.Story != "Login" || p.Round != 1 ||
		p.Votes[hooked.Member] != "5" || p.Names[hooked.Member] != "ann" || p.Stats.Votes != 1 || p.FinishedAt.IsZero() {
		t.Fatalf("payload %+v", p)
	}
	// The view never shows the webhook.
	v, err := rooms.State(ctx, hooked.Room, hooked.Token)
	if err != nil {
		t.Fatal(err)
	}
	if v.Title != "Hooked" {
		t.Fatalf("view %+v", v)
	}
}

func TestWebhookShape(t *testing.T) {
	for _, u := range []string{"ftp://example.com/", "example.com/hook", "http://", "http:///x", "https://exa mple.com/",
		"javascript:alert(1)", "https://example.com/\x00", "mailto:a@b.c"} {
		r := poker.CreateRequest{Title: "t", Leader: "ann", Webhook: u}
		var inv *poker.InvalidError
		if err := r.Normalize(); !errors.As(err, &inv) || inv.Field != "webhook" {
			t.Errorf("%q: %v", u, err)
		}
	}
}
