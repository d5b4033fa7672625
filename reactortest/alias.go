package reactortest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"unsafe"
)

// Shared reports the first piece of memory that value shares with state —
// a map, a slice's backing array, a pointed-to variable or a channel
// reachable from both — as a path into value ("value.Members[\"ann\"]"),
// or "" if they share nothing. A service that hands such a value out (as a
// reply, a message, an event) gives another goroutine a view of its live
// state: the next turn writes what the reader reads. Copy instead (Baratine
// calls the copies shims).
//
// Fields that are not exported are looked at, not looked through: what
// they point at counts, what lies behind it is not read (it is often
// another goroutine's, under its own lock).
//
// Strings and functions are not counted (strings are immutable; a closure's
// captures cannot be seen), nor are values of the types allowed, or of
// packages made to be shared: reactor itself (handles such as Ref, Callback
// and Cancel, and the runtime they point at), eventlog (a log is appended
// on the turn and read by streams, under its own lock), time, sync.
func Shared(state, value any, allowed ...any) string {
	w := &aliasWalk{maps: map[unsafe.Pointer]bool{}, seen: map[visit]bool{}, allow: allowSet(allowed)}
	w.collect(reflect.ValueOf(state), false)
	w.seen = map[visit]bool{}
	return w.find(reflect.ValueOf(value), "value", false)
}

// NoAliasing returns a reactor.Config.CheckShared hook that fails t for
// every reply, message or callback value a service hands out that shares
// memory with the service's live state (see Shared). Set it on the
// runtimes of a service's tests:
//
//	rt, _ := reactor.New(reactor.Config{CheckShared: reactortest.NoAliasing(t)})
//
// Each place (service and value) is reported once.
func NoAliasing(t testing.TB, allowed ...any) func(addr, what string, state, value any) {
	var mu sync.Mutex
	reported := map[string]bool{}
	return func(addr, what string, state, value any) {
		path := Shared(state, value, allowed...)
		if path == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if key := addr + "\x00" + what + "\x00" + path; !reported[key] {
			reported[key] = true
			t.Errorf("reactortest: %s by %s shares memory with the service's state at %s: hand out a copy", what, addr, path)
		}
	}
}

// sharedByDesign are the packages whose values are handles or safe for
// concurrent use by design: reactor's Ref, Callback, Cancel and runtime,
// an event log (appended on the turn, read by streams), time values, locks.
var sharedByDesign = map[string]bool{
	"github.com/reactorgo/reactor":          true,
	"github.com/reactorgo/reactor/eventlog": true,
	"time":                                  true,
	"sync":                                  true,
	"sync/atomic":                           true,
}

type visit struct {
	p unsafe.Pointer
	t reflect.Type
}

type span struct{ from, to uintptr } // [from, to)

type aliasWalk struct {
	maps  map[unsafe.Pointer]bool
	spans []span // arrays and variables the state reaches
	seen  map[visit]bool
	allow map[reflect.Type]bool
}

func allowSet(values []any) map[reflect.Type]bool {
	m := map[reflect.Type]bool{}
	for _, v := range values {
		if v != nil {
			m[reflect.TypeOf(v)] = true
		}
	}
	return m
}

// skip reports types whose values are handles meant to be shared.
func (w *aliasWalk) skip(t reflect.Type) bool {
	if w.allow[t] {
		return true
	}
	pkg := t.PkgPath()
	if pkg == "" && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
		pkg = t.Elem().PkgPath()
	}
	return sharedByDesign[pkg]
}

func (w *aliasWalk) once(p unsafe.Pointer, t reflect.Type) bool {
	k := visit{p, t}
	if w.seen[k] {
		return false
	}
	w.seen[k] = true
	return true
}

// collect records the memory the state reaches. Below an unexported field
// it is shallow: it records what the field points at but does not read
// through it — such fields are usually wiring (a queue set, a database
// handle) that other goroutines write under their own locks, and reading
// them here would be a race of the check itself.
func (w *aliasWalk) collect(v reflect.Value, shallow bool) {
	if !v.IsValid() || w.skip(v.Type()) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !w.once(v.UnsafePointer(), v.Type()) {
			return
		}
		if size := v.Type().Elem().Size(); size > 0 {
			p := uintptr(v.UnsafePointer())
			w.spans = append(w.spans, span{p, p + size})
		}
		if !shallow {
			w.collect(v.Elem(), false)
		}
	case reflect.Interface:
		w.collect(v.Elem(), shallow)
	case reflect.Struct:
		for i := range v.NumField() {
			w.collect(v.Field(i), shallow || !v.Type().Field(i).IsExported())
		}
	case reflect.Array:
		for i := range v.Len() {
			w.collect(v.Index(i), shallow)
		}
	case reflect.Slice:
		if v.IsNil() || v.Cap() == 0 || !w.once(v.UnsafePointer(), v.Type()) {
			return
		}
		if size := v.Type().Elem().Size(); size > 0 {
			p := uintptr(v.UnsafePointer())
			w.spans = append(w.spans, span{p, p + uintptr(v.Cap())*size})
		}
		if !shallow {
			for i := range v.Len() {
				w.collect(v.Index(i), false)
			}
		}
	case reflect.Map:
		if v.IsNil() || w.maps[v.UnsafePointer()] {
			return
		}
		w.maps[v.UnsafePointer()] = true
		if !shallow {
			for it := v.MapRange(); it.Next(); {
				w.collect(it.Key(), false)
				w.collect(it.Value(), false)
			}
		}
	case reflect.Chan:
		if !v.IsNil() {
			w.maps[v.UnsafePointer()] = true // channels, like maps, by identity
		}
	}
}

func (w *aliasWalk) inState(from, to uintptr) bool {
	for _, s := range w.spans {
		if from < s.to && s.from < to {
			return true
		}
	}
	return false
}

// find returns the path of the first memory of v the state reaches; below
// an unexported field it is shallow, like collect.
func (w *aliasWalk) find(v reflect.Value, path string, shallow bool) string {
	if !v.IsValid() || w.skip(v.Type()) {
		return ""
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !w.once(v.UnsafePointer(), v.Type()) {
			return ""
		}
		p, size := uintptr(v.UnsafePointer()), v.Type().Elem().Size()
		if size > 0 && w.inState(p, p+size) {
			return path
		}
		if !shallow {
			return w.find(v.Elem(), "(*"+path+")", false)
		}
	case reflect.Interface:
		return w.find(v.Elem(), path, shallow)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if p := w.find(v.Field(i), path+"."+f.Name, shallow || !f.IsExported()); p != "" {
				return p
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			if p := w.find(v.Index(i), fmt.Sprintf("%s[%d]", path, i), shallow); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if v.IsNil() || v.Cap() == 0 || !w.once(v.UnsafePointer(), v.Type()) {
			return ""
		}
		p, size := uintptr(v.UnsafePointer()), v.Type().Elem().Size()
		if size > 0 && w.inState(p, p+uintptr(v.Cap())*size) {
			return path
		}
		if !shallow {
			for i := range v.Len() {
				if p := w.find(v.Index(i), fmt.Sprintf("%s[%d]", path, i), false); p != "" {
					return p
				}
			}
		}
	case reflect.Map:
		if v.IsNil() {
			return ""
		}
		if w.maps[v.UnsafePointer()] {
			return path
		}
		if !shallow {
			for it := v.MapRange(); it.Next(); {
				if p := w.find(it.Value(), fmt.Sprintf("%s[%#v]", path, printable(it.Key())), false); p != "" {
					return p
				}
			}
		}
	case reflect.Chan:
		if !v.IsNil() && w.maps[v.UnsafePointer()] {
			return path
		}
	}
	return ""
}

// printable is a map key for a path: its value when it can be read.
func printable(k reflect.Value) any {
	if k.CanInterface() {
		return k.Interface()
	}
	return k.String()
}
