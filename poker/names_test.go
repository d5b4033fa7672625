package poker_test

import (
	"context"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/poker"
)

// TestLookAlikeNamesAreTaken: a name that renders like a member's name is
// refused as taken; a name with nothing visible is refused as invalid.
func TestLookAlikeNamesAreTaken(t *testing.T) {
	rt, err := reactor.New(reactor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := poker.Register(rt, poker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	defer rooms.Close()
	c, err := rooms.Create(ctx, poker.CreateRequest{Title: "t", Leader: "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rooms.Join(ctx, c.Room, poker.JoinRequest{Name: "Jos\u00e9"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"bob", "BOB", "\uff22\uff2f\uff22", // fullwidth
		"Bob\u3164", "Bob\u200b", "B\u200dob", // Hangul filler, zero-width space and joiner
		"\u0412\u043eb",      // Cyrillic Ve, o
		"\u0392\u03bfb",      // Greek Beta, omicron
		"Jose\u0301", "JOSÉ", // decomposed, upper case
	} {
		_, err := rooms.Join(ctx, c.Room, poker.JoinRequest{Name: name})
		if !errors.Is(err, poker.ErrNameTaken) {
			t.Errorf("join as %q (%+q): %v, want name taken", name, name, err)
		}
	}
	for _, name := range []string{"\u3164", "\u200b\u200b", "\u0301\u0301", " \u115f "} {
		_, err := rooms.Join(ctx, c.Room, poker.JoinRequest{Name: name})
		var inv *poker.InvalidError
		if !errors.As(err, &inv) || inv.Field != "name" {
			t.Errorf("join as %+q: %v, want an invalid name", name, err)
		}
	}
	if _, err := rooms.Join(ctx, c.Room, poker.JoinRequest{Name: "Rob"}); err != nil {
		t.Fatalf("a different name: %v", err)
	}
}

// FuzzNames: normalising never panics, and a name the request accepts is
// the same name as itself after a round of normalisation.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"Bob", "\uff22\uff2f\uff22", "Bob\u3164", "\u0412\u043eb", "Jose\u0301", "\u3164", "rn m", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		req := poker.JoinRequest{Name: s}
		if err := req.Normalize(); err != nil {
			return
		}
		if !utf8.ValidString(req.Name) || req.Name == "" {
			t.Fatalf("%+q accepted as %+q", s, req.Name)
		}
		again := poker.JoinRequest{Name: req.Name}
		if err := again.Normalize(); err != nil || again.Name != req.Name {
			t.Fatalf("%+q: normalised %+q, then %+q (%v)", s, req.Name, again.Name, err)
		}
		if !poker.SameName(s, req.Name) {
			t.Fatalf("%+q and its normal form %+q are different names", s, req.Name)
		}
	})
}
