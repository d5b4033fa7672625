package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor/jobs"
	"github.com/reactorgo/reactor/poker"
)

// TestWebhookDialRefusesPrivate: the DNS-rebinding case. The host looked
// public when it was checked (the fake resolver says so) but the address
// actually dialled is loopback: the dialer's hook refuses the connection,
// and the receiver never sees a request.
func TestWebhookDialRefusesPrivate(t *testing.T) {
	hit := make(chan struct{}, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- struct{}{} }))
	defer rcv.Close()
	h := newWebhooks(Config{WebhookTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	h.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	err := h.deliver(context.Background(), &jobs.Job[webhookArgs]{ID: "j1", Attempt: 1,
		Args: webhookArgs{URL: rcv.URL + "/hook", Secret: "s", Body: []byte(`{}`)}})
	if !errors.Is(err, errPrivateAddr) {
		t.Fatalf("delivery to loopback behind a public-looking name: %v", err)
	}
	if strings.Contains(err.Error(), "/hook") {
		t.Fatalf("error shows the URL's path: %v", err)
	}
	select {
	case <-hit:
		t.Fatal("the receiver was reached")
	default:
	}
	// And the check before the delivery, when the resolver now answers a
	// private address.
	h.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")}, nil
	}
	err = h.deliver(context.Background(), &jobs.Job[webhookArgs]{ID: "j1", Attempt: 2,
		Args: webhookArgs{URL: "https://rebind.example/hook", Secret: "s", Body: []byte(`{}`)}})
	if !errors.Is(err, errPrivateAddr) {
		t.Fatalf("host resolving to a private address at delivery: %v", err)
	}
}

func TestPrivateAddr(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "127.255.0.9", "10.0.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
		"0.0.0.0", "0.1.2.3", "100.64.0.1", "255.255.255.255", "224.0.0.1", "::1", "::", "fd00::1", "fe80::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::", "::7f00:1", "ff02::1", "fec0::1",
		"2001:db8::1", "198.18.0.1", "192.0.0.8"} {
		if !privateAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s is allowed", s)
		}
	}
	for _, s := range []string{"93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::", "::ffff:8.8.8.8"} {
		if privateAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s is refused", s)
		}
	}
}

// FuzzWebhookURL: checkWebhookURL never panics, and what it accepts
// without allowPrivate is an absolute http(s) URL with a host whose
// addresses are all public; what it accepts, the domain's own shape check
// either accepts too or refuses with an InvalidError on "webhook".
func FuzzWebhookURL(f *testing.F) {
	for _, s := range []string{"https://example.com/hook", "http://127.0.0.1/", "http://[::1]:80/", "ftp://x/",
		"http://localhost", "https://user:pw@example.com:8443/a?b=c#d", "http://0x7f.1/", "http://[fe80::1%25eth0]/",
		"HTTP://EXAMPLE.COM", "http://10.0.0.1.nip.io/", "javascript:alert(1)", "http:/x", "//example.com", "http://ex ample.com/",
		"http://[::ffff:169.254.169.254]/", "https://93.184.215.14:0/"} {
		f.Add(s)
	}
	// Names resolve to a public address, except those meant to look local.
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, err := netip.ParseAddr(host); err == nil {
			return []netip.Addr{a}, nil
		}
		if strings.Contains(strings.ToLower(host), "localhost") {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		if strings.HasPrefix(host, "10.") {
			return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("93.184.215.14")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := checkWebhookURL(context.Background(), raw, false, lookup)
		if err != nil {
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("accepted %q that does not parse: %v", raw, perr)
		}
		if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
		addrs, _ := lookup(context.Background(), u.Hostname())
		for _, a := range addrs {
			if privateAddr(a) {
				t.Fatalf("accepted %q resolving to %s", raw, a)
			}
		}
		req := poker.CreateRequest{Title: "t", Leader: "ann", Webhook: raw}
		if err := req.Normalize(); err != nil {
			var inv *poker.InvalidError
			if !errors.As(err, &inv) || inv.Field != "webhook" {
				t.Fatalf("Normalize of accepted %q: %v", raw, err)
			}
		}
	})
}
