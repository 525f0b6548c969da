package spec

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// yamlReadable returns JSON input spelled so that the YAML parser reads its
// strings as a JSON parser would, and any other input as it is. Inside a
// string the YAML parser folds a raw NEL, LS or PS into a space, and
// refuses the escape \/ and UTF-16 surrogate pairs, which JSON encoders
// write (PHP escapes every '/', Python every character beyond the BMP):
// here they become \u escapes, '/' and the characters themselves.
func yamlReadable(data []byte) []byte {
	if !json.Valid(data) {
		return data
	}
	out := make([]byte, 0, len(data))
	inString := false
	// In valid JSON a backslash only occurs in a string, followed by an
	// escape, and \u by four hex digits.
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '"':
			inString = !inString
			out = append(out, c)
			i++
		case !inString:
			out = append(out, c)
			i++
		case c == '\\' && data[i+1] == '/':
			out = append(out, '/')
			i += 2
		case c == '\\' && data[i+1] == 'u':
			r, n := hexRune(data[i+2:i+6]), 6
			if !utf16.IsSurrogate(r) {
				out = append(out, data[i:i+n]...)
				i += n
				continue
			}
			// A pair is one character; a lone surrogate is U+FFFD, as
			// encoding/json reads it.
			if i+12 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				if p := utf16.DecodeRune(r, hexRune(data[i+8:i+12])); p != unicode.ReplacementChar {
					r, n = p, 12
				}
			}
			if n == 6 {
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			i += n
		case c == '\\':
			out = append(out, data[i:i+2]...)
			i += 2
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == '\u0085' || r == '\u2028' || r == '\u2029' {
				out = fmt.Appendf(out, `\u%04x`, r)
			} else {
				out = append(out, data[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

// hexRune reads four hex digits.
func hexRune(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
