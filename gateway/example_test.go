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
