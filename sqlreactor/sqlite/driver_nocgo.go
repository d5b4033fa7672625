//go:build !cgo

package sqlite

// DefaultDriver is the driver Open uses when Options.Driver is empty: the
// pure-Go driver, since this build has no cgo.
const DefaultDriver = "sqlite"
