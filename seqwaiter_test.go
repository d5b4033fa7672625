package reactor

import (
	"context"
	"testing"
)

// TestSeqWaiterNeverReportsAnAcknowledgedRecordFailed: a record advanced
// as durable while a waiter checks it must never look failed (reading
// durable before settled made it look so: Start then failed with "journal
// record failed" on a healthy journal).
func TestSeqWaiterNeverReportsAnAcknowledgedRecordFailed(t *testing.T) {
	var w seqWaiter
	const n = 200_000
	done := make(chan error, 1)
	go func() {
		for seq := uint64(1); seq <= n; seq++ {
			if err := w.wait(context.Background(), seq); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for seq := uint64(1); seq <= n; seq++ {
		w.advance(seq, true)
	}
	if err := <-done; err != nil {
		t.Fatalf("an acknowledged record looked failed: %v", err)
	}
}
