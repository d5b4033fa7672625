package reactor

import (
	"fmt"
	"runtime"
	"sync"
)

// Extract runs fns in parallel and returns when all have finished: the
// (Re)Actor "extractors" phase. While it runs, the calling handler is
// suspended, so the service's state is frozen: the fns may all read it, none
// may write it (or anything else shared) — give each its own output slot.
// A panic in an fn is re-raised in the handler.
func Extract(c *Ctx, fns ...func()) {
	if len(fns) == 0 {
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var panicked any
	next := make(chan func())
	workers := min(len(fns), runtime.GOMAXPROCS(0))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fn := range next {
				func() {
					defer func() {
						if p := recover(); p != nil {
							mu.Lock()
							if panicked == nil {
								panicked = p
							}
							mu.Unlock()
						}
					}()
					fn()
				}()
			}
		}()
	}
	for _, fn := range fns {
		next <- fn
	}
	close(next)
	wg.Wait()
	if panicked != nil {
		panic(fmt.Sprintf("reactor: extractor panicked: %v", panicked))
	}
}

// ExtractEach applies fn to every item in parallel (read-only, as in
// Extract) and returns the results in order.
func ExtractEach[T, R any](c *Ctx, items []T, fn func(T) R) []R {
	out := make([]R, len(items))
	fns := make([]func(), len(items))
	for i := range items {
		fns[i] = func() { out[i] = fn(items[i]) }
	}
	Extract(c, fns...)
	return out
}
