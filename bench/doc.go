// Package bench compares the reactor runtime with a plain Go channel
// baseline and with other Go actor libraries (hollywood, protoactor-go, GoAkt,
// go-actor) on
// the same workloads. It is a separate module so that the comparison-only
// dependencies stay out of github.com/reactorgo/reactor.
//
// The package holds only benchmarks (in its _test files). Every benchmark is
// named Benchmark<Workload>/impl=<implementation>, so benchstat can put the
// implementations side by side:
//
//	go test -run '^$' -bench . -benchmem -count 5 | tee results.txt
//	benchstat -col /impl results.txt
//
// Workloads:
//
//   - FireAndForget: one producer, one actor (inbox 1024), b.N messages;
//     timed until the consumer has handled all of them (ns/op = ns/msg, and
//     msgs/s).
//   - RoundTrip: sequential request/reply from outside the actor system
//     (ns and allocs per round trip).
//   - AsyncCall (reactor only): service-to-service calls whose
//     continuations run on the caller's turn, 256 in flight (calls/s).
//   - IdleActors: heap and stack bytes per idle actor (reactor keyed
//     children, hollywood and protoactor actors), with a 16-byte state.
//
// See README.md in this directory for how to rerun and compare.
package bench
