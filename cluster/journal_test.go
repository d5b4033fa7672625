package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reactorgo/reactor/cluster"
	"github.com/reactorgo/reactor/cluster/clustertest"
	"github.com/reactorgo/reactor/journal"
)

func openJournal(t testing.TB, nc *nats.Conn, cl string, l *cluster.Lease, replicas int) *cluster.Journal {
	t.Helper()
	j, err := cluster.OpenJournal(ctxT(t, 20*time.Second), nc, cluster.JournalConfig{
		Cluster: cl, Partition: l.Partition(), Lease: l, Replicas: replicas, MaxPending: 256,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// acks records which appends were acknowledged.
type acks struct {
	mu     sync.Mutex
	ok     map[uint64]string // seq -> payload
	failed map[uint64]error
	last   uint64
	order  error
}

func newAcks() *acks { return &acks{ok: map[uint64]string{}, failed: map[uint64]error{}} }

func (a *acks) done(payload string) func(uint64, error) {
	return func(seq uint64, err error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if seq <= a.last && a.order == nil {
			a.order = fmt.Errorf("done for seq %d after seq %d", seq, a.last)
		}
		a.last = seq
		if err != nil {
			a.failed[seq] = err
		} else {
			a.ok[seq] = payload
		}
	}
}

func (a *acks) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ok)
}

// appendLoop appends records "<who>-<i>" until stop is closed or Append fails.
func appendLoop(j *cluster.Journal, who string, a *acks, stop <-chan struct{}) (appended int, err error) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return i, nil
		default:
		}
		payload := fmt.Sprintf("%s-%d", who, i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := j.Append(ctx, &journal.Record{Service: "/rooms/1", Method: "m", Payload: []byte(payload)}, a.done(payload))
		cancel()
		if err != nil {
			return i, err
		}
	}
}

func replayAll(t testing.TB, j *cluster.Journal) []journal.Record {
	t.Helper()
	var recs []journal.Record
	err := j.Replay(ctxT(t, 30*time.Second), 0, func(r *journal.Record) error {
		c := *r
		c.Payload = append([]byte(nil), r.Payload...)
		recs = append(recs, c)
		return nil
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	return recs
}

// A stale owner whose clock claims it is still valid keeps appending while a
// new owner takes over: after the new owner's fence every stale append
// fails with ErrFenced, and the log holds exactly the stale owner's acked
// records, then the new owner's — never interleaved.
func TestJournalStaleOwnerCannotWrite(t *testing.T) {
	srv := clustertest.Single(t)
	const ttl = time.Second
	p := cluster.Service("/rooms")
	ncA, ncB := srv.Connect(t), srv.Connect(t)
	la := acquireEventually(t, openLeases(t, ncA, "js", "a", ttl, 1), p, time.Second)
	ja := openJournal(t, ncA, "js", la, 1)
	cluster.IgnoreLease(ja)

	ackA := newAcks()
	stop := make(chan struct{})
	var aErr error
	var aWG sync.WaitGroup
	aWG.Add(1)
	go func() { defer aWG.Done(); _, aErr = appendLoop(ja, "A", ackA, stop) }()
	for ackA.count() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	cluster.PauseRenewals(la) // A's lease expires; A, ignoring it, keeps writing

	lb := acquireEventually(t, openLeases(t, ncB, "js", "b", ttl, 1), p, 5*ttl)
	if lb.Epoch() <= la.Epoch() {
		t.Fatalf("epoch %d <= %d", lb.Epoch(), la.Epoch())
	}
	jb := openJournal(t, ncB, "js", lb, 1)
	ackB := newAcks()
	for i := range 50 {
		payload := fmt.Sprintf("B-%d", i)
		if _, err := jb.Append(ctxT(t, 5*time.Second), &journal.Record{Service: "/rooms/1", Method: "m", Payload: []byte(payload)}, ackB.done(payload)); err != nil {
			t.Fatal(err)
		}
	}
	aWG.Wait() // A stops on its own: its appends fail
	close(stop)
	if !errors.Is(aErr, cluster.ErrFenced) {
		t.Fatalf("stale owner's Append error = %v, want ErrFenced", aErr)
	}
	if err := ja.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ja.Stats().Err; !errors.Is(err, cluster.ErrFenced) {
		t.Fatalf("stale journal Stats().Err = %v", err)
	}
	if err := jb.Close(); err != nil {
		t.Fatal(err)
	}
	if len(ackB.ok) != 50 || ackB.order != nil || ackA.order != nil {
		t.Fatalf("B acked %d of 50; order errors %v %v", len(ackB.ok), ackA.order, ackB.order)
	}
	fencedA := 0
	for _, err := range ackA.failed {
		if !errors.Is(err, cluster.ErrFenced) {
			t.Fatalf("stale append failed with %v, want ErrFenced", err)
		}
		fencedA++
	}
	if fencedA == 0 {
		t.Fatal("no stale append was refused: the test raced nothing")
	}

	recs := replayAll(t, jb)
	seenB := false
	seen := map[uint64]bool{}
	for _, r := range recs {
		payload := string(r.Payload)
		if seen[r.Seq] {
			t.Fatalf("seq %d twice", r.Seq)
		}
		seen[r.Seq] = true
		switch {
		case strings.HasPrefix(payload, "A-"):
			if seenB {
				t.Fatalf("stale record %q at seq %d after the new owner's", payload, r.Seq)
			}
			if ackA.ok[r.Seq] != payload {
				t.Fatalf("record %q at seq %d was not acked to A (ack: %q)", payload, r.Seq, ackA.ok[r.Seq])
			}
		case strings.HasPrefix(payload, "B-"):
			seenB = true
			if ackB.ok[r.Seq] != payload {
				t.Fatalf("record %q at seq %d not acked to B", payload, r.Seq)
			}
		}
	}
	for seq, payload := range ackA.ok {
		if !seen[seq] {
			t.Fatalf("acked record %q (seq %d) missing", payload, seq)
		}
	}
	if len(recs) != len(ackA.ok)+len(ackB.ok) {
		t.Fatalf("%d records replayed, %d acked", len(recs), len(ackA.ok)+len(ackB.ok))
	}
	t.Logf("A: %d acked, %d fenced; B: %d", len(ackA.ok), fencedA, len(ackB.ok))
}

// A record with a flipped bit in the stream is refused by Replay, with an
// error naming stream and seq; fn never sees it. So is a record of an
// older epoch after a newer one (interleaved owners).
func TestJournalReplayRefusesCorruptRecord(t *testing.T) {
	srv := clustertest.Single(t)
	nc := srv.Connect(t)
	js := jsOf(t, nc)
	for _, tc := range []struct {
		name, reason string
		frame        func(tok string, epoch, seq uint64) []byte
	}{
		{"flipped bit", "checksum", func(tok string, epoch, seq uint64) []byte {
			b, _ := cluster.EncodeFrame(tok, epoch, seq, false, &journal.Record{Service: "/x", Payload: []byte("evil payload")})
			b[len(b)-7] ^= 0x10
			return b
		}},
		{"older epoch", "epoch", func(tok string, epoch, seq uint64) []byte {
			b, _ := cluster.EncodeFrame(tok, epoch-1, seq, false, &journal.Record{Service: "/x", Payload: []byte("evil payload")})
			return b
		}},
		{"other partition", "partition", func(_ string, epoch, seq uint64) []byte {
			b, _ := cluster.EncodeFrame("other", epoch, seq, false, &journal.Record{Service: "/x", Payload: []byte("evil payload")})
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := "cr" + fmt.Sprint(len(tc.reason))
			p := cluster.Service("/c/" + tc.reason)
			l := acquireEventually(t, openLeases(t, nc, cl, "a", 5*time.Second, 1), p, time.Second)
			j := openJournal(t, nc, cl, l, 1)
			for i := range 3 {
				if _, err := j.Append(ctxT(t, 5*time.Second), &journal.Record{Service: "/x", Payload: []byte(fmt.Sprint(i))}, nil); err != nil {
					t.Fatal(err)
				}
			}
			j.Close()
			bad := j.LastSeq() + 1
			if _, err := js.Publish(ctxT(t, 5*time.Second), cluster.JournalSubject(cl, p), tc.frame(p.Token(), l.Epoch(), bad)); err != nil {
				t.Fatal(err)
			}
			var got []uint64
			err := j.Replay(ctxT(t, 10*time.Second), 0, func(r *journal.Record) error {
				if string(r.Payload) == "evil payload" {
					t.Fatalf("fn got the bad record at seq %d", r.Seq)
				}
				got = append(got, r.Seq)
				return nil
			})
			var ce *cluster.CorruptError
			if !errors.Is(err, cluster.ErrCorrupt) || !errors.As(err, &ce) || ce.Seq != bad || ce.Stream != cluster.JournalStream(cl, p) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Replay = %v, want a CorruptError for seq %d about %s", err, bad, tc.reason)
			}
			if len(got) != 3 {
				t.Fatalf("fn saw seqs %v, want the 3 good records", got)
			}
		})
	}
}

// One of three NATS servers (the stream's leader) is killed under append
// load on R3: appends go on after a short wait, and every acknowledged
// record is in the stream, in order, exactly once.
func TestJournalSurvivesNATSServerKill(t *testing.T) {
	srvs := clustertest.Cluster(t)
	nc := srvs.Connect(t)
	p := cluster.Service("/rooms")
	l := acquireEventually(t, openLeases(t, nc, "jk", "a", 10*time.Second, 3), p, 5*time.Second)
	j := openJournal(t, nc, "jk", l, 3)
	a := newAcks()
	stop := make(chan struct{})
	var loopErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, loopErr = appendLoop(j, "A", a, stop) }()
	for a.count() < 500 {
		time.Sleep(5 * time.Millisecond)
	}
	info, err := jsOf(t, nc).Stream(ctxT(t, 5*time.Second), cluster.JournalStream("jk", p))
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	victim := 0
	fmt.Sscanf(si.Cluster.Leader, "n%d", &victim)
	before := a.count()
	killed := time.Now()
	srvs.Kill(victim)
	deadline := time.Now().Add(20 * time.Second)
	for a.count() < before+500 {
		if time.Now().After(deadline) {
			t.Fatalf("appends stalled after killing %s: %d acked before, %d now; journal err %v", si.Cluster.Leader, before, a.count(), j.Stats().Err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resumed := time.Since(killed)
	close(stop)
	wg.Wait()
	if loopErr != nil {
		t.Fatalf("append after the kill: %v", loopErr)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if st := j.Stats(); st.Err != nil || st.Failed != 0 || a.order != nil {
		t.Fatalf("stats %+v, order %v", st, a.order)
	}
	recs := replayAll(t, j)
	var prev uint64
	for _, r := range recs {
		if r.Seq <= prev {
			t.Fatalf("seq %d after %d", r.Seq, prev)
		}
		prev = r.Seq
		if a.ok[r.Seq] != string(r.Payload) {
			t.Fatalf("seq %d holds %q, acked %q", r.Seq, r.Payload, a.ok[r.Seq])
		}
	}
	if len(recs) != len(a.ok) {
		t.Fatalf("%d records replayed, %d acked", len(recs), len(a.ok))
	}
	t.Logf("killed %s: %d acked before, %d in all; 500 more acked %v after the kill", si.Cluster.Leader, before, len(a.ok), resumed)
}
