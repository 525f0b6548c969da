//go:build faults

package faults

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	tclient "go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// midBake is the crash point where the test itself SIGKILLs the worker
// while a stage is validating and keeps it down for crashDowntime.
const (
	midBake       = "mid-bake"
	crashDowntime = 3 * time.Second
	// midBakeFor is the bake of the stage killed mid-bake: longer than the
	// downtime plus the watcher's heartbeat timeout, so the deadline can
	// hold with the worker dead during it.
	midBakeFor = 10 * time.Second
	// bakeTolerance is how far a stage's validation may be from its bake.
	bakeTolerance = 2 * time.Second
	// lostVerdict is what a stage may add to bakeTolerance when the worker
	// dies after its watcher's last round and before reporting it (a
	// Watch:<n>:after case): the stage's evidence died with the worker, so
	// it waits for the watcher's heartbeat timeout (5 s) and first retry
	// (1 s; workflows/rollout.go watchOptions). The retried watcher is past
	// the bake's deadline and returns the rounds it had recorded at once;
	// one that ran its rounds again would take a whole bake (10 s) more.
	lostVerdict = 6 * time.Second
)

// crashCase is one rollout v1 → v2 with one crash.
type crashCase struct {
	Platform, Strategy string
	// Point is a failpoint "<ActivityType>:<n>:<before|after>" or midBake.
	Point string
	// Bad rolls out the bad version: the crash lands in its rollback.
	Bad bool
}

func (c crashCase) String() string {
	s := c.Platform + "/" + c.Strategy + "/" + strings.ReplaceAll(c.Point, ":", "-")
	if c.Bad {
		s += "/rollback"
	}
	return s
}

// crashFigures is what one case measured.
type crashFigures struct {
	Case    crashCase
	Outcome api.Outcome
	// Recovery: from the crash to the first retried activity starting on
	// the new worker; Finish: from the crash to the workflow's close.
	Recovery, Finish time.Duration
	Orphans, Dups    int
	Drift            time.Duration
	Notified         int
	Renotified       int
	// Sticky counts workflow tasks that waited out the dead worker's
	// sticky queue.
	Sticky int
}

func (f crashFigures) line() string {
	rec := "-"
	if f.Recovery > 0 {
		rec = f.Recovery.Round(100 * time.Millisecond).String()
	}
	return fmt.Sprintf("%-11s %-10s %-19s rollback=%-5v outcome=%-11s recovery=%-6s finish=%-6s orphans=%d dups=%d bake-drift=%-6s sticky-timeouts=%d notified=%d repeats=%d",
		f.Case.Platform, f.Case.Strategy, f.Case.Point, f.Case.Bad, f.Outcome, rec, f.Finish.Round(100*time.Millisecond),
		f.Orphans, f.Dups, f.Drift.Round(10*time.Millisecond), f.Sticky, f.Notified, f.Renotified)
}

// boundedCrashCases cover the four strategies across the two platforms,
// each platform with a crash after Converge did its work but before
// Temporal heard of it, a mid-bake kill, and one more activity type (a
// snapshot taken again, a notification delivered again).
var boundedCrashCases = []crashCase{
	{Platform: spec.PlatformDocker, Strategy: spec.Canary, Point: "Converge:2:after"},
	{Platform: spec.PlatformDocker, Strategy: spec.Recreate, Point: midBake},
	{Platform: spec.PlatformDocker, Strategy: spec.Rolling, Point: "Notify:1:after"},
	{Platform: spec.PlatformKubernetes, Strategy: spec.Rolling, Point: "Converge:2:after"},
	{Platform: spec.PlatformKubernetes, Strategy: spec.BlueGreen, Point: midBake},
	{Platform: spec.PlatformKubernetes, Strategy: spec.Canary, Point: "Prepare:1:after"},
}

var crashStrategies = []string{spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate}

// TestWorkerCrash rolls out v1 → v2 under a worker that crashes (a
// failpoint SIGKILLs it, or the test does mid-bake), starts a fresh
// worker, and checks the rollout ends as it should: the right outcome,
// the platform exactly as the spec (or the snapshot) says with no orphan
// or duplicate, and every bake held within bakeTolerance.
func TestWorkerCrash(t *testing.T) {
	cases := boundedCrashCases
	if full() {
		cases = fullCrashCases(t)
	}
	var (
		mu   sync.Mutex
		figs []crashFigures
	)
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.String(), func(t *testing.T) {
				t.Parallel()
				runCrashCase(t, c, func(f crashFigures) {
					mu.Lock()
					defer mu.Unlock()
					figs = append(figs, f)
				})
			})
		}
	})
	sort.Slice(figs, func(i, j int) bool { return figs[i].Case.String() < figs[j].Case.String() })
	t.Logf("worker crash matrix: %d of %d cases ran to the end (failed checks included)", len(figs), len(cases))
	for _, f := range figs {
		t.Logf("%s", f.line())
	}
}

// fullCrashCases lists, for each strategy on each platform, every activity
// type a baseline rollout's history ran, crashed before and after, at its
// first and (where there is one) a later execution; a mid-bake kill; and
// crashes in the rollback of the bad version (its restoring Converge and
// its verifying Watch).
func fullCrashCases(t *testing.T) []crashCase {
	var cases []crashCase
	var mu sync.Mutex
	t.Run("baselines", func(t *testing.T) {
		for _, p := range []string{spec.PlatformDocker, spec.PlatformKubernetes} {
			for _, strategy := range crashStrategies {
				for _, bad := range []bool{false, true} {
					name := p + "/" + strategy
					if bad {
						name += "/rollback"
					}
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						counts := baselineCounts(t, p, strategy, bad)
						mu.Lock()
						defer mu.Unlock()
						cases = append(cases, crashPoints(p, strategy, bad, counts)...)
					})
				}
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	if len(cases) == 0 {
		// A -run pattern that skips the baselines leaves nothing to run,
		// which must not pass as a crash matrix.
		t.Fatal("no crash cases: no baseline ran; a -run pattern must let TestWorkerCrash/baselines run too, " +
			"e.g. 'TestWorkerCrash/(baselines|cases)/docker/canary'")
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].String() < cases[j].String() })
	return cases
}

// crashPoints turns a baseline's activity counts into crash cases.
func crashPoints(p, strategy string, bad bool, counts map[string]int) []crashCase {
	var out []crashCase
	add := func(point string) {
		out = append(out, crashCase{Platform: p, Strategy: strategy, Point: point, Bad: bad})
	}
	if bad {
		// The last Converge restores the snapshot; the last Watch verifies it.
		add(fmt.Sprintf("Converge:%d:after", counts["Converge"]))
		add(fmt.Sprintf("Watch:%d:before", counts["Watch"]))
		return out
	}
	types := make([]string, 0, len(counts))
	for typ := range counts {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		ns := []int{1}
		switch n := counts[typ]; {
		case n > 1 && (typ == "Audit" || typ == "Notify"):
			// How many audit batches a run writes varies with timing: the
			// second is certain to come.
			ns = append(ns, 2)
		case n > 1:
			ns = append(ns, n)
		}
		for _, n := range ns {
			add(fmt.Sprintf("%s:%d:before", typ, n))
			add(fmt.Sprintf("%s:%d:after", typ, n))
		}
	}
	add(midBake)
	return out
}

// baselineCounts runs the case's rollout without a crash and counts the
// activities its history ran, by type.
func baselineCounts(t *testing.T, p, strategy string, bad bool) map[string]int {
	c, ns := crashNamespace(t)
	x := newCrashTarget(t, p, strategy)
	s := crashSpec(x, crashCase{Platform: p, Strategy: strategy, Bad: bad}, newCrashHooks(t))
	startWorker(t, "", nil, "--namespace", ns.name)
	started, err := control.Start(context.Background(), c, s)
	require.NoError(t, err)
	res := waitCrashRollout(t, c, started)
	ns.closed = true
	want := api.OutcomeSucceeded
	if bad {
		want = api.OutcomeRolledBack
	}
	require.Equal(t, want, res.Outcome, res.Error)
	counts := activityCounts(history(t, c, started.WorkflowID, started.RunID))
	t.Logf("baseline %s/%s bad=%v: activities %v", p, strategy, bad, counts)
	return counts
}

// crashSpec is the case's rollout: v2 (or the bad version), notifying a
// webhook (so Notify runs), with the killed stage's bake long enough to
// kill a worker in it.
func crashSpec(x *crashTarget, c crashCase, h *crashHooks) spec.Spec {
	s := x.spec(c.Strategy, c.Bad)
	s.Notifications = []spec.Notification{{Name: "faults", Webhook: h.url}}
	switch {
	case c.Bad && x.platform == spec.PlatformDocker:
		// v2-bad fails 3 s after it starts: the first bake must see it.
		s.Strategy.Bake = spec.Duration(6 * time.Second)
		if c.Strategy == spec.BlueGreen {
			s.Strategy.Bake = 0
			s.Strategy.BakeBeforeSwitch = spec.Duration(6 * time.Second)
		}
	case c.Point == midBake && c.Strategy == spec.BlueGreen:
		s.Strategy.BakeBeforeSwitch = spec.Duration(midBakeFor)
	case c.Point == midBake:
		s.Strategy.Bake = spec.Duration(midBakeFor)
	case strings.HasPrefix(c.Point, "Watch:"):
		// A dead watcher is noticed after its 5 s heartbeat timeout and
		// retried after 1 s; the stage still needs its minSamples passing
		// rounds, which are evidence, not padding. A bake shorter than
		// that ends late by design, so these cases bake long enough for
		// the retried watcher to count its samples before the deadline.
		if c.Strategy == spec.BlueGreen {
			s.Strategy.BakeBeforeSwitch = spec.Duration(midBakeFor)
			s.Strategy.BakeAfterSwitch = spec.Duration(midBakeFor)
		} else {
			s.Strategy.Bake = spec.Duration(midBakeFor)
		}
	}
	return s.WithDefaults()
}

// midBakeStage is the stage a mid-bake case kills the worker in: the
// second where there are several, except blue-green's long first bake.
func midBakeStage(strategy string) int {
	switch strategy {
	case spec.Canary, spec.Rolling:
		return 1
	}
	return 0
}

func waitCrashRollout(t *testing.T, c tclient.Client, started control.Started) api.Result {
	t.Helper()
	// A crashed activity is retried once its timeout passes: up to 10
	// minutes for an activity that does not heartbeat.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := control.Wait(ctx, c, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err, "waiting for %s", started.WorkflowID)
	return res
}

// runCrashCase runs one case, reports its figures (before checking them,
// so a failing case is in the summary too) and checks it.
func runCrashCase(t *testing.T, cc crashCase, report func(crashFigures)) {
	c, ns := crashNamespace(t)
	x := newCrashTarget(t, cc.Platform, cc.Strategy)
	hooks := newCrashHooks(t)
	s := crashSpec(x, cc, hooks)
	ctx := context.Background()

	var env []string
	if cc.Point != midBake {
		env = []string{"STAGECRAFT_FAILPOINT=" + cc.Point}
	}
	first := startWorker(t, "", env, "--namespace", ns.name)
	started, err := control.Start(ctx, c, s)
	require.NoError(t, err)

	var crashed time.Time
	if cc.Point == midBake {
		stage := midBakeStage(cc.Strategy)
		waitStageStatus(t, c, started.WorkflowID, stage, api.StageValidating)
		time.Sleep(time.Second)
		first.Kill()
		crashed = time.Now()
		time.Sleep(crashDowntime)
	} else {
		// The failpoint must fire: a rollout that ends first did not crash.
		deadline := time.Now().Add(5 * time.Minute)
		for !first.Exited() {
			require.False(t, closed(t, c, started.WorkflowID), "%s: the rollout ended without the failpoint firing", cc.Point)
			require.True(t, time.Now().Before(deadline), "%s: the failpoint did not fire in 5 minutes", cc.Point)
			time.Sleep(100 * time.Millisecond)
		}
		crashed = time.Now()
		require.Contains(t, first.Log(), "failpoint: SIGKILL", "the worker ended by its failpoint")
	}
	startWorker(t, "", nil, "--namespace", ns.name)
	res := waitCrashRollout(t, c, started)
	ns.closed = true

	events := history(t, c, started.WorkflowID, started.RunID)
	f := crashFigures{Case: cc, Outcome: res.Outcome, Finish: closedAt(events).Sub(crashed), Sticky: stickyTimeouts(events)}
	if at := retriedAt(events, crashed.Add(-time.Second)); !at.IsZero() {
		f.Recovery = at.Sub(crashed)
	}
	end := x.check(t, s, res)
	f.Orphans, f.Dups = end.Orphans, end.Duplicates
	bs := bakes(t, events, res)
	f.Drift = maxDrift(bs)
	waitTrail(t, c, started.WorkflowID, started.RunID) // it sends what the run did not
	f.Notified, f.Renotified = hooks.delivered()
	t.Logf("%s", f.line())
	report(f)

	want := api.OutcomeSucceeded
	if cc.Bad {
		want = api.OutcomeRolledBack
	}
	require.Equal(t, want, res.Outcome, res.Error)
	require.Empty(t, end.Problems, "end state")
	tolerance := bakeTolerance
	if strings.HasPrefix(cc.Point, "Watch:") && strings.HasSuffix(cc.Point, ":after") {
		tolerance += lostVerdict
	}
	for _, b := range bs {
		require.LessOrEqual(t, b.Drift().Abs(), tolerance,
			"stage %q validated for %s, bake %s: the deadline did not hold", b.Stage, b.Validated, b.Bake)
	}
	if !cc.Bad {
		require.Len(t, bs, len(res.Stages), "every stage baked: %+v", bs)
	}
	require.GreaterOrEqual(t, f.Notified, 2, "started and the outcome were notified")
}

func waitStageStatus(t *testing.T, c tclient.Client, workflowID string, stage int, status api.StageStatus) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err := control.Status(context.Background(), c, workflowID)
		if err == nil && len(st.Stages) > stage && st.Stages[stage].Status == status {
			return
		}
		require.False(t, err == nil && st.Phase == api.PhaseDone, "%s ended before stage %d was %s", workflowID, stage, status)
		require.True(t, time.Now().Before(deadline), "stage %d of %s not %s in 3 minutes (last: %v)", stage, workflowID, status, err)
		time.Sleep(200 * time.Millisecond)
	}
}

// closed reports whether the workflow has closed.
func closed(t *testing.T, c tclient.Client, workflowID string) bool {
	t.Helper()
	d, err := c.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(t, err)
	return !slices.Contains([]enumspb.WorkflowExecutionStatus{enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED}, d.GetWorkflowExecutionInfo().GetStatus())
}
