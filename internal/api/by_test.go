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
		if err := CheckBy(got); err != nil || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Errorf("ShownBy(%d bytes) = %q (%d bytes): %v", len(by), got, len(got), err)
		}
	}
	if err := CheckBy(strings.Repeat("\n", 10*MaxBy)); err == nil || len(err.Error()) > 100 {
		t.Errorf("CheckBy of a long by with control characters: %v, want the length named, not the by", err)
	}
}
