package cluster_test

import (
	"regexp"
	"testing"

	"github.com/reactorgo/reactor/cluster"
)

func TestPartitioner(t *testing.T) {
	if _, err := cluster.NewPartitioner(0); err == nil {
		t.Fatal("NewPartitioner(0) succeeded")
	}
	p, err := cluster.NewPartitioner(16)
	if err != nil {
		t.Fatal(err)
	}
	// Stable: FNV-1a 64 of "42" mod 16, fixed forever (a change moves keys
	// to other journals).
	if got := p.Child("/rooms", "42"); got.Index != 0x07ee7e07b4b19223%16 || got.Count != 16 || got.Group != "/rooms" {
		t.Fatalf("Child(/rooms, 42) = %+v", got)
	}
	counts := make([]int, 16)
	for i := range 16000 {
		counts[p.Child("/rooms", string(rune('a'+i%26))+string(rune(i))).Index]++
	}
	for i, c := range counts {
		if c < 600 || c > 1400 {
			t.Fatalf("partition %d got %d of 16000 keys: %v", i, c, counts)
		}
	}
	if s := cluster.Service("/lobby"); s.Count != 1 || s.Index != 0 {
		t.Fatalf("Service = %+v", s)
	}
}

func TestPartitionToken(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	seen := map[string]cluster.Partition{}
	groups := []string{"/rooms", "/rooms/", "rooms", "/ro.oms", "/ro*oms", "/ro>oms", "/ro oms", "/ünï", "/a/b", "/a_b", "/" + string(make([]byte, 300))}
	for _, g := range groups {
		for i := range 3 {
			p := cluster.Partition{Group: g, Index: i, Count: 3}
			tok := p.Token()
			if !safe.MatchString(tok) || len(tok) > 64 {
				t.Fatalf("Token(%q) = %q: not NATS-safe", p, tok)
			}
			if q, dup := seen[tok]; dup {
				t.Fatalf("%s and %s share token %q", p, q, tok)
			}
			seen[tok] = p
		}
	}
	p := cluster.Service("/rooms")
	if got := cluster.JournalStream("c1", p); got != "c1_j_"+p.Token() {
		t.Fatalf("JournalStream = %q", got)
	}
}
