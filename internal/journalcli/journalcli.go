// Package journalcli prints what the journal commands of cmd/reactor and
// cmd/poker report ("journal inspect", "journal verify"), so both tools
// say the same thing about the same journal.
package journalcli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/reactorgo/reactor/journal"
)

// Inspect reads the journal in dir (a journal directory: see
// journaldir.Resolve) without modifying it and writes its report to w:
// the segments, a torn tail, the totals, the time span of the records,
// the records per service and per method, and the last n records with
// their times (n < 0: all, 0: none). A damaged journal is an error naming
// segment and offset; nothing but the header is written then.
func Inspect(ctx context.Context, dir string, n int, w io.Writer) error {
	type rec struct {
		seq                  uint64
		at                   int64
		service, method, key string
		size                 int
	}
	var (
		last              []rec
		first, latest     int64
		services, methods = map[string]int{}, map[string]int{}
	)
	rep, err := journal.Inspect(ctx, nil, dir, func(r *journal.Record) error {
		services[r.Service]++
		methods[r.Method]++
		if first == 0 {
			first = r.Time
		}
		latest = r.Time
		if n != 0 {
			last = append(last, rec{r.Seq, r.Time, r.Service, r.Method, r.Key, len(r.Payload)})
			if n > 0 && len(last) > 2*n { // memory stays bounded: trim in halves
				last = append(last[:0], last[len(last)-n:]...)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 && len(last) > n {
		last = last[len(last)-n:]
	}
	fmt.Fprintf(w, "journal %s\n\n", dir)
	fmt.Fprintf(w, "%-26s %12s %10s %20s %20s %18s\n", "SEGMENT", "SIZE", "RECORDS", "FIRST SEQ", "LAST SEQ", "SALT")
	for _, s := range rep.Segments {
		fmt.Fprintf(w, "%-26s %12d %10d %20d %20d %018x\n", s.Name, s.Size, s.Records, s.FirstSeq, s.LastSeq, s.Salt)
	}
	if t := rep.TornTail; t != nil {
		if t.TrailerRewrite() {
			fmt.Fprintf(w, "torn trailer: %s, last record ending at offset %d (recovery rewrites it)\n", t.Segment, t.Offset)
		}
		if t.Size > t.Offset {
			fmt.Fprintf(w, "torn tail: %s at offset %d (%d bytes, %s; recovery truncates it)\n", t.Segment, t.Offset, t.Size-t.Offset, t.Reason)
		}
	}
	fmt.Fprintf(w, "\nrecords %d, seq %d..%d, bytes %d\n", rep.Records, rep.FirstSeq, rep.LastSeq, rep.Bytes)
	if rep.Records > 0 {
		fmt.Fprintf(w, "time %s .. %s UTC (%s)\n", Stamp(first), Stamp(latest), time.Unix(0, latest).Sub(time.Unix(0, first)).Round(time.Millisecond))
	}
	counts(w, "SERVICE", services)
	counts(w, "METHOD", methods)
	if len(last) > 0 {
		fmt.Fprintf(w, "\nLAST %d RECORDS\n%-10s %-24s %-36s %-24s %8s  %s\n", len(last), "SEQ", "TIME (UTC)", "SERVICE", "METHOD", "BYTES", "KEY")
		for _, r := range last {
			fmt.Fprintf(w, "%-10d %-24s %-36s %-24s %8d  %s\n", r.seq, Stamp(r.at), r.service, r.method, r.size, r.key)
		}
	}
	return nil
}

// Stamp formats a record's time (Unix nanoseconds) as UTC to the
// millisecond.
func Stamp(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000") }

func counts(w io.Writer, title string, m map[string]int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if m[keys[a]] != m[keys[b]] {
			return m[keys[a]] > m[keys[b]]
		}
		return keys[a] < keys[b]
	})
	fmt.Fprintf(w, "\n%-40s %10s\n", title, "RECORDS")
	for _, k := range keys {
		fmt.Fprintf(w, "%-40s %10d\n", k, m[k])
	}
}

// Verify checks every checksum of the journal in dir and writes "ok N
// records in DIR" to w, after a note for a torn final write (never
// acknowledged: recovery truncates it) or a torn trailer of an intact last
// record (recovery rewrites it). A damaged journal — including a damaged
// complete last record — is an error naming segment and offset.
func Verify(ctx context.Context, dir string, w io.Writer) error {
	rep, err := journal.Inspect(ctx, nil, dir, nil)
	if err != nil {
		return err
	}
	if t := rep.TornTail; t != nil {
		if t.TrailerRewrite() {
			fmt.Fprintf(w, "note: the last record of %s (ending at offset %d) is intact but its trailer is torn or damaged; recovery keeps it and rewrites the trailer\n",
				t.Segment, t.Offset)
		}
		if t.Size > t.Offset {
			fmt.Fprintf(w, "note: torn tail in %s at offset %d (%d bytes, %s); never acknowledged, recovery truncates it\n",
				t.Segment, t.Offset, t.Size-t.Offset, t.Reason)
		}
	}
	fmt.Fprintf(w, "ok %d records in %s\n", rep.Records, dir)
	return nil
}
