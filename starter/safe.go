package main

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// safeWriter writes text with every character that could command or
// deceive a terminal spelled out as an escape (\u001b, \u202e, \x9b):
// what the starter prints comes partly from others (a reason, a name, a
// check's error, a platform's message), and one of them could otherwise
// clear the screen, move the cursor, retitle the window or reorder what
// the operator reads. Newlines and tabs pass. The escapes are JSON's own
// form, so JSON output stays valid (encoding/json writes the C0 controls
// escaped already and these others as they are).
type safeWriter struct {
	w io.Writer
	// partial is the start of a UTF-8 sequence the last write ended in.
	partial []byte
}

func (s *safeWriter) Write(p []byte) (int, error) {
	buf := p
	if len(s.partial) > 0 {
		buf = append(s.partial, p...)
		s.partial = nil
	}
	out := make([]byte, 0, len(buf))
	for i := 0; i < len(buf); {
		if !utf8.FullRune(buf[i:]) {
			s.partial = append([]byte(nil), buf[i:]...)
			break
		}
		var size int
		out, size = appendSafe(out, buf[i:])
		i += size
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes, escaped, what is left of a UTF-8 sequence cut short.
func (s *safeWriter) Flush() error {
	if len(s.partial) == 0 {
		return nil
	}
	var out []byte
	for _, b := range s.partial {
		out = fmt.Appendf(out, `\x%02x`, b)
	}
	s.partial = nil
	_, err := s.w.Write(out)
	return err
}

// clean is s as a safeWriter writes it.
func clean(s string) string {
	var b strings.Builder
	w := &safeWriter{w: &b}
	_, _ = io.WriteString(w, s)
	_ = w.Flush()
	return b.String()
}

// appendSafe appends the first character of b to out, escaped when it is
// unsafe, and returns out and the bytes it took.
func appendSafe(out, b []byte) ([]byte, int) {
	r, size := utf8.DecodeRune(b)
	switch {
	case r == utf8.RuneError && size == 1:
		// Not UTF-8: a lone byte such as 0x9b, which some terminals
		// take as the start of a control sequence.
		return fmt.Appendf(out, `\x%02x`, b[0]), 1
	case unsafeRune(r):
		return fmt.Appendf(out, `\u%04x`, r), size
	}
	return append(out, b[:size]...), size
}

// unsafeRune says whether r commands a terminal or reorders text: the C0
// controls but newline and tab, DEL, the C1 controls, the bidirectional
// marks, embeddings, overrides and isolates, and the line and paragraph
// separators.
func unsafeRune(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
		return true
	case r == 0x2028 || r == 0x2029:
		return true
	}
	return unicode.Is(unicode.Bidi_Control, r)
}

// rawOf is the writer under w when w is a safeWriter, and w otherwise.
func rawOf(w io.Writer) io.Writer {
	if s, ok := w.(*safeWriter); ok {
		return s.w
	}
	return w
}
