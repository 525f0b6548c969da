package api

import (
	"strings"
	"testing"
)

func TestKeptReason(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"plain":         "error rate up",
		"lines":         "error rate up\nsee the dashboard",
		"at the limit":  strings.Repeat("a", MaxReason),
		"over":          strings.Repeat("a", MaxReason+1),
		"far over":      strings.Repeat("ab\n", 700_000),
		"multibyte cut": strings.Repeat("é", MaxReason),
		"four-byte cut": strings.Repeat("😀", MaxReason/4+3),
		"invalid utf-8": "abc\xff\xfedef",
		"nul":           "a\x00b",
		"nul over":      strings.Repeat("\x00", 5*MaxReason) + "x",
	} {
		t.Run(name, func(t *testing.T) {
			got := KeptReason(in)
			if err := CheckReason(got); err != nil {
				t.Fatalf("KeptReason(%q…) = %q…, which CheckReason refuses: %v", cutForLog(in), cutForLog(got), err)
			}
			if CheckReason(in) == nil && got != in {
				t.Fatalf("a reason CheckReason passes was changed: %q → %q", cutForLog(in), cutForLog(got))
			}
			if len(in) > MaxReason && !strings.HasSuffix(got, "…") && strings.ReplaceAll(in, "\x00", "") == in {
				t.Fatalf("a cut reason does not say so: %q", cutForLog(got))
			}
			if len(strings.ReplaceAll(in, "\x00", "")) > MaxReason && len(got) < MaxReason-len("…")-3 {
				t.Fatalf("cut to %d bytes, not near the bound", len(got))
			}
		})
	}
	if got := KeptReason("abc\xffdef"); got != "abc\uFFFDdef" {
		t.Fatalf("invalid byte: got %q", got)
	}
	if got := KeptReason("a\x00b"); got != "ab" {
		t.Fatalf("NUL: got %q", got)
	}
}

func TestCheckReason(t *testing.T) {
	for in, want := range map[string]string{
		strings.Repeat("a", MaxReason+1): "reason: 1001 bytes, more than 1000",
		"abc\xff":                        "reason: not valid UTF-8",
		"ab\x00":                         "reason: a NUL byte at byte 2",
	} {
		err := CheckReason(in)
		if err == nil || err.Error() != want {
			t.Fatalf("CheckReason(%q…) = %v, want %q", cutForLog(in), err, want)
		}
	}
	if err := CheckReason(strings.Repeat("a", MaxReason)); err != nil {
		t.Fatal(err)
	}
}

func cutForLog(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.ToValidUTF8(s, "?")
}
