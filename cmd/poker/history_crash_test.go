package main_test

import (
	"fmt"
	"reflect"
	"testing"
)

// TestHistorySurvivesKill9: finished rounds, their agreed estimates, roles,
// the story queue and the leader hand-off, all answered 201/202, are there
// after SIGKILL and a restart on the same -data.
func TestHistorySurvivesKill9(t *testing.T) {
	bin := buildPoker(t)
	data := t.TempDir()
	p := startPoker(t, bin, data)
	c := p.must(t, 201, "POST", "/api/rooms", "", map[string]any{"title": "Sprint", "leader": "ann"})
	room, ann := c["room"].(string), c["token"].(string)
	base := "/api/rooms/" + room
	bob := p.must(t, 201, "POST", base+"/members", "", map[string]any{"name": "bob"})["token"].(string)
	obs := p.must(t, 201, "POST", base+"/members", "", map[string]any{"name": "olga", "role": "observer"})
	p.must(t, 202, "POST", base+"/queue", ann, map[string]any{"stories": []string{"A", "B", "C"}})
	for i, est := range []string{"3", "8"} {
		p.must(t, 202, "POST", base+"/session/next", ann, nil)
		p.must(t, 202, "POST", base+"/votes", bob, map[string]any{"value": est})
		p.must(t, 202, "POST", base+"/votes", ann, map[string]any{"value": fmt.Sprint(i + 1)})
		p.must(t, 202, "POST", base+"/session/finish", ann, nil)
		p.must(t, 202, "POST", base+"/estimate", ann, map[string]any{"value": est})
	}
	p.must(t, 202, "POST", base+"/session/revote", ann, nil)
	p.must(t, 202, "POST", base+"/leader", ann, map[string]any{"member": obs["member"]})
	before := p.must(t, 200, "GET", base+"/history", bob, nil)
	view := p.must(t, 200, "GET", base, "", nil)

	p.kill9()
	p = startPoker(t, bin, data)
	if after := p.must(t, 200, "GET", base+"/history", bob, nil); !reflect.DeepEqual(before, after) {
		t.Fatalf("history after kill -9:\n%v\nbefore:\n%v", after, before)
	}
	if got := p.must(t, 200, "GET", base, "", nil); !reflect.DeepEqual(view, got) {
		t.Fatalf("room after kill -9:\n%v\nbefore:\n%v", got, view)
	}
	rounds := before["rounds"].([]any)
	if len(rounds) != 2 || rounds[1].(map[string]any)["estimate"] != "8" || rounds[0].(map[string]any)["story"] != "A" {
		t.Fatalf("history %v", before)
	}
	if view["leader"] != obs["member"] || fmt.Sprint(view["queue"]) != "[C]" {
		t.Fatalf("room %v", view)
	}
}
