package server

import (
	"encoding/csv"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reactorgo/reactor/poker"
)

// historyCSVHeader is the header row of GET …/history?format=csv.
var historyCSVHeader = []string{"round", "story", "estimate", "votes", "average", "median", "consensus", "finished_at"}

// writeHistoryCSV writes rounds as CSV (RFC 4180): a header row, then one
// row per round. "votes" lists "name: value" pairs separated by "; ",
// sorted by name, with "-" for a voter who did not vote. Text a
// spreadsheet would run as a formula (starting with = + - @, tab or CR) is
// prefixed with a quote (OWASP's CSV-injection advice).
func writeHistoryCSV(w io.Writer, rounds []poker.Round) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(historyCSVHeader); err != nil {
		return err
	}
	for _, h := range rounds {
		estimate := ""
		if h.Estimate != nil {
			estimate = *h.Estimate
		}
		row := []string{
			strconv.Itoa(h.Round), safeCell(h.Story), safeCell(estimate), safeCell(votesCell(h)),
			number(h.Stats.Average), number(h.Stats.Median), strconv.FormatBool(h.Stats.Consensus),
			h.FinishedAt.UTC().Format(time.RFC3339),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func votesCell(h poker.Round) string {
	type pair struct{ name, value string }
	var pairs []pair
	seen := map[string]bool{}
	for id, name := range h.Names {
		v, ok := h.Votes[id]
		if !ok {
			v = "-"
		}
		pairs = append(pairs, pair{name, v})
		seen[id] = true
	}
	for id, v := range h.Votes { // voted, then became an observer or left before the reveal
		if !seen[id] {
			pairs = append(pairs, pair{id, v})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].name != pairs[j].name {
			return pairs[i].name < pairs[j].name
		}
		return pairs[i].value < pairs[j].value
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.name + ": " + p.value
	}
	return strings.Join(parts, "; ")
}

func number(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
