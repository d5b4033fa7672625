//go:build race

package cluster_test

// killCycles is TestNodeKillCycles' number of node kills: fewer under the
// race detector, which slows every node.
const killCycles = 10
