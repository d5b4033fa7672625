//go:build cgo

package sqlite

import _ "github.com/mattn/go-sqlite3" // "sqlite3": the measured-faster driver, when cgo is available

// DefaultDriver is the driver Open uses when Options.Driver is empty: the
// cgo driver, measured faster (docs/BENCHMARKS-sql.md).
const DefaultDriver = "sqlite3"
