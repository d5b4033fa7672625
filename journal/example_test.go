package journal_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/reactorgo/reactor/journal"
)

func Example() {
	dir, err := os.MkdirTemp("", "journal-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	j, err := journal.Open(ctx, journal.Options{Dir: dir}) // Sync durability by default
	if err != nil {
		log.Fatal(err)
	}
	durable := make(chan error, 2)
	for _, name := range []string{"ann", "bob"} {
		rec := &journal.Record{Service: "/rooms/42", Method: "room.join", Payload: []byte(name)}
		// done runs on the journal's writer goroutine once the record is fsynced.
		if _, err := j.Append(ctx, rec, func(seq uint64, err error) { durable <- err }); err != nil {
			log.Fatal(err)
		}
	}
	for range 2 {
		if err := <-durable; err != nil {
			log.Fatal(err)
		}
	}
	j.Close()

	// After a restart: replay everything after the last checkpoint (here: 0).
	j, err = journal.Open(ctx, journal.Options{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	err = j.Replay(ctx, 0, func(r *journal.Record) error {
		fmt.Println(r.Seq, r.Service, r.Method, string(r.Payload))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("next seq:", j.LastSeq()+1)
	// Output:
	// 1 /rooms/42 room.join ann
	// 2 /rooms/42 room.join bob
	// next seq: 3
}
