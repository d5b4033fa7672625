package main_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// keyed sends a member command with an Idempotency-Key and returns the
// status and the raw body.
func keyed(t *testing.T, url, path, token, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestRetriedCommandsAfterKill9: a retried command gets its first answer —
// status and body, refusals included — before and after kill -9; a key
// reused for another command or another body is refused with 422 and
// changes nothing.
func TestRetriedCommandsAfterKill9(t *testing.T) {
	bin := buildPoker(t)
	data := t.TempDir()
	p := startPoker(t, bin, data)
	st, out, ok := call(p.url, "POST", "/api/rooms", "", map[string]any{"title": "retry", "leader": "ann"})
	if !ok || st != 201 {
		t.Fatalf("create: %d", st)
	}
	room, ann := out["room"].(string), out["token"].(string)
	st, out, ok = call(p.url, "POST", "/api/rooms/"+room+"/members", "", map[string]string{"name": "bob"})
	if !ok || st != 201 {
		t.Fatalf("join: %d", st)
	}
	bob := out["token"].(string)
	base := "/api/rooms/" + room

	type try struct {
		path, token, key, body string
		status                 int
	}
	tries := []try{
		{base + "/session", bob, "k1", `{"story":"bob may not"}`, 403},
		{base + "/session", ann, "k2", `{"story":"login"}`, 202},
		{base + "/votes", bob, "k3", `{"value":"3"}`, 202},
	}
	first := map[string]string{}
	for _, tr := range tries {
		st, body := keyed(t, p.url, tr.path, tr.token, tr.key, tr.body)
		if st != tr.status {
			t.Fatalf("%s %s: %d %s, want %d", tr.path, tr.key, st, body, tr.status)
		}
		first[tr.key] = body
	}
	check := func(when string) {
		t.Helper()
		for _, tr := range tries {
			st, body := keyed(t, p.url, tr.path, tr.token, tr.key, tr.body)
			if st != tr.status || body != first[tr.key] {
				t.Fatalf("%s: retry of %s answered %d %s, first answer was %d %s", when, tr.key, st, body, tr.status, first[tr.key])
			}
		}
		// The same key for a different body, or a different command.
		if st, body := keyed(t, p.url, base+"/votes", bob, "k3", `{"value":"8"}`); st != 422 {
			t.Fatalf("%s: vote 8 with the key of vote 3: %d %s", when, st, body)
		}
		if st, body := keyed(t, p.url, base+"/session/finish", ann, "k2", `{}`); st != 422 {
			t.Fatalf("%s: finish with the key of start: %d %s", when, st, body)
		}
		v := getView(t, p.url, room, bob)
		if v.Session == nil || v.Session.Status != "voting" || v.Session.MyVote == nil || *v.Session.MyVote != "3" {
			t.Fatalf("%s: a refused reuse changed the room: %+v", when, v.Session)
		}
	}
	check("before the kill")
	p.kill9()
	p = startPoker(t, bin, data)
	check("after kill -9")
	p.kill9()
}
