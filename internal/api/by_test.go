package api

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// ShownBy keeps a by CheckBy passes as it is, and shows any other quoted,
// escaped and within MaxBy bytes, cut on a character's boundary: what a
// record keeps of a request refused for its by.
func TestShownBy(t *testing.T) {
	for _, tc := range []struct{ by, want string }{
		{"", ""},
		{"Zoë Øster (ops) 漢字", "Zoë Øster (ops) 漢字"},
		{"mallory\nforged", `"mallory\nforged"`},
		{"eve\u202egnp.exe", `"eve\u202egnp.exe"`},
		{"bad \xff byte", `"bad \xff byte"`},
	} {
		if got := ShownBy(tc.by); got != tc.want {
			t.Errorf("ShownBy(%q) = %q, want %q", tc.by, got, tc.want)
		}
	}
	for _, by := range []string{strings.Repeat("漢", MaxBy), strings.Repeat("\x1b", MaxBy), strings.Repeat("a", MaxBy+1)} {
		got := ShownBy(by)
		if err := CheckBy(got); err != nil || !utf8.ValidString(got) || !strings.HasSuffix(got, `…"`) {
			t.Errorf("ShownBy(%d bytes) = %q (%d bytes): %v", len(by), got, len(got), err)
		}
	}
	for _, by := range []string{strings.Repeat("\n", 10*MaxBy), strings.Repeat("\xff", MaxBy)} {
		if err := CheckBy(by); err == nil || len(err.Error()) > MaxBy+80 || strings.ContainsAny(err.Error(), "\n\xff") {
			t.Errorf("CheckBy(%d bytes): %q, want an error that quotes at most %d bytes of it, escaped", len(by), err, MaxBy)
		}
	}
	for _, by := range []string{"ali\u200bce", "\ufeffalice", "al\u00adice", "\u3164", "alice\U000e0041"} {
		if err := CheckBy(by); err == nil || !strings.Contains(err.Error(), "an invisible character") || !strings.Contains(ShownBy(by), `\u`) {
			t.Errorf("CheckBy(%q) = %v, ShownBy %q: want it refused and shown escaped", by, err, ShownBy(by))
		}
	}
	for _, by := range []string{"می\u200cخواهم", "👩\u200d💻"} {
		if err := CheckBy(by); err != nil {
			t.Errorf("CheckBy(%q): %v, want the joiners scripts and emoji need passed", by, err)
		}
	}
}
