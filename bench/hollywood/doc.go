// Package hollywood runs the comparison workloads on the hollywood actor
// engine (github.com/anthdm/hollywood), next to the channel baseline
// measured in the same binary. It is its own package because hollywood and
// protoactor-go register conflicting protobuf files. The package holds only
// benchmarks; see ../README.md.
package hollywood
