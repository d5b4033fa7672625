// Package goactor runs the comparison workloads on go-actor
// (github.com/vladopajic/go-actor), next to the channel baseline measured
// in the same binary. It is its own package, like the other libraries. The
// package holds only benchmarks; see ../README.md.
package goactor
