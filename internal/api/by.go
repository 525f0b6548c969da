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
// separator, which would reorder or break what is read), is not UTF-8, or
// is longer than MaxBy bytes. Empty is allowed: it means the caller's
// user@host. The starter checks it before it calls, and the workflows
// check it again, for a caller that is any Temporal client (byVersion).
func CheckBy(by string) error {
	// The length first: the other error quotes by.
	if len(by) > MaxBy {
		return fmt.Errorf("by: %d bytes, more than %d", len(by), MaxBy)
	}
	if !utf8.ValidString(by) {
		return fmt.Errorf("by %q: not valid UTF-8", by)
	}
	if i := strings.IndexFunc(by, deceptive); i >= 0 {
		return fmt.Errorf("by %q: a control character at byte %d; name who acts in printable characters", by, i)
	}
	return nil
}

// ShownBy is by as a record keeps it: by itself when CheckBy passes it;
// otherwise quoted with its control characters escaped (and invalid UTF-8
// as \x escapes), cut to MaxBy bytes, so a request refused for its by is
// still recorded, readably.
func ShownBy(by string) string {
	if CheckBy(by) == nil {
		return by
	}
	s := strconv.QuoteToGraphic(by)
	if len(s) <= MaxBy {
		return s
	}
	cut := MaxBy - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// deceptive says whether r controls or reorders text rather than shows:
// a control character, a bidirectional control, or the line or paragraph
// separator.
func deceptive(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}
