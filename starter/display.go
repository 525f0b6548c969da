package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// displayMode is how a followed rollout or release is shown.
type displayMode int

const (
	// modeQuiet shows nothing (deploy --wait --json prints only the end).
	modeQuiet displayMode = iota
	// modeTerminal redraws a frame in place with ANSI escapes.
	modeTerminal
	// modePlain prints a line when something changed, no escapes.
	modePlain
	// modeJSON prints the status as one JSON line when it changed.
	modeJSON
)

// display shows successive views of a rollout or release.
type display struct {
	w    io.Writer
	mode displayMode
	// width is the terminal's: frame lines are cut to it, so none wraps and
	// the redraw moves up exactly the lines it drew.
	width int
	// height caps a frame, so the redraw never moves up past the top of
	// the screen; the last frame (final) is drawn whole.
	height int
	final  bool
	drawn  int
	seen   map[string]string
	last   string
}

// newDisplay picks the mode for w: JSON when asked, a redrawn frame on a
// terminal, plain lines otherwise.
func newDisplay(w io.Writer, jsonOut bool) *display {
	d := &display{w: w, mode: modePlain}
	switch {
	case jsonOut:
		d.mode = modeJSON
	default:
		if f, ok := rawOf(w).(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			// The frame's own escapes go to the terminal as they are; each
			// line of it is cleaned (redraw).
			d.mode, d.w = modeTerminal, f
			if width, height, err := term.GetSize(int(f.Fd())); err == nil {
				d.width, d.height = width, height
			}
		}
	}
	return d
}

// show shows one view.
func (d *display) show(v view, now time.Time) error {
	switch d.mode {
	case modeTerminal:
		d.redraw(v.frame())
	case modePlain:
		d.printFacts(v.facts(), now)
	case modeJSON:
		if v.value() == nil {
			return nil
		}
		b, err := json.Marshal(v.value())
		if err != nil {
			return err
		}
		if s := string(b); s != d.last {
			d.last = s
			fmt.Fprintln(d.w, s)
		}
	}
	return nil
}

// redraw replaces the frame drawn last with lines: up to its first line,
// each line cleared and rewritten, the rest of the screen cleared.
func (d *display) redraw(lines []string) {
	if d.height > 2 && len(lines) >= d.height && !d.final {
		more := len(lines) - (d.height - 2)
		lines = append(lines[:d.height-2:d.height-2], fmt.Sprintf("… %d more lines: a taller terminal shows them", more))
	}
	var b strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r", d.drawn)
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(cut(frameLine(l), d.width))
		b.WriteString("\n")
	}
	b.WriteString("\x1b[J")
	d.drawn = len(lines)
	_, _ = io.WriteString(d.w, b.String())
}

// frameLine is l as one row of a frame: cleaned, and with its newlines
// spelled out and its tabs as spaces, so that text from others (an error,
// a reason) cannot add a row the redraw does not count, or pose as one of
// the frame's own, and no row is wider than cut measured.
func frameLine(l string) string {
	return clean(frameSpacing.Replace(l))
}

var frameSpacing = strings.NewReplacer("\n", `\n`, "\t", " ")

// cut shortens s to fit a terminal width columns wide (0: no limit).
func cut(s string, width int) string {
	r := []rune(s)
	if width <= 1 || len(r) < width {
		return s
	}
	return string(r[:width-2]) + "…"
}

// printFacts prints each fact that is new or changed since last printed.
func (d *display) printFacts(fs []fact, now time.Time) {
	if d.seen == nil {
		d.seen = map[string]string{}
	}
	stamp := now.Format("15:04:05") + " "
	for _, f := range fs {
		sig := f.sig
		if sig == "" {
			sig = f.text
		}
		if old, ok := d.seen[f.key]; ok && old == sig {
			continue
		}
		d.seen[f.key] = sig
		fmt.Fprintln(d.w, stamp+strings.ReplaceAll(f.text, "\n", "\n"+strings.Repeat(" ", len(stamp))))
	}
}
