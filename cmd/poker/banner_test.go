package main_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBinaryPublicURLAndAdminAddr runs the real binary with -public-url
// and -admin-addr: the banner names the URL to open and the invite links'
// base, /api/config gives the UI that base, and the operator pages are on
// the admin listener only.
func TestBinaryPublicURLAndAdminAddr(t *testing.T) {
	bin := buildPoker(t)
	admin := freeAddr(t)
	p := startPoker(t, bin, t.TempDir(), "-public-url", "https://poker.example.com/", "-admin-addr", admin)
	get := func(url string) (int, string) {
		t.Helper()
		res, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(p.url + "/api/config"); code != 200 || !strings.Contains(body, `"publicUrl":"https://poker.example.com"`) {
		t.Fatalf("config: %d %s", code, body)
	}
	for _, path := range []string{"/metrics", "/status"} {
		if code, _ := get(p.url + path); code != http.StatusNotFound {
			t.Errorf("%s on the public listener: %d", path, code)
		}
		var code int
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			res, err := client.Get("http://" + admin + path)
			if err == nil {
				res.Body.Close()
				code = res.StatusCode
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("admin listener: %v", err)
			}
		}
		if code != 200 {
			t.Errorf("%s on the admin listener: %d", path, code)
		}
	}
	p.kill9()
	log := p.log.String()
	if !strings.Contains(log, "Planning poker is running: open "+p.url) || !strings.Contains(log, "Invite links point to https://poker.example.com") {
		t.Errorf("banner:\n%s", log)
	}
}
