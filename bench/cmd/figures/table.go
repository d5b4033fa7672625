package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of the printed table.
type Row struct {
	Work, Subject, Baseline, Ratio, Target, Met string
}

// target is what a figure must reach: on the ratio (subject ÷ baseline of
// the same round) or on the value itself (onValue). op "" means no target.
type target struct {
	op      string // ">=" or "<="
	x       float64
	onValue bool
	unit    string // for printing a value target
}

func atLeast(x float64) target { return target{op: ">=", x: x} }
func atMost(x float64) target  { return target{op: "<=", x: x} }
func valueAtLeast(x float64, unit string) target {
	return target{op: ">=", x: x, onValue: true, unit: unit}
}
func valueAtMost(x float64, unit string) target {
	return target{op: "<=", x: x, onValue: true, unit: unit}
}

func (t target) String() string {
	if t.op == "" {
		return "—"
	}
	sym := map[string]string{">=": "≥ ", "<=": "≤ "}[t.op]
	if !t.onValue {
		return sym + trimFloat(t.x) + "×"
	}
	switch t.unit {
	case "ns":
		return sym + time.Duration(t.x).String()
	case "B":
		if t.x >= 1024 {
			return sym + trimFloat(t.x/1024) + " KiB"
		}
		return sym + bytesFmt(t.x)
	case "":
		return sym + trimFloat(t.x)
	}
	return sym + si(t.x) + " " + t.unit
}

func (t target) met(v float64) string {
	switch {
	case t.op == "":
		return "—"
	case math.IsNaN(v):
		return "?"
	case t.op == ">=" && v >= t.x, t.op == "<=" && v <= t.x:
		return "yes"
	}
	return "NO"
}

func trimFloat(x float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".")
}

// formatters turn a figure into text.
func rate(v float64) string { return si(v) + "/s" }
func nanos(v float64) string {
	d := time.Duration(v)
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond).String()
	}
	return trimFloat(v) + "ns"
}
func micros(v float64) string { return nanos(v * 1e3) }
func bytesFmt(v float64) string {
	if math.Abs(v) >= 10*1024 {
		return fmt.Sprintf("%.1f KiB", v/1024)
	}
	return fmt.Sprintf("%.0f B", v)
}
func plain(v float64) string { return trimFloat(v) }
func pct(v float64) string   { return trimFloat(v) + " %" }

func si(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return trimFloat(v/1e9) + " G"
	case a >= 1e6:
		return trimFloat(v/1e6) + " M"
	case a >= 1e4:
		return trimFloat(v/1e3) + " K"
	}
	return fmt.Sprintf("%.0f", v)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// span prints min–max (or the one value) with f.
func span(xs []float64, f func(float64) string) string {
	if len(xs) == 0 {
		return "n/a"
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	if lo == hi {
		return f(lo)
	}
	return f(lo) + " – " + f(hi)
}

// ratioRow compares subject with baseline round by round.
func ratioRow(work string, s samples, subj, base string, f func(float64) string, t target) Row {
	a, b := s[subj], s[base]
	n := min(len(a), len(b))
	ratios := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if b[i] != 0 {
			ratios = append(ratios, a[i]/b[i])
		}
	}
	met := t.met(median(ratios))
	if t.onValue {
		met = t.met(median(a))
	}
	return Row{Work: work, Subject: span(a, f), Baseline: span(b, f), Ratio: span(ratios, func(x float64) string { return fmt.Sprintf("%.2f×", x) }), Target: t.String(), Met: met}
}

// valueRow is a figure without a same-run baseline.
func valueRow(work string, s samples, key string, f func(float64) string, t target) Row {
	return Row{Work: work, Subject: span(s[key], f), Baseline: "—", Ratio: "—", Target: t.String(), Met: t.met(median(s[key]))}
}

func allocRow(work string, s samples, key string, want float64) Row {
	return valueRow(work, s, key, plain, valueAtMost(want, ""))
}

func printTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "work\treactor (or subject)\tsame-run baseline\tratio\ttarget\tmet?")
	fmt.Fprintln(tw, "----\t--------------------\t-----------------\t-----\t------\t----")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Work, r.Subject, r.Baseline, r.Ratio, r.Target, r.Met)
	}
	tw.Flush()
}
