package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// v1 ok, v2 ok, v3 rolled back, v4 ok (current), v5 rejected: newest first.
func history() revisions {
	revs := revisions{WorkflowID: "deploy:docker:hello", Source: "store", Revisions: []revision{
		{Number: 5, RunID: "r5", Image: "hello:v5", Outcome: "rejected"},
		{Number: 4, RunID: "r4", Image: "hello:v4", Outcome: "succeeded"},
		{Number: 3, RunID: "r3", Image: "hello:v3", Outcome: "rolled_back"},
		{Number: 2, RunID: "r2", Image: "hello:v2", Outcome: "succeeded"},
		{Number: 1, RunID: "r1", Image: "hello:v1", Outcome: "succeeded"},
	}}
	markCurrent(revs.Revisions)
	return revs
}

func TestChooseRevision(t *testing.T) {
	for _, tc := range []struct {
		name, to string
		revs     func() revisions
		want     int    // revision picked
		refused  string // else: the refusal's words
	}{
		{name: "default: the succeeded one before the current", revs: history, want: 2},
		{name: "by number", to: "1", revs: history, want: 1},
		{name: "by run ID", to: "r2", revs: history, want: 2},
		{name: "the current itself", to: "4", revs: history, want: 4},
		{name: "a revision that rolled back", to: "3", revs: history, refused: "revision 3 of deploy:docker:hello (hello:v3, run r3) did not succeed (rolled_back)"},
		{name: "a rejected one", to: "r5", revs: history, refused: "did not succeed (rejected)"},
		{name: "no such revision", to: "9", revs: history, refused: `revision 9 of deploy:docker:hello does not exist`},
		{name: "neither a number nor a run ID", to: "v9", revs: history, refused: `"v9" is neither a revision number nor a run ID`},
		{name: "nothing succeeded before the current", revs: func() revisions {
			r := history()
			r.Revisions = r.Revisions[:3]
			return r
		}, refused: "no succeeded revision of deploy:docker:hello before the current one (revision 4, hello:v4)"},
		{name: "nothing succeeded", revs: func() revisions {
			return revisions{WorkflowID: "deploy:docker:x", Revisions: []revision{{Number: 1, RunID: "a", Outcome: "rolled_back"}}}
		}, refused: "no rollout of deploy:docker:x succeeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pick, current, err := chooseRevision(tc.revs(), tc.to)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("chooseRevision(--to %q) = revision %d, %v; want refused with %q", tc.to, pick.Number, err, tc.refused)
				}
				return
			}
			if err != nil || pick.Number != tc.want {
				t.Fatalf("chooseRevision(--to %q) = revision %d, %v; want %d", tc.to, pick.Number, err, tc.want)
			}
			if current.Number != 4 {
				t.Errorf("current = revision %d, want 4 (the newest that succeeded)", current.Number)
			}
		})
	}
	if _, _, err := chooseRevision(history(), "nope"); !errors.Is(err, errNoRevision) {
		t.Errorf("an unknown --to: %v, want errNoRevision", err)
	}
}

// An undo is a new request (no execution ID to join), with the strategy
// asked for and a spec that validates.
func TestUndoSpec(t *testing.T) {
	data, err := os.ReadFile("../deployments/examples/canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := spec.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	s.ExecutionID = "ci-41"
	s.Strategy.Steps, s.Strategy.Bake = []int{25, 100}, spec.Duration(5e9)
	got := undoSpec(s, "")
	if got.ExecutionID != "" || got.Strategy.Type != spec.Canary || len(got.Strategy.Steps) != 2 {
		t.Errorf("undo with the revision's strategy: %+v", got.Strategy)
	}
	for _, st := range []string{spec.Recreate, spec.Rolling, spec.BlueGreen, spec.Canary} {
		got := undoSpec(s, st)
		if got.Strategy.Type != st {
			t.Errorf("--strategy %s: ran %s", st, got.Strategy.Type)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("--strategy %s: the spec does not validate: %v", st, err)
		}
	}
	if got := undoSpec(s, spec.Rolling); got.Strategy.Bake != s.Strategy.Bake || len(got.Strategy.Steps) != 0 {
		t.Errorf("--strategy rolling keeps the bake and drops the canary's steps: %+v", got.Strategy)
	}
}

// An undo of an undo goes back one more good revision: the one undone is
// never deployed again. v1, v2, v3 ok; r4 an undo to v2 (r2); undo again
// goes to v1, not to v3 (what r4 undid) nor v2 (where the target is).
func TestChooseRevisionAfterAnUndo(t *testing.T) {
	revs := func(extra ...revision) revisions {
		r := revisions{WorkflowID: "deploy:docker:hello", Source: "store", Revisions: append(extra,
			revision{Number: 4, RunID: "r4", Image: "hello:v2", Outcome: "succeeded", UndoOf: "r2"},
			revision{Number: 3, RunID: "r3", Image: "hello:v3", Outcome: "succeeded"},
			revision{Number: 2, RunID: "r2", Image: "hello:v2", Outcome: "succeeded"},
			revision{Number: 1, RunID: "r1", Image: "hello:v1", Outcome: "succeeded"},
		)}
		markCurrent(r.Revisions)
		return r
	}
	pick, current, err := chooseRevision(revs(), "")
	if err != nil || pick.Number != 1 || current.Number != 4 {
		t.Fatalf("undo after an undo to revision 2: revision %d (current %d), %v; want revision 1 (current 4)", pick.Number, current.Number, err)
	}
	// Twice: r5 undid r4 (back to v1); nothing good before v1.
	_, _, err = chooseRevision(revs(revision{Number: 5, RunID: "r5", Image: "hello:v1", Outcome: "succeeded", UndoOf: "r1"}), "")
	if err == nil || !strings.Contains(err.Error(), "revision 5 restored revision 1 (hello:v1)") ||
		!strings.Contains(err.Error(), "no succeeded revision of deploy:docker:hello before revision 1") {
		t.Fatalf("a third undo with nothing good left: %v, want refused naming revision 1", err)
	}
	// A new rollout after the undo: undo goes back to the undo's state.
	pick, _, err = chooseRevision(revs(revision{Number: 5, RunID: "r5", Image: "hello:v5", Outcome: "succeeded"}), "")
	if err != nil || pick.Number != 4 {
		t.Fatalf("undo of a rollout after an undo: revision %d, %v; want 4 (what the target ran before)", pick.Number, err)
	}
	// The restored revision no longer listed: refused, not a guess.
	r := revs()
	r.Revisions = r.Revisions[:1]
	if _, _, err := chooseRevision(r, ""); err == nil || !strings.Contains(err.Error(), "run r2") || !strings.Contains(err.Error(), "--to") {
		t.Fatalf("undo after an undo whose revision is not listed: %v, want refused naming run r2 and --to", err)
	}
	// --to still names any succeeded revision.
	if pick, _, err := chooseRevision(revs(), "3"); err != nil || pick.Number != 3 {
		t.Errorf("--to 3 after an undo: revision %d, %v", pick.Number, err)
	}
}

// After a run that left the target mid-way (rollback_failed: the snapshot
// was not restored; terminated, timed out, closed mid-rollout: no rollback
// ran), the target no longer runs the newest succeeded revision: undo
// restores that one, and names the run that left it as the current.
func TestChooseRevisionAfterATargetLeftMidway(t *testing.T) {
	for _, outcome := range []string{"rollback_failed", "terminated", "timed_out", "canceled", "deploying"} {
		t.Run(outcome, func(t *testing.T) {
			revs := history() // r5 rejected, r4 ok (current), r3 rolled back
			revs.Revisions = append([]revision{{Number: 6, RunID: "r6", Image: "hello:v6", Outcome: outcome}}, revs.Revisions...)
			pick, current, err := chooseRevision(revs, "")
			if err != nil || pick.Number != 4 || current.Number != 6 {
				t.Fatalf("undo after a run that ended %s: revision %d (current %d), %v; want 4, the snapshot it did not restore (current 6)",
					outcome, pick.Number, current.Number, err)
			}
		})
	}
	// Rolled back and rejected runs left the target as it was.
	pick, current, err := chooseRevision(history(), "")
	if err != nil || pick.Number != 2 || current.Number != 4 {
		t.Errorf("after rejected and rolled back runs: revision %d (current %d), %v; want 2 (current 4)", pick.Number, current.Number, err)
	}
}

// A revision number names the same revision for good only in the audit
// trail: Temporal's numbers move as its retention drops old runs, so
// there --to takes a run ID and a number is refused, saying which run it
// names now. A number that names no revision is refused naming it.
func TestChooseRevisionNumbers(t *testing.T) {
	revs := history()
	revs.Source = "temporal"
	_, _, err := chooseRevision(revs, "2")
	if err == nil || !strings.Contains(err.Error(), "revision 2 is run r2 now") || !strings.Contains(err.Error(), "--to r2") {
		t.Errorf("--to 2 from Temporal's visibility: %v, want refused naming run r2", err)
	}
	if pick, _, err := chooseRevision(revs, "r2"); err != nil || pick.RunID != "r2" {
		t.Errorf("--to r2 from Temporal's visibility: %+v, %v", pick, err)
	}
	if pick, _, err := chooseRevision(revs, ""); err != nil || pick.RunID != "r2" {
		t.Errorf("the default from Temporal's visibility: %+v, %v", pick, err)
	}
	revs.Source = "store"
	if _, _, err := chooseRevision(revs, "9"); err == nil || !strings.Contains(err.Error(), "revision 9 of deploy:docker:hello does not exist") ||
		!errors.Is(err, errNoRevision) {
		t.Errorf("--to 9: %v, want refused naming revision 9", err)
	}
	old := history()
	old.Source, old.Revisions = "store", old.Revisions[:3] // 5, 4, 3: the listing stops at 3
	if _, _, err := chooseRevision(old, "1"); err == nil || !strings.Contains(err.Error(), "revision 1 of deploy:docker:hello is older than the 3 revisions undo looks through") {
		t.Errorf("--to 1 below the listing: %v", err)
	}
}
