// Package reactortest holds helpers for testing services built on reactor.
//
// Differential checks the promise every checkpointed service makes
// implicitly: a state restored from a checkpoint, or rebuilt by replaying
// the journal, behaves exactly like the state it was saved from. It runs a
// workload once straight, then once per step and kind of disruption —
// a graceful restart, an eviction, a crash — inserted before that step,
// and requires the same replies, errors and events at every step and the
// same final state. Every reply and message of the services is also
// checked not to share memory with their state (NoAliasing).
package reactortest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/checkpoint/file"
	"github.com/reactorgo/reactor/journal"
	"github.com/reactorgo/reactor/journal/faultfs"
)

// Disruption is what Differential inserts before a step.
type Disruption string

// The disruptions. Each is inserted before every step in its own run.
const (
	// Reload closes the runtime gracefully (every modified service is
	// checkpointed) and opens a new one on the same journal, checkpoints
	// and directory: the state comes back from its checkpoints.
	Reload Disruption = "reload"
	// Evict calls Differential.Evict, which makes the runtime save and
	// evict the workload's children through its real path (an LRU bound,
	// an idle timeout): the next message loads them from their checkpoints.
	Evict Disruption = "evict"
	// Crash drops the runtime without Close (its file system view dies and
	// the simulated disk loses what was not synced) and opens a new one:
	// the state comes back by replaying the journal.
	Crash Disruption = "crash"
	// ReloadCrash is Reload before the step, then Crash after it: the
	// state comes back from a checkpoint plus the replay of that step.
	ReloadCrash Disruption = "reload+crash"
	// EvictCrash is Evict before the step, then Crash after it: children
	// come back from their eviction checkpoints plus the replay of that
	// step.
	EvictCrash Disruption = "evict+crash"
)

// AllDisruptions lists every Disruption.
var AllDisruptions = []Disruption{Reload, Evict, Crash, ReloadCrash, EvictCrash}

// Step is one input of a workload. Do sends it through the services' real
// API and returns what a client observes: the reply and the error, and
// whatever else the step collects (events the services published). The
// reply is compared in its JSON encoding, the error by its text.
type Step[S any] struct {
	Name string
	Do   func(ctx context.Context, s S) (any, error)
}

// Differential describes a workload over services, and how to build and
// observe them. S is the workload's session: made once per run by New,
// it outlives the runtimes of the run (it keeps the ids and tokens a
// client keeps) and is handed to every function.
type Differential[S any] struct {
	// Config is the base runtime configuration. Journal, Store and (if
	// nil) Logger and Clock are set by Run: the journal and the file
	// checkpoint store live on a simulated disk (faultfs) that survives
	// every reopen of one run; the default clock is fixed, so recorded
	// times are equal in every run.
	Config reactor.Config
	// New makes the session of one run. dir is a real directory, empty at
	// first and kept across the run's reopens (databases go there).
	New func(t testing.TB, dir string) S
	// Open registers the services on rt (not yet started); it is called
	// at the start of a run and after every disruption that reopens.
	Open func(t testing.TB, rt *reactor.Runtime, s S)
	// Started, if set, runs after rt.Start (background relays, etc.).
	Started func(ctx context.Context, s S) error
	// Close, if set, releases what Open opened, once the runtime has
	// closed or crashed (stop relays, close databases).
	Close func(t testing.TB, s S)
	// Steps is the workload.
	Steps []Step[S]
	// Evict, if set, makes the runtime evict the workload's children and
	// returns once they are gone (see WaitEvicted). Without it the Evict
	// disruptions are skipped.
	Evict func(ctx context.Context, s S) error
	// Final, if set, returns the observable state after the last step (a
	// read-only dump); it is compared like a step's outcome. Besides it,
	// every checkpoint in the store after a final graceful Close is
	// compared.
	Final func(ctx context.Context, s S) (any, error)
	// Normalize, if set, rewrites an encoded outcome or checkpoint before
	// comparison: it replaces what legitimately differs between runs
	// (random ids and tokens) by stable names.
	Normalize func(s S, text string) string
	// Disruptions to try (default AllDisruptions).
	Disruptions []Disruption
	// Timeout bounds each step (default 10s).
	Timeout time.Duration
}

// fixedClock is the default clock of the runtimes: every run sees the same
// time.
var fixedClock = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// Run runs the workload straight, then with each disruption before each
// step (a subtest per kind and position), and fails on the first
// difference, naming the step.
func (d *Differential[S]) Run(t *testing.T) {
	t.Helper()
	want := d.run(t, "", -1)
	if t.Failed() {
		return
	}
	kinds := d.Disruptions
	if kinds == nil {
		kinds = AllDisruptions
	}
	for _, kind := range kinds {
		if (kind == Evict || kind == EvictCrash) && d.Evict == nil {
			continue
		}
		for i := range d.Steps {
			t.Run(fmt.Sprintf("%s-before-%d-%s", kind, i, d.Steps[i].Name), func(t *testing.T) {
				got := d.run(t, kind, i)
				if t.Failed() {
					return
				}
				compare(t, want, got)
			})
		}
	}
}

// record is what one run observed.
type record struct {
	names    []string
	outcomes []string
	final    string
	cps      map[string]string
}

func compare(t *testing.T, want, got *record) {
	t.Helper()
	for i := range want.outcomes {
		if want.outcomes[i] != got.outcomes[i] {
			t.Fatalf("step %d (%s) differs:\nstraight:  %s\ndisrupted: %s", i, want.names[i], want.outcomes[i], got.outcomes[i])
		}
	}
	if want.final != got.final {
		t.Fatalf("final state differs:\nstraight:  %s\ndisrupted: %s", want.final, got.final)
	}
	for _, k := range sortedKeys(want.cps, got.cps) {
		if want.cps[k] != got.cps[k] {
			t.Fatalf("checkpoint %s differs:\nstraight:  %s\ndisrupted: %s", k, want.cps[k], got.cps[k])
		}
	}
}

func sortedKeys(a, b map[string]string) []string {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return slices.Sorted(maps.Keys(m))
}

// process is one runtime of a run, on its own view of the simulated disk.
type process struct {
	view *faultfs.Process
	j    *journal.Journal
	rt   *reactor.Runtime
}

func (d *Differential[S]) open(t testing.TB, disk *faultfs.FS, s S) *process {
	t.Helper()
	ctx := context.Background()
	view := faultfs.NewProcess(disk)
	j, err := journal.Open(ctx, journal.Options{Dir: "/d/journal", FS: view, Logger: discard})
	if err != nil {
		t.Fatalf("reactortest: open journal: %v", err)
	}
	store, err := file.Open(file.Options{Dir: "/d/checkpoints", FS: view})
	if err != nil {
		t.Fatalf("reactortest: open checkpoint store: %v", err)
	}
	cfg := d.Config
	cfg.Journal, cfg.Store = j, store
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return fixedClock }
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = time.Hour // checkpoints only where the run puts them
	}
	if cfg.CheckShared == nil {
		cfg.CheckShared = NoAliasing(t) // replies and messages must not share the state
	}
	rt, err := reactor.New(cfg)
	if err != nil {
		t.Fatalf("reactortest: new runtime: %v", err)
	}
	d.Open(t, rt, s)
	if err := rt.Start(ctx); err != nil {
		t.Fatalf("reactortest: start (restore and replay): %v", err)
	}
	if d.Started != nil {
		if err := d.Started(ctx, s); err != nil {
			t.Fatalf("reactortest: started: %v", err)
		}
	}
	return &process{view: view, j: j, rt: rt}
}

// shutdown closes p gracefully: every modified service is checkpointed.
func (d *Differential[S]) shutdown(t testing.TB, p *process, s S) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.rt.Close(ctx)
	if d.Close != nil {
		d.Close(t, s)
	}
	if jerr := p.j.Close(); err == nil {
		err = jerr
	}
	if err != nil {
		t.Fatalf("reactortest: close: %v", err)
	}
}

// crash kills p: from now on its writes fail, the disk loses what was not
// synced, and its goroutines are stopped without saving anything.
func (d *Differential[S]) crash(t testing.TB, p *process, disk *faultfs.FS, s S) {
	t.Helper()
	p.view.Kill()
	disk.Crash()
	// Stop the dead runtime's goroutines: a turn still running finishes
	// (like a process killed just after it), nothing it writes from now
	// on reaches the disk, and it must not hold locks (a database's) that
	// a real crash would have released.
	dead, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	p.rt.Close(dead) // its saves fail: the process is dead
	cancel()
	if d.Close != nil {
		d.Close(t, s)
	}
	p.j.Close()
}

func (d *Differential[S]) run(t *testing.T, kind Disruption, at int) *record {
	t.Helper()
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	disk := faultfs.New()
	s := d.New(t, t.TempDir())
	p := d.open(t, disk, s)
	norm := func(text string) string {
		if d.Normalize != nil {
			text = d.Normalize(s, text)
		}
		return canonical(text)
	}
	rec := &record{cps: map[string]string{}}
	for i, st := range d.Steps {
		if i == at {
			switch kind {
			case Reload, ReloadCrash:
				d.shutdown(t, p, s)
				p = d.open(t, disk, s)
			case Crash:
				d.crash(t, p, disk, s)
				p = d.open(t, disk, s)
			case Evict, EvictCrash:
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				err := d.Evict(ctx, s)
				cancel()
				if err != nil {
					t.Fatalf("reactortest: evict before step %d (%s): %v", i, st.Name, err)
				}
			}
		}
		if i == at+1 && (kind == ReloadCrash || kind == EvictCrash) {
			d.crash(t, p, disk, s)
			p = d.open(t, disk, s)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		v, err := st.Do(ctx, s)
		cancel()
		if pe := (*reactor.PanicError)(nil); errors.As(err, &pe) {
			t.Fatalf("step %d (%s) panicked: %v\n%s", i, st.Name, pe.Value, pe.Stack)
		}
		rec.names = append(rec.names, st.Name)
		rec.outcomes = append(rec.outcomes, norm(outcome(v, err)))
	}
	if at == len(d.Steps)-1 && (kind == ReloadCrash || kind == EvictCrash) {
		d.crash(t, p, disk, s)
		p = d.open(t, disk, s)
	}
	if d.Final != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		v, err := d.Final(ctx, s)
		cancel()
		rec.final = norm(outcome(v, err))
	}
	d.shutdown(t, p, s)
	store, err := file.Open(file.Options{Dir: "/d/checkpoints", FS: disk})
	if err != nil {
		t.Fatalf("reactortest: reopen checkpoint store: %v", err)
	}
	ctx := context.Background()
	keys, err := store.Keys(ctx)
	if err != nil {
		t.Fatalf("reactortest: list checkpoints: %v", err)
	}
	for _, k := range keys {
		cp, err := store.Load(ctx, k)
		if err != nil {
			t.Fatalf("reactortest: load checkpoint %s: %v", k, err)
		}
		rec.cps[norm(k)] = norm(expand(cp.Data))
	}
	return rec
}

// outcome encodes what a step observed.
func outcome(v any, err error) string {
	b, merr := json.Marshal(v)
	if merr != nil {
		b = []byte(fmt.Sprintf("%#v (not JSON: %v)", v, merr))
	}
	if err != nil {
		return fmt.Sprintf("%s error=%q", b, err.Error())
	}
	return string(b)
}

// canonical re-encodes JSON text so that equal values compare equal as
// text (map keys sorted after Normalize renamed them); other text is kept.
func canonical(text string) string {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.More() {
		return text
	}
	b, err := json.Marshal(v)
	if err != nil {
		return text
	}
	return string(b)
}

// expand makes a checkpoint readable for Normalize: a journaled service's
// checkpoint wraps its state as base64 bytes in a "state" field; that
// field is replaced by the decoded JSON.
func expand(data []byte) string {
	var body map[string]any
	if json.Unmarshal(data, &body) != nil {
		return string(data)
	}
	if st, ok := body["state"].(string); ok {
		if raw, err := base64.StdEncoding.DecodeString(st); err == nil && json.Valid(raw) {
			body["state"] = json.RawMessage(raw)
			if b, err := json.Marshal(body); err == nil {
				return string(b)
			}
		}
	}
	return string(data)
}

// WaitEvicted waits until the runtime has evicted at least n children of
// parent in total (reactor.ServiceStats.Evicted), or ctx ends. An Evict
// function reads the count before forcing the eviction and waits for it to
// grow.
func WaitEvicted(ctx context.Context, rt *reactor.Runtime, parent string, n uint64) error {
	for {
		if Evicted(rt, parent) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reactortest: %d evictions of %s children awaited, %d seen: %w", n, parent, Evicted(rt, parent), ctx.Err())
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// Evicted returns how many children of parent rt has evicted.
func Evicted(rt *reactor.Runtime, parent string) uint64 {
	for _, st := range rt.Stats() {
		if st.Addr == parent && st.Children {
			return st.Evicted
		}
	}
	return 0
}

// Replacer returns a Normalize helper: it replaces every non-empty key of
// names (a random id, a token) by its value, longest first.
func Replacer(names map[string]string) func(string) string {
	var pairs []string
	keys := slices.Collect(maps.Keys(names))
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		if k != "" {
			pairs = append(pairs, k, names[k])
		}
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
