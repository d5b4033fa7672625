package poker_test

import (
	"encoding/json"
	"testing"

	"github.com/reactorgo/reactor/poker"
)

// TestComputeDeckStats: the statistics that also mean something for a
// T-shirt deck — distribution in deck order, most common value, agreement,
// lowest and highest voters — and that "?" never counts as low or high.
func TestComputeDeckStats(t *testing.T) {
	tshirt := []string{"XS", "S", "M", "L", "XL", "?"}
	for _, tc := range []struct {
		name  string
		votes map[string]string
		deck  []string
		want  string
	}{
		{"none", map[string]string{}, tshirt,
			`{"average":null,"median":null,"consensus":false,"votes":0}`},
		{"tshirt", map[string]string{"a": "M", "b": "XL", "c": "M", "d": "S", "e": "?"}, tshirt,
			`{"average":null,"median":null,"consensus":false,"votes":5,` +
				`"distribution":[{"value":"S","count":1},{"value":"M","count":2},{"value":"XL","count":1},{"value":"?","count":1}],` +
				`"mostCommon":["M"],"agreement":0.4,"lowest":["d"],"highest":["b"]}`},
		{"tie, one ordered value", map[string]string{"a": "L", "b": "?"}, tshirt,
			`{"average":null,"median":null,"consensus":false,"votes":2,` +
				`"distribution":[{"value":"L","count":1},{"value":"?","count":1}],"mostCommon":["L","?"],"agreement":0.5}`},
		{"consensus", map[string]string{"a": "5", "b": "5"}, nil,
			`{"average":5,"median":5,"consensus":true,"votes":2,"distribution":[{"value":"5","count":2}],"mostCommon":["5"],"agreement":1}`},
		{"numeric without deck", map[string]string{"a": "13", "b": "2", "c": "2", "d": "13"}, nil,
			`{"average":7.5,"median":7.5,"consensus":false,"votes":4,` +
				`"distribution":[{"value":"2","count":2},{"value":"13","count":2}],"mostCommon":["2","13"],"agreement":0.5,` +
				`"lowest":["b","c"],"highest":["a","d"]}`},
	} {
		b, _ := json.Marshal(poker.ComputeDeckStats(tc.votes, tc.deck))
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, b, tc.want)
		}
	}
}
