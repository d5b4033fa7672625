package poker

import (
	"math"
	"slices"
	"sort"
	"strconv"
)

// Stats summarises the votes of a finished session. Average and Median are
// over the numeric votes only (nil when there are none); Consensus is true
// when at least one vote was cast and all votes are equal.
//
// The other fields make sense for every deck, numeric or not (T-shirt
// sizes): Distribution counts each value cast, MostCommon holds the value
// (or the tied values) cast most often and Agreement the share of the votes
// that went to one of them (0..1; nil without votes). Lowest and Highest
// name the members whose vote was the lowest or the highest, in the deck's
// order (numeric order without a deck), when at least two different ordered
// values were cast; "?" and "☕" are not ordered.
type Stats struct {
	Average   *float64 `json:"average"`
	Median    *float64 `json:"median"`
	Consensus bool     `json:"consensus"`
	Votes     int      `json:"votes"`

	Distribution []ValueCount `json:"distribution,omitempty"`
	MostCommon   []string     `json:"mostCommon,omitempty"`
	Agreement    *float64     `json:"agreement,omitempty"`
	Lowest       []string     `json:"lowest,omitempty"`
	Highest      []string     `json:"highest,omitempty"`
}

// ValueCount is how many votes one value got.
type ValueCount struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// ComputeStats computes the Stats of a set of votes, ordering values
// numerically (see ComputeDeckStats for a room's deck order).
func ComputeStats(votes map[string]string) Stats { return ComputeDeckStats(votes, nil) }

// unordered reports whether a card carries no size ("I don't know", "I need
// a break"): it never makes a member the lowest or the highest.
func unordered(v string) bool { return v == "?" || v == "☕" || v == "coffee" }

// ComputeDeckStats computes the Stats of a set of votes cast with deck:
// the distribution lists values in deck order (values not in the deck
// last), and lowest/highest follow the deck's order.
func ComputeDeckStats(votes map[string]string, deck []string) Stats {
	st := Stats{Votes: len(votes)}
	var nums []float64
	first, same := "", true
	count := map[string]int{}
	for _, v := range votes {
		if first == "" {
			first = v
		} else if v != first {
			same = false
		}
		count[v]++
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			nums = append(nums, f)
		}
	}
	st.Consensus = len(votes) > 0 && same
	if len(nums) > 0 {
		sort.Float64s(nums)
		sum := 0.0
		for _, f := range nums {
			sum += f
		}
		avg := sum / float64(len(nums))
		mid := len(nums) / 2
		med := nums[mid]
		if len(nums)%2 == 0 {
			med = (nums[mid-1] + nums[mid]) / 2
		}
		st.Average, st.Median = &avg, &med
	}
	if len(votes) == 0 {
		return st
	}

	// rank orders the values: deck position, else numeric, else text.
	rank := func(v string) (float64, bool) {
		if unordered(v) {
			return 0, false
		}
		if i := slices.Index(deck, v); i >= 0 {
			return float64(i), true
		}
		if deck == nil {
			if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f, true
			}
		}
		return 0, false
	}
	values := make([]string, 0, len(count))
	for v := range count {
		values = append(values, v)
	}
	sort.Slice(values, func(i, j int) bool {
		a, b := slices.Index(deck, values[i]), slices.Index(deck, values[j])
		switch {
		case a >= 0 && b >= 0:
			return a < b
		case a >= 0 || b >= 0:
			return a >= 0
		}
		ra, oka := rank(values[i])
		rb, okb := rank(values[j])
		if oka && okb && ra != rb {
			return ra < rb
		}
		if oka != okb {
			return oka
		}
		return values[i] < values[j]
	})
	top := 0
	for _, v := range values {
		st.Distribution = append(st.Distribution, ValueCount{Value: v, Count: count[v]})
		top = max(top, count[v])
	}
	for _, v := range values {
		if count[v] == top {
			st.MostCommon = append(st.MostCommon, v)
		}
	}
	agreement := float64(top) / float64(len(votes))
	st.Agreement = &agreement

	lo, hi, distinct := math.Inf(1), math.Inf(-1), map[float64]bool{}
	for _, v := range votes {
		if r, ok := rank(v); ok {
			lo, hi = min(lo, r), max(hi, r)
			distinct[r] = true
		}
	}
	if len(distinct) < 2 {
		return st
	}
	for id, v := range votes {
		r, ok := rank(v)
		switch {
		case !ok:
		case r == lo:
			st.Lowest = append(st.Lowest, id)
		case r == hi:
			st.Highest = append(st.Highest, id)
		}
	}
	sort.Strings(st.Lowest)
	sort.Strings(st.Highest)
	return st
}

// clone returns a deep copy of s (its slices and pointers are not shared):
// a room keeps the stats of a finished round in its history and hands
// copies out in events, replies and webhook payloads.
func (s Stats) clone() Stats {
	c := s
	c.Distribution = slices.Clone(s.Distribution)
	c.MostCommon = slices.Clone(s.MostCommon)
	c.Lowest = slices.Clone(s.Lowest)
	c.Highest = slices.Clone(s.Highest)
	c.Average = clonePtr(s.Average)
	c.Median = clonePtr(s.Median)
	c.Agreement = clonePtr(s.Agreement)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
