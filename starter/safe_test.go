package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

func TestSafeWriterEscapesWhatCommandsATerminal(t *testing.T) {
	for in, want := range map[string]string{
		"plain, é and 漢字\n\tnext": "plain, é and 漢字\n\tnext",
		"\x1b[2J\x1b]0;title\x07": `\u001b[2J\u001b]0;title\u0007`,
		"over\rwrite":             `over\u000dwrite`,
		"del\x7f":                 `del\u007f`,
		"c1 \u009b31m":            `c1 \u009b31m`,
		"lone \x9b byte":          `lone \x9b byte`,
		"abc\u202edcba":           `abc\u202edcba`,
		"\u2066iso\u2069 \u200f":  `\u2066iso\u2069 \u200f`,
		"line\u2028para\u2029":    `line\u2028para\u2029`,
	} {
		var b bytes.Buffer
		w := &safeWriter{w: &b}
		_, err := w.Write([]byte(in))
		require.NoError(t, err)
		require.NoError(t, w.Flush())
		require.Equal(t, want, b.String(), "%q", in)
		require.Equal(t, want, clean(in), "%q", in)
	}
}

func TestSafeWriterJoinsACharacterSplitAcrossWrites(t *testing.T) {
	var b bytes.Buffer
	w := &safeWriter{w: &b}
	rlo := []byte("\u202e")
	for _, part := range [][]byte{[]byte("a"), rlo[:1], rlo[1:2], append(rlo[2:], 'b')} {
		n, err := w.Write(part)
		require.NoError(t, err)
		require.Equal(t, len(part), n)
	}
	_, _ = w.Write([]byte("é")[:1])
	require.NoError(t, w.Flush())
	require.Equal(t, `a\u202eb\xc3`, b.String())
}

func TestSafeWriterKeepsJSONValid(t *testing.T) {
	in := map[string]string{"reason": "\x1b[2J\u202e\u0085\u2028 ok"}
	var b bytes.Buffer
	require.NoError(t, json.NewEncoder(&safeWriter{w: &b}).Encode(in))
	require.NotContains(t, b.String(), "\u202e")
	var back map[string]string
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	require.Equal(t, in, back)
}

// TestEveryCommandPrintsThroughASafeWriter: what a command writes to its
// output and error streams, and the error it returns, reach the caller's
// streams escaped.
func TestEveryCommandPrintsThroughASafeWriter(t *testing.T) {
	root := newRoot(&globals{})
	hostile := "\x1b[2J\x1b]0;pwned\x07\u202eevil"
	root.AddCommand(&cobra.Command{Use: "hostile", RunE: func(cmd *cobra.Command, _ []string) error {
		cmd.Println(hostile)
		cmd.PrintErrln(hostile)
		return errors.New(hostile)
	}})
	var out, errOut bytes.Buffer
	require.Equal(t, exitFailure, runRoot(root, []string{"hostile"}, &out, &errOut))
	for _, s := range []string{out.String(), errOut.String()} {
		require.NotContains(t, s, "\x1b")
		require.NotContains(t, s, "\x07")
		require.NotContains(t, s, "\u202e")
		require.Contains(t, s, `\u001b[2J`)
	}
	require.Equal(t, 2, strings.Count(errOut.String(), `\u202eevil`), "the error line and the command's own")
}

// TestRedrawCleansEachLine: a terminal frame keeps its own escapes and
// escapes those of the lines it draws.
func TestRedrawCleansEachLine(t *testing.T) {
	var b bytes.Buffer
	d := &display{w: &b, mode: modeTerminal}
	d.redraw([]string{"reason: \x1b[2J\u202eevil"})
	require.Equal(t, "\x1b[2Kreason: \\u001b[2J\\u202eevil\n\x1b[J", b.String())
}

// TestRedrawKeepsOneRowPerLine: a newline or a tab in text from others
// (a stage's error) neither adds a row the redraw would not count nor
// widens the row past what cut measured.
func TestRedrawKeepsOneRowPerLine(t *testing.T) {
	var b bytes.Buffer
	d := &display{w: &b, mode: modeTerminal, width: 60}
	d.redraw([]string{"stage 1 failed: boom\noutcome: succeeded", "a\tb"})
	require.Equal(t, "\x1b[2Kstage 1 failed: boom\\noutcome: succeeded\n\x1b[2Ka b\n\x1b[J", b.String())
	require.Equal(t, 2, d.drawn)
}

func TestPrintableQuotesWhatTheWriterWouldEscape(t *testing.T) {
	require.Equal(t, `"ali\u202ece"`, printable("ali\u202ece"))
	require.Equal(t, "Zoë", printable("Zoë"))
}
