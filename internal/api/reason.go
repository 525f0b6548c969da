package api

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxReason bounds why a control request or a hold clear was made, in
// bytes: the records that keep it (the control log in a rollout's or
// release's state, carried across continue-as-new and returned by every
// status query and update, the audit queue, notifications) must stay far
// below Temporal's 2 MiB payload limit however a client fills it.
const MaxReason = 1000

// MaxControls bounds the control records a rollout or release keeps in
// its state; the oldest beyond it are dropped from there (counted in
// ControlsOmitted) once the audit trail has them.
const MaxControls = 100

// CheckReason refuses a reason longer than MaxReason bytes, not UTF-8, or
// holding a NUL (no text column keeps one). Lines and tabs are allowed:
// a reason is prose, and what prints it quotes or escapes it. The starter
// checks it before it calls, and so does a rollout's or release's update
// validator; what a signal carries is kept as KeptReason.
func CheckReason(reason string) error {
	switch {
	case len(reason) > MaxReason:
		return fmt.Errorf("reason: %d bytes, more than %d", len(reason), MaxReason)
	case !utf8.ValidString(reason):
		return fmt.Errorf("reason: not valid UTF-8")
	case strings.IndexByte(reason, 0) >= 0:
		return fmt.Errorf("reason: a NUL byte at byte %d", strings.IndexByte(reason, 0))
	}
	return nil
}

// KeptReason is reason as a record keeps it: itself when CheckReason
// passes it, otherwise valid UTF-8 (invalid bytes as U+FFFD), without NUL,
// cut on a character boundary to at most MaxReason bytes (ending "…" when
// cut). Its output always passes CheckReason.
func KeptReason(reason string) string {
	if CheckReason(reason) == nil {
		return reason
	}
	s := strings.ReplaceAll(strings.ToValidUTF8(reason, "\uFFFD"), "\x00", "")
	if len(s) <= MaxReason {
		return s
	}
	// s is valid UTF-8: a cut can leave only its last character partial.
	s = s[:MaxReason-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
