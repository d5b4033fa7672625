// Package protoactor runs the comparison workloads on protoactor-go
// (github.com/asynkron/protoactor-go), next to the channel baseline measured
// in the same binary. It is its own package because hollywood and
// protoactor-go register conflicting protobuf files. The package holds only
// benchmarks; see ../README.md.
package protoactor
