// Package goakt runs the comparison workloads on GoAkt
// (github.com/tochemey/goakt/v3), next to the channel baseline measured in
// the same binary. It is its own package, like the other libraries, so that
// every library's dependencies (GoAkt brings protobuf, gRPC-style remoting
// and a cluster stack) are linked alone. The package holds only benchmarks;
// see ../README.md.
package goakt
