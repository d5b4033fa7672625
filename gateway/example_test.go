package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/gateway"
)

func Example() {
	type joinReq struct {
		Name string `json:"name"`
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req joinReq
		if err := gateway.DecodeJSON(w, r, &req, 0); err != nil {
			gateway.WriteError(w, err)
			return
		}
		if req.Name == "busy" { // stands for a send to a full inbox
			gateway.WriteError(w, fmt.Errorf("send /rooms/1: %w", reactor.ErrBusy))
			return
		}
		gateway.JSON(w, http.StatusCreated, map[string]string{"member": "m1"})
	})
	for _, body := range []string{`{"name":"ann"}`, `{"nom":"ann"}`, `{"name":"busy"}`} {
		r := httptest.NewRequest("POST", "/api/rooms/r1/members", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Header().Get("Retry-After"), " ", w.Body.String())
	}
	// Output:
	// 201  {"member":"m1"}
	// 400  {"error":"invalid_body","message":"unknown field \"nom\""}
	// 503 1 {"error":"busy","message":"server is busy, retry later"}
}

func ExampleEventLog() {
	log := gateway.NewEventLog(100)
	ann := log.Subscribe("ann", 8)
	log.Append("vote_cast", []byte(`{"member":"bob"}`))
	log.AppendTo("ann", "rejected", []byte(`{"error":"not_voting"}`))
	log.AppendTo("bob", "rejected", []byte(`{"error":"room_full"}`))
	ann.Close()
	for e := range ann.Events() {
		fmt.Println(e.ID, e.Type, string(e.Data))
	}
	events, ok := log.Since(0)
	fmt.Println(len(events), ok)
	// Output:
	// 1 vote_cast {"member":"bob"}
	// 2 rejected {"error":"not_voting"}
	// 1 true
}
