package main

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bench is one result line of `go test -bench` output.
type Bench struct {
	Pkg     string             // from the preceding "pkg:" line
	Name    string             // full name without the -GOMAXPROCS suffix, e.g. BenchmarkRoundTrip/impl=channel
	N       int64              // iterations
	Metrics map[string]float64 // unit -> value: ns/op, B/op, allocs/op, msgs/s, …
}

// ParseBench reads `go test -bench` (or test binary) output: every line
// "BenchmarkX[-P] N v unit [v unit]…", whatever the custom units. Lines it
// does not recognise (logs, PASS, ok, interleaved output) are skipped; a
// result line split by a benchmark's own log output is rejoined when the
// name ends a line on its own.
func ParseBench(out string) []Bench {
	var res []Bench
	pkg := ""
	pending := "" // a "BenchmarkX-2 \t" line whose figures follow on a later line
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasPrefix(f[0], "Benchmark") {
			if pending != "" && len(f) >= 3 && isInt(f[0]) {
				f = append([]string{pending}, f...)
				pending = ""
			} else {
				continue
			}
		}
		if len(f) == 1 {
			pending = f[0]
			continue
		}
		// A name followed by other output on the same line (a log line
		// written mid-result): keep the name for the figures that follow.
		if !isInt(f[1]) {
			pending = f[0]
			continue
		}
		pending = ""
		n, _ := strconv.ParseInt(f[1], 10, 64)
		b := Bench{Pkg: pkg, Name: trimProcs(f[0]), N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.Metrics[f[i+1]] = v
		}
		if len(b.Metrics) > 0 {
			res = append(res, b)
		}
	}
	return res
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// trimProcs drops the "-P" GOMAXPROCS suffix go test appends to names.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// SQLMode is one mode's line of cmd/sqlbench output.
type SQLMode struct {
	Mode      string
	XfersPerS float64
	P50, P99  time.Duration
	Invariant string
	Err       string
}

// ParseSQLBench reads cmd/sqlbench's table: "mode xfers/s p50 p99 p99.9
// retries avgbatch fails invariant…" per mode, or "mode error: …". Extra
// columns after the first four are ignored, so added columns do not break
// it; a mode's detail lines (starting with spaces) are skipped.
func ParseSQLBench(out string) map[string]SQLMode {
	res := map[string]SQLMode{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "error:" {
			res[f[0]] = SQLMode{Mode: f[0], Err: strings.TrimSpace(strings.SplitN(line, "error:", 2)[1])}
			continue
		}
		if len(f) < 4 {
			continue
		}
		rate, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue // the header, or the banner
		}
		m := SQLMode{Mode: f[0], XfersPerS: rate}
		m.P50, _ = time.ParseDuration(f[2])
		m.P99, _ = time.ParseDuration(f[3])
		if len(f) >= 9 {
			m.Invariant = strings.Join(f[8:], " ")
		}
		res[f[0]] = m
	}
	return res
}

// Poker is cmd/poker-load's summary.
type Poker struct {
	Members               int // connected members
	VoteP50, VoteP99      time.Duration
	VoteMax               time.Duration
	FinishP50, FinishP99  time.Duration
	Errors, Lost, Busy    int
	RSSPerMemberKiB       float64 // server RSS with all connected ÷ members; 0 if not printed
	VoteN, FinishN, JoinN int
}

// ParsePokerLoad reads the report that cmd/poker-load prints.
func ParsePokerLoad(out string) (Poker, error) {
	var p Poker
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "rooms="):
			p.Members = intField(line, "connected members=")
			seen++
		case strings.HasPrefix(line, "vote -> vote_cast"):
			p.VoteN = intField(line, "n=")
			p.VoteP50, p.VoteP99, p.VoteMax = durField(line, "p50="), durField(line, "p99="), durField(line, "max=")
			seen++
		case strings.HasPrefix(line, "finish -> session_finished"):
			p.FinishN = intField(line, "n=")
			p.FinishP50, p.FinishP99 = durField(line, "p50="), durField(line, "p99=")
			seen++
		case strings.HasPrefix(line, "join "):
			p.JoinN = intField(line, "n=")
		case strings.HasPrefix(line, "errors="):
			p.Errors = intField(line, "errors=")
			p.Lost = intField(line, "lost_events=")
			p.Busy = intField(line, "busy_503=")
			seen++
		case strings.HasPrefix(line, "server RSS:"):
			if i := strings.Index(line, "per connected member:"); i >= 0 {
				f := strings.Fields(line[i+len("per connected member:"):])
				if len(f) > 0 {
					p.RSSPerMemberKiB, _ = strconv.ParseFloat(f[0], 64)
				}
			}
		}
	}
	if seen < 4 {
		return p, fmt.Errorf("poker-load summary incomplete (%d of 4 key lines)", seen)
	}
	return p, nil
}

// field returns the whitespace-delimited token after key in line.
func field(line, key string) string {
	i := strings.Index(line, key)
	if i < 0 {
		return ""
	}
	f := strings.Fields(line[i+len(key):])
	if len(f) == 0 {
		return ""
	}
	return strings.TrimRight(f[0], ",;")
}

func intField(line, key string) int {
	n, _ := strconv.Atoi(field(line, key))
	return n
}

func durField(line, key string) time.Duration {
	d, _ := time.ParseDuration(field(line, key))
	return d
}

// Jobs is one system's row of bench/cmd/jobsbench's table.
type Jobs struct {
	System     string
	JobsPerS   float64
	EnqueueP99 time.Duration
	RanTwice   int
}

// ParseJobsBench reads jobsbench's table: the rows after the header line
// that starts with "system" until the first blank line.
func ParseJobsBench(out string) map[string]Jobs {
	res := map[string]Jobs{}
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[0] == "system" {
			in = true
			continue
		}
		if !in {
			continue
		}
		if len(f) == 0 {
			in = false
			continue
		}
		if len(f) < 10 {
			continue
		}
		rate, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			continue
		}
		j := Jobs{System: f[0], JobsPerS: rate}
		j.EnqueueP99, _ = time.ParseDuration(f[6])
		j.RanTwice, _ = strconv.Atoi(f[len(f)-1])
		res[f[0]] = j
	}
	return res
}
