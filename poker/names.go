package poker

import (
	"strings"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// Member names are compared as people see them: two names that render
// alike are the same name. A name is shown as typed, less invisible
// characters, in NFC; it is compared by its key: compatibility-normalised
// and case-folded (the PRECIS Nickname profile, RFC 8266), through the
// Unicode confusable skeleton (UTS #39), so "ＢＯＢ", "Βοb" (Greek) and
// "Воb" (Cyrillic) are all "bob", and "José" is one name whether typed
// composed or decomposed.

// invisible reports runes that render as nothing: format characters
// (zero-width joiners, bidi marks), the Hangul fillers, variation
// selectors.
func invisible(r rune) bool {
	switch r {
	case 0x115F, 0x1160, 0x3164, 0xFFA0, 0x034F, 0x180E:
		return true
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r)
}

// displayName removes invisible characters and composes s (NFC). It returns
// "" when nothing visible is left: a name made only of spaces, invisible or
// combining characters.
func displayName(s string) string {
	s = norm.NFC.String(strings.Map(func(r rune) rune {
		if invisible(r) {
			return -1
		}
		return r
	}, s))
	s = strings.Join(strings.Fields(s), " ")
	for _, r := range s {
		if !unicode.IsSpace(r) && !unicode.In(r, unicode.Mn, unicode.Me) {
			return s
		}
	}
	return ""
}

// nameKey is what two names must share to be the same name.
func nameKey(s string) string {
	skel := confusables.Skeleton(norm.NFKC.String(displayName(s)))
	if k, err := precis.Nickname.CompareKey(skel); err == nil {
		// The skeleton maps some letters to look-alikes that case-fold
		// differently; a second pass makes the key a fixed point.
		return confusables.Skeleton(k)
	}
	return strings.ToLower(skel) // a rune the profile disallows: still comparable
}

// sameName compares member names as people see them.
func sameName(a, b string) bool { return nameKey(a) == nameKey(b) }
