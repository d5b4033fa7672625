//go:build !race

package cluster_test

// killCycles is TestNodeKillCycles' number of node kills.
const killCycles = 12
