//go:build race

package jobs_test

// raceEnabled: the race detector is on. The kill -9 test then skips: it
// runs 20 child processes and a few thousand calls against a queue whose
// state is checkpointed every 100 ms, which the detector slows past its
// deadlines, and it checks durability, not data races — the README's test
// command (no -race) runs it in CI.
const raceEnabled = true
