package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// The default address serves this machine only.
func TestDefaultAddrIsLoopback(t *testing.T) {
	host, _, err := net.SplitHostPort(defaultAddr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("default -addr %q does not listen on loopback only", defaultAddr)
	}
}

func TestListenURLs(t *testing.T) {
	local, shared := listenURLs(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
	if local != "http://127.0.0.1:8080" || shared != "" {
		t.Errorf("loopback: %q %q", local, shared)
	}
	local, shared = listenURLs(&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 9000})
	if local != "http://10.1.2.3:9000" || shared != local {
		t.Errorf("one address: %q %q", local, shared)
	}
	local, shared = listenURLs(&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080})
	if local != "http://localhost:8080" || (shared != "" && (!strings.HasPrefix(shared, "http://") || !strings.HasSuffix(shared, ":8080") ||
		strings.Contains(shared, "localhost") || strings.Contains(shared, "127.0.0.1"))) {
		t.Errorf("every interface: %q %q", local, shared)
	}
}

func TestBanner(t *testing.T) {
	var b bytes.Buffer
	printBanner(&b, "http://127.0.0.1:8080", "", "")
	if s := b.String(); !strings.Contains(s, "open http://127.0.0.1:8080") || !strings.Contains(s, "-addr :8080") {
		t.Errorf("loopback banner: %q", s)
	}
	b.Reset()
	printBanner(&b, "http://localhost:8080", "http://10.1.2.3:8080", "https://poker.example.com")
	if s := b.String(); !strings.Contains(s, "open http://localhost:8080") || !strings.Contains(s, "Invite links point to https://poker.example.com") {
		t.Errorf("public banner: %q", s)
	}
}

// Flags that cannot work are refused before anything listens.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-public-url", "poker.example.com"},
		{"-public-url", "ftp://poker.example.com"},
		{"-admin-public", "-admin-addr", "127.0.0.1:0"},
	} {
		err := run(append(args, "-addr", "127.0.0.1:0", "-data", t.TempDir()))
		if err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
