package reactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
	"github.com/reactorgo/reactor/reactortest"
)

var errGateClosed = reactor.NewError("test.gate.closed", reactor.CodeFailedPrecondition, "gate: closed")

// deniedError is a typed error with a field, registered so that it comes
// back as itself.
type deniedError struct{ Who string }

func (e *deniedError) Error() string { return "gate: " + e.Who + " may not enter" }

func init() {
	reactor.RegisterErrorType[*deniedError]("test.gate.denied", reactor.CodePermissionDenied)
}

// Gate is a journaled service that refuses most visitors.
type Gate struct{ In []string }

func (g *Gate) Enter(_ *reactor.Ctx, who string) (int, error) {
	switch who {
	case "late":
		return 0, fmt.Errorf("enter %s: %w", who, errGateClosed)
	case "mallory":
		return 0, &deniedError{Who: who}
	case "odd":
		return 0, errors.New("gate: something odd")
	case "boom":
		panic("gate: boom")
	}
	g.In = append(g.In, who)
	return len(g.In), nil
}

var gateEnter = reactor.Method("test.gate.enter", (*Gate).Enter)

func openGate(t *testing.T, fsys journal.FS) (*reactor.Runtime, func(graceful bool)) {
	t.Helper()
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: "/g/journal", FS: fsys, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	store, err := file.Open(file.Options{Dir: "/g/checkpoints", FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := reactor.New(reactor.Config{Journal: j, Store: store, Logger: discardLogger, CheckShared: reactortest.NoAliasing(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reactor.Register(rt, "/gate", &Gate{}, reactor.Journaled()); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return rt, func(graceful bool) {
		if graceful {
			rt.Close(ctx)
		} else {
			dead, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			rt.Close(dead)
			cancel()
		}
		j.Close()
	}
}

// checkRefusal calls /gate with key and requires the refusal want: the
// same message, errors.Is / errors.As and code as the first answer.
func checkRefusal(t *testing.T, rt *reactor.Runtime, when, key, who, wantMsg string) {
	t.Helper()
	ctx := reactor.WithIdempotencyKey(context.Background(), key)
	_, err := gateEnter.Call(ctx, rt.Ref("/gate"), who)
	if err == nil || err.Error() != wantMsg {
		t.Fatalf("%s: %s answered %v, want %q", when, who, err, wantMsg)
	}
	switch who {
	case "late":
		if !errors.Is(err, errGateClosed) || reactor.CodeOf(err) != reactor.CodeFailedPrecondition {
			t.Fatalf("%s: %v lost its identity (code %v)", when, err, reactor.CodeOf(err))
		}
	case "mallory":
		var d *deniedError
		if !errors.As(err, &d) || d.Who != "mallory" || reactor.CodeOf(err) != reactor.CodePermissionDenied {
			t.Fatalf("%s: %v lost its type (code %v)", when, err, reactor.CodeOf(err))
		}
	case "odd":
		if reactor.CodeOf(err) != reactor.CodeUnknown {
			t.Fatalf("%s: unregistered error has code %v", when, reactor.CodeOf(err))
		}
	}
}

// TestRememberedErrorsKeepTheirIdentity: a refused request retried with its
// idempotency key gets the first answer — same text, errors.Is, errors.As
// and code — in memory, after a graceful restart (from the checkpoint) and
// after a crash (from the journal).
func TestRememberedErrorsKeepTheirIdentity(t *testing.T) {
	fsys := faultfs.New()
	rt, stop := openGate(t, fsys)
	refusals := map[string]string{"late": "enter late: gate: closed", "mallory": "gate: mallory may not enter", "odd": "gate: something odd"}
	for who, msg := range refusals {
		checkRefusal(t, rt, "first", "k-"+who, who, msg)
		checkRefusal(t, rt, "retry", "k-"+who, who, msg)
	}
	stop(true)
	proc := newProcFS(fsys)
	rt, stop = openGate(t, proc)
	for who, msg := range refusals {
		checkRefusal(t, rt, "after restart", "k-"+who, who, msg)
		checkRefusal(t, rt, "first after restart", "c-"+who, who, msg)
	}
	// Die without a checkpoint: the c- answers come back from replay.
	proc.kill()
	fsys.Crash()
	stop(false)
	rt, stop = openGate(t, fsys)
	defer stop(true)
	for who, msg := range refusals {
		checkRefusal(t, rt, "after crash", "c-"+who, who, msg)
		checkRefusal(t, rt, "after crash, checkpointed", "k-"+who, who, msg)
	}
}

func TestErrorOfAndCodes(t *testing.T) {
	err := fmt.Errorf("outer: %w", errors.Join(errors.New("x"), fmt.Errorf("inner: %w", reactor.ErrBusy)))
	e := reactor.ErrorOf(err)
	if e.Code != reactor.CodeUnavailable || e.ID != "reactor.busy" || e.Message != err.Error() {
		t.Fatalf("ErrorOf: %+v", e)
	}
	b, _ := json.Marshal(e)
	var back reactor.Error
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(&back, reactor.ErrBusy) || back.Error() != err.Error() {
		t.Fatalf("restored %s: %v", b, &back)
	}
	if reactor.CodeOf(nil) != reactor.CodeOK || reactor.CodeOf(context.DeadlineExceeded) != reactor.CodeDeadlineExceeded {
		t.Fatal("codes of nil / deadline")
	}
	var c reactor.Code
	if err := c.UnmarshalText([]byte("from_the_future")); err != nil || c != reactor.CodeUnknown {
		t.Fatalf("unknown code name: %v %v", c, err)
	}
	pe := reactor.ErrorOf(&reactor.PanicError{Service: "/s", Method: "m", Value: errors.New("boom")})
	b, _ = json.Marshal(pe)
	var back2 reactor.Error
	json.Unmarshal(b, &back2)
	var p *reactor.PanicError
	if !errors.As(&back2, &p) || p.Service != "/s" || fmt.Sprint(p.Value) != "boom" || !errors.Is(&back2, reactor.ErrPanic) {
		t.Fatalf("panic error restored as %#v", &back2)
	}
}

// FuzzErrorDecode: decoding an encoded error never panics, and what decodes
// encodes again.
func FuzzErrorDecode(f *testing.F) {
	for _, err := range []error{reactor.ErrBusy, errGateClosed, &deniedError{Who: "x"}, errors.New("plain"), &reactor.PanicError{Value: 1}} {
		b, _ := json.Marshal(reactor.ErrorOf(err))
		f.Add(b)
	}
	f.Add([]byte(`{"code":"nope","id":"test.gate.denied","detail":[1,2]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e reactor.Error
		if json.Unmarshal(b, &e) != nil {
			return
		}
		_ = e.Error()
		_ = reactor.CodeOf(&e)
		if _, err := json.Marshal(reactor.ErrorOf(&e)); err != nil {
			t.Fatalf("re-encode %q: %v", b, err)
		}
	})
}

// TestKeyReusedForAnotherRequest: an idempotency key is bound to its first
// request; the same key with another payload is refused with ErrKeyReused
// and applies nothing, in memory and after a restart.
func TestKeyReusedForAnotherRequest(t *testing.T) {
	fsys := faultfs.New()
	rt, stop := openGate(t, fsys)
	ctx := reactor.WithIdempotencyKey(context.Background(), "once")
	if n, err := gateEnter.Call(ctx, rt.Ref("/gate"), "ann"); err != nil || n != 1 {
		t.Fatalf("first: %d %v", n, err)
	}
	for round := range 2 {
		if n, err := gateEnter.Call(ctx, rt.Ref("/gate"), "ann"); err != nil || n != 1 {
			t.Fatalf("round %d retry: %d %v", round, n, err)
		}
		if _, err := gateEnter.Call(ctx, rt.Ref("/gate"), "bob"); !errors.Is(err, reactor.ErrKeyReused) {
			t.Fatalf("round %d: same key, other request: %v", round, err)
		}
		if n, err := gateEnter.Call(context.Background(), rt.Ref("/gate"), "cy"); err != nil || n != 2+round {
			t.Fatalf("round %d: bob was applied: %d %v", round, n, err)
		}
		stop(true)
		rt, stop = openGate(t, fsys)
	}
	stop(true)
}

func gatePanics(rt *reactor.Runtime) uint64 {
	for _, st := range rt.Stats() {
		if st.Addr == "/gate" {
			return st.Panics
		}
	}
	return 0
}

// TestPanickedInputIsNotReplayed: a journaled input whose handler panicked
// is settled by an outcome record: a retry with its key gets the same
// *PanicError without running the handler, and replay after a crash answers
// it from the record instead of panicking again.
func TestPanickedInputIsNotReplayed(t *testing.T) {
	fsys := faultfs.New()
	proc := newProcFS(fsys)
	rt, stop := openGate(t, proc)
	ctx := context.Background()
	if _, err := gateEnter.Call(ctx, rt.Ref("/gate"), "ann"); err != nil {
		t.Fatal(err)
	}
	// No checkpoint may cover the panicked input: recovery must use the
	// outcome record.
	fsys.SetHook(func(_ faultfs.Op, name string) error {
		if strings.Contains(name, "checkpoints") {
			return errors.New("checkpoint store down")
		}
		return nil
	})
	boom := reactor.WithIdempotencyKey(ctx, "boom-1")
	for try := range 2 {
		_, err := gateEnter.Call(boom, rt.Ref("/gate"), "boom")
		var pe *reactor.PanicError
		if !errors.As(err, &pe) || !errors.Is(err, reactor.ErrPanic) {
			t.Fatalf("try %d: %v", try, err)
		}
	}
	if n := gatePanics(rt); n != 1 {
		t.Fatalf("the retry ran the handler again: %d panics", n)
	}
	if n, err := gateEnter.Call(ctx, rt.Ref("/gate"), "cy"); err != nil || n != 2 {
		t.Fatalf("after the panic: %d %v", n, err) // durable, so the outcome before it is too
	}
	proc.kill()
	fsys.Crash()
	stop(false)
	fsys.SetHook(nil)

	rt, stop = openGate(t, fsys)
	defer stop(true)
	if n := gatePanics(rt); n != 0 {
		t.Fatalf("replay ran the panicking handler again: %d panics", n)
	}
	_, err := gateEnter.Call(boom, rt.Ref("/gate"), "boom")
	var pe *reactor.PanicError
	if !errors.As(err, &pe) || pe.Service != "/gate" || !strings.Contains(fmt.Sprint(pe.Value), "gate: boom") {
		t.Fatalf("retry after crash: %v", err)
	}
	if n := gatePanics(rt); n != 0 {
		t.Fatalf("retry after crash ran the handler: %d panics", n)
	}
	if n, err := gateEnter.Call(ctx, rt.Ref("/gate"), "dan"); err != nil || n != 3 {
		t.Fatalf("state after recovery: %d %v", n, err)
	}
}
