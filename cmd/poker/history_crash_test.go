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
	must := func(want int, method, path, token string, body any) map[string]any {
		t.Helper()
		st, out, ok := call(p.url, method, path, token, body)
		if !ok || st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
		}
		return out
	}
	c := must(201, "POST", "/api/rooms", "", map[string]any{"title": "Sprint", "leader": "ann"})
	room, ann := c["room"].(string), c["token"].(string)
	base := "/api/rooms/" + room
	bob := must(201, "POST", base+"/members", "", map[string]any{"name": "bob"})["token"].(string)
	obs := must(201, "POST", base+"/members", "", map[string]any{"name": "olga", "role": "observer"})
	must(202, "POST", base+"/queue", ann, map[string]any{"stories": []string{"A", "B", "C"}})
	for i, est := range []string{"3", "8"} {
		must(202, "POST", base+"/session/next", ann, nil)
		must(202, "POST", base+"/votes", bob, map[string]any{"value": est})
		must(202, "POST", base+"/votes", ann, map[string]any{"value": fmt.Sprint(i + 1)})
		must(202, "POST", base+"/session/finish", ann, nil)
		must(202, "POST", base+"/estimate", ann, map[string]any{"value": est})
	}
	must(202, "POST", base+"/session/revote", ann, nil)
	must(202, "POST", base+"/leader", ann, map[string]any{"member": obs["member"]})
	before := must(200, "GET", base+"/history", bob, nil)
	view := must(200, "GET", base, "", nil)

	p.kill9()
	p = startPoker(t, bin, data)
	if after := must(200, "GET", base+"/history", bob, nil); !reflect.DeepEqual(before, after) {
		t.Fatalf("history after kill -9:\n%v\nbefore:\n%v", after, before)
	}
	if got := must(200, "GET", base, "", nil); !reflect.DeepEqual(view, got) {
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
