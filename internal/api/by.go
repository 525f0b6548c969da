package api

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBy bounds who starts or acts on a rollout, in bytes (the audit trail
// keeps as much).
const MaxBy = 200

// CheckBy refuses a name of who starts or acts on a rollout (--by, a
// control request's by) that holds a control character (a newline, a tab,
// an escape: each would forge or garble the lines history, status and logs
// print; a bidirectional override or isolate, or a line or paragraph
// separator, which would reorder or break what is read), an invisible one
// (hidden), is not UTF-8, or is longer than MaxBy bytes. Empty is allowed:
// it means the caller's user@host. The starter checks it before it calls,
// and so does a rollout's or release's update validator, for a caller
// that is any Temporal client; what a signal names is kept as ShownBy.
func CheckBy(by string) error {
	if len(by) > MaxBy {
		return fmt.Errorf("by: %d bytes, more than %d", len(by), MaxBy)
	}
	if !utf8.ValidString(by) {
		return fmt.Errorf("by %s: not valid UTF-8", quoted(by))
	}
	if i := strings.IndexFunc(by, deceptive); i >= 0 {
		what := "a control character"
		if r, _ := utf8.DecodeRuneInString(by[i:]); hidden(r) {
			what = "an invisible character"
		}
		return fmt.Errorf("by %s: %s at byte %d; name who acts in printable characters", quoted(by), what, i)
	}
	return nil
}

// ShownBy is by as a record keeps it: by itself when CheckBy passes it,
// otherwise quoted (quoted), so what a signal from any client names is
// kept readable and bounded. Its output always passes CheckBy. The
// workflows keep it in their records (byVersion): a change to it, or to
// CheckBy, changes only what they record, never what they do.
func ShownBy(by string) string {
	if CheckBy(by) == nil {
		return by
	}
	return quoted(by)
}

// quoted is s in Go's double quotes, with control, invisible and
// non-graphic characters and invalid UTF-8 escaped, cut to MaxBy bytes on
// a character's boundary (ending "…" when cut).
func quoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == utf8.RuneError && size == 1:
			esc = fmt.Sprintf(`\x%02x`, s[i])
		case hidden(r):
			esc = fmt.Sprintf(`\u%04x`, r)
		default:
			q := strconv.QuoteToGraphic(string(r))
			esc = q[1 : len(q)-1]
		}
		i += size
		if b.Len()+len(esc)+len("…\"") > MaxBy {
			b.WriteString("…")
			break
		}
		b.WriteString(esc)
	}
	b.WriteByte('"')
	return b.String()
}

// deceptive says whether r controls, reorders or hides text rather than
// shows: a control character, a bidirectional control, the line or
// paragraph separator, or an invisible character (hidden).
func deceptive(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' || hidden(r)
}

// hidden says whether r shows as nothing, a fixed list (not a Unicode
// table, which grows with Go's versions): the zero-width space, the word
// joiner and the invisible operators, the byte order mark, the soft
// hyphen, the Mongolian vowel separator, the Hangul fillers and the tag
// characters. The zero-width joiner and non-joiner are not among them:
// scripts (Persian, the Indic ones) and emoji sequences need them.
func hidden(r rune) bool {
	switch {
	case r == '\u200b', r >= '\u2060' && r <= '\u2064', r == '\ufeff', r == '\u00ad', r == '\u180e',
		r == '\u115f', r == '\u1160', r == '\u3164', r == '\uffa0', r >= 0xe0000 && r <= 0xe007f:
		return true
	}
	return false
}
