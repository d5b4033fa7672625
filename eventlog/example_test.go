package eventlog_test

import (
	"fmt"

	"github.com/reactorgo/reactor/eventlog"
)

func ExampleLog() {
	log := eventlog.New(100)
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
