package activities

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
)

// A watch's unwritten rounds travel in every heartbeat and in its result,
// and the server refuses a payload over 2 MiB (non-retryably: the watch,
// then the stage, fails). So the buffer is bounded by its encoded size, not
// by a count of rounds, and a buffered round keeps its verdicts and
// shortened error texts but no excerpts (the newest keeps them until the
// next round).
const (
	// maxUnwrittenBytes bounds the JSON size of WatchResult.Unwritten.
	maxUnwrittenBytes = 256 << 10
	// maxUnwrittenError bounds each buffered result's error text (bytes).
	maxUnwrittenError = 256
)

// keepUnwritten adds a round to the rounds waiting for the audit store,
// dropping the oldest while the buffer is over maxUnwrittenBytes. The
// newest round keeps its full evidence (it is written at once when the
// store is up); the ones before it, still waiting, are slimmed. What is
// dropped is counted, in sum.Dropped and on the oldest round kept (its
// Dropped), so the workflow records how many rounds are missing.
//
// It never writes to the slice it was given, only to a new one: a copy of
// sum (the one a heartbeat is sending, or a result already returned)
// shares that slice and keeps what it held.
func keepUnwritten(sum *WatchResult, r audit.Round) {
	kept := make([]audit.Round, len(sum.Unwritten), len(sum.Unwritten)+1)
	copy(kept, sum.Unwritten)
	if n := len(kept); n > 0 {
		kept[n-1].Results = slimResults(kept[n-1].Results)
	}
	sum.Unwritten = append(kept, r)
	sizes := make([]int, len(sum.Unwritten))
	total := 2 // the brackets
	for i, u := range sum.Unwritten {
		sizes[i] = roundBytes(u) + 1 // and a comma
		total += sizes[i]
	}
	n, carried := 0, 0
	for total > maxUnwrittenBytes && n < len(sum.Unwritten)-1 {
		old := sum.Unwritten[n]
		carried += old.Dropped
		if !old.Note() {
			carried++
			sum.Dropped++
		}
		total -= sizes[n]
		n++
	}
	if n == 0 {
		return
	}
	sum.Unwritten = append([]audit.Round(nil), sum.Unwritten[n:]...)
	sum.Unwritten[0].Dropped += carried
}

// written leaves, once the store took the unwritten rounds, only what the
// store cannot record: the counts of rounds dropped before it came back,
// as notes for the workflow's audit writer.
func written(sum *WatchResult) {
	var notes []audit.Round
	for _, u := range sum.Unwritten {
		if u.Dropped > 0 {
			u.Results = nil
			notes = append(notes, u)
		}
	}
	sum.Unwritten = notes
}

// evidence returns the unwritten rounds the store has not taken yet (notes
// carry nothing to write).
func evidence(rounds []audit.Round) []audit.Round {
	var out []audit.Round
	for _, r := range rounds {
		if !r.Note() {
			out = append(out, r)
		}
	}
	return out
}

// slimResults copies results without excerpts and with error texts cut to
// maxUnwrittenError.
func slimResults(rs []health.Result) []health.Result {
	if rs == nil {
		return nil
	}
	out := make([]health.Result, len(rs))
	for i, r := range rs {
		r.Excerpt = ""
		r.Error = truncate(r.Error, maxUnwrittenError)
		out[i] = r
	}
	return out
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + mark
}

// roundBytes is a round's JSON size, as the default data converter encodes it.
func roundBytes(r audit.Round) int {
	b, err := json.Marshal(r)
	if err != nil {
		return 0
	}
	return len(b)
}
