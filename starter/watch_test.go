package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

// canaryStatus is a canary of 4 instances, 34/67/100 with 20 s bakes, 20 s
// into its second stage's bake (12 s left).
func canaryStatus() api.Status {
	stage := func(i, pct, newN int, status api.StageStatus) api.StageRecord {
		return api.StageRecord{Stage: plan.Stage{Index: i, Name: fmt.Sprintf("canary %d%%", pct), Percent: pct,
			New: newN, Old: 4 - newN, Bake: 20 * time.Second}, Status: status}
	}
	s1 := stage(0, 34, 2, api.StageCompleted)
	s1.InstancesUpdated, s1.InstancesTotal, s1.ChecksPassed, s1.Rounds = 2, 4, 10, health.Counts{Healthy: 10}
	s2 := stage(1, 67, 3, api.StageValidating)
	s2.InstancesUpdated, s2.InstancesTotal, s2.ChecksPassed, s2.Rounds = 3, 4, 2, health.Counts{Healthy: 2}
	s3 := stage(2, 100, 4, api.StagePending)
	return api.Status{
		WorkflowID: "deploy:docker:hello", RunID: "r1", Service: "hello", Platform: "docker", Strategy: "canary",
		ImageFrom: "stagecraft-demo:v1", ImageTo: "stagecraft-demo:v2",
		Phase: api.PhaseValidating, CurrentStage: 1, BakeRemaining: 20 * time.Second, BakeEndsAt: at(32 * time.Second),
		Stages: []api.StageRecord{s1, s2, s3}, StartedAt: t0,
	}
}

// failing is a round where one of two instances answers 500.
func failing(d time.Duration) *health.Round {
	return &health.Round{At: t0.Add(d), Verdict: health.Failed, Results: []health.Result{
		{Check: "healthz", Target: "127.0.0.1:32768", Verdict: health.Healthy, Code: 200},
		{Check: "healthz", Target: "127.0.0.1:32769", Verdict: health.Failed, Code: 500,
			Error: "status 500, want 200", Excerpt: "boom:\n  database gone"},
	}}
}

func paused(st api.Status) api.Status {
	st.Controls = slices.Clone(st.Controls)
	st.Phase, st.Paused, st.BakeRemaining, st.BakeEndsAt = api.PhasePaused, true, 7500*time.Millisecond, nil
	st.Controls = append(st.Controls, api.ControlRecord{Action: "pause", Via: "update", By: "alice",
		Reason: "checking dashboards", At: t0.Add(24 * time.Second), Accepted: true})
	return st
}

func awaiting(st api.Status) api.Status {
	st.Stages = slices.Clone(st.Stages)
	st.Stages[1].Status, st.Stages[1].ChecksPassed, st.Stages[1].Rounds = api.StageCompleted, 10, health.Counts{Healthy: 9, Degraded: 1}
	st.Phase, st.CurrentStage, st.BakeRemaining, st.BakeEndsAt = api.PhaseAwaitingApproval, 2, 0, nil
	st.Approvals = []api.ApprovalRecord{{Stage: 2, Name: "canary 100%", RequestedAt: t0.Add(40 * time.Second),
		Deadline: t0.Add(40*time.Second + 2*time.Minute), OnTimeout: spec.OnTimeoutAbort}}
	return st
}

func rolledBack(st api.Status) api.Status {
	st.Stages = slices.Clone(st.Stages)
	st.Stages[1].Status, st.Stages[1].ChecksPassed, st.Stages[1].ChecksFailed = api.StageRolledBack, 7, 1
	st.Stages[1].Rounds = health.Counts{Healthy: 7, Failed: 1}
	st.Stages[1].Error = "health check failed: healthz 127.0.0.1:32769: status 500, want 200"
	st.Stages[0].Status = api.StageRolledBack
	st.Phase, st.BakeRemaining, st.BakeEndsAt = api.PhaseDone, 0, nil
	st.Rollback = &api.RollbackRecord{Reason: st.Stages[1].Error, StartedAt: t0.Add(26 * time.Second), CompletedAt: at(31 * time.Second), Verified: true}
	st.LatestRound = &health.Round{At: t0.Add(30 * time.Second), Verdict: health.Healthy}
	st.Outcome, st.Error, st.CompletedAt = api.OutcomeRolledBack, st.Stages[1].Error, at(31*time.Second)
	return st
}

func TestRolloutFrame(t *testing.T) {
	live := &api.WatchSummary{Passed: 3, Tally: health.Tally{Counts: health.Counts{Healthy: 3}}, Latest: &health.Round{At: t0.Add(19 * time.Second), Verdict: health.Healthy}}
	for _, tt := range []struct {
		name string
		v    rolloutView
		want string
	}{
		{"validating: live rounds add up, bake counts down", rolloutView{st: canaryStatus(), live: live, now: t0.Add(20 * time.Second)}, `deploy:docker:hello  canary of hello: stagecraft-demo:v1 → stagecraft-demo:v2
phase validating · stage 2/3 · 10:00:20
  ✓ 1 canary 34%  [██████████░░░░░░░░░░] 2/4     COMPLETED   rounds 10 passed 0 failed
  ▸ 2 canary 67%  [███████████████░░░░░] 3/4     VALIDATING  rounds 5 passed 0 failed · bake 12s left of 20s
    3 canary 100% [░░░░░░░░░░░░░░░░░░░░] → 4/4   PENDING
last round 10:00:19: healthy
`},
		{"paused: bake frozen, failing evidence", rolloutView{st: paused(canaryStatus()), live: live, bad: failing(18 * time.Second), now: t0.Add(40 * time.Second)}, `deploy:docker:hello  canary of hello: stagecraft-demo:v1 → stagecraft-demo:v2
phase paused · stage 2/3 · 10:00:40
  ✓ 1 canary 34%  [██████████░░░░░░░░░░] 2/4     COMPLETED   rounds 10 passed 0 failed
  ▸ 2 canary 67%  [███████████████░░░░░] 3/4     VALIDATING  rounds 5 passed 0 failed · bake 7.5s left of 20s (frozen)
    3 canary 100% [░░░░░░░░░░░░░░░░░░░░] → 4/4   PENDING
PAUSED by alice via update: checking dashboards; bake frozen with 7.5s left
last round 10:00:19: healthy
last failing round 10:00:18 (22s ago): failed
  healthz 127.0.0.1:32769 failed: status 500, want 200 | boom: database gone
`},
		{"awaiting approval", rolloutView{st: awaiting(canaryStatus()), now: t0.Add(70 * time.Second)}, `deploy:docker:hello  canary of hello: stagecraft-demo:v1 → stagecraft-demo:v2
phase awaiting_approval · stage 3/3 · 10:01:10
  ✓ 1 canary 34%  [██████████░░░░░░░░░░] 2/4     COMPLETED   rounds 10 passed 0 failed
  ✓ 2 canary 67%  [███████████████░░░░░] 3/4     COMPLETED   rounds 10 passed 0 failed (1 degraded)
    3 canary 100% [░░░░░░░░░░░░░░░░░░░░] → 4/4   PENDING
awaiting approval for canary 100%, 1m30s left, then abort  (starter approve deploy:docker:hello --reason ...)
`},
		{"rolled back", rolloutView{st: rolledBack(canaryStatus()), bad: failing(25 * time.Second), now: t0.Add(31 * time.Second)}, `deploy:docker:hello  canary of hello: stagecraft-demo:v1 → stagecraft-demo:v2
phase done · 10:00:31
  ↺ 1 canary 34%  [██████████░░░░░░░░░░] 2/4     ROLLED_BACK rounds 10 passed 0 failed
  ↺ 2 canary 67%  [███████████████░░░░░] 3/4     ROLLED_BACK rounds 7 passed 1 failed · health check failed: healthz 127.0.0.1:32769: status 500, want 200
    3 canary 100% [░░░░░░░░░░░░░░░░░░░░] → 4/4   PENDING
last round 10:00:30: healthy
last failing round 10:00:25 (6s ago): failed
  healthz 127.0.0.1:32769 failed: status 500, want 200 | boom: database gone
rollback: restored and verified
outcome: rolled_back after 31s
reason:  health check failed: healthz 127.0.0.1:32769: status 500, want 200
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(tt.v.frame(), "\n") + "\n"
			require.Equal(t, tt.want, got)
		})
	}
}

// TestPlainLines follows a rollout through a sequence of looks: a line only
// when something changed, never an escape code.
func TestPlainLines(t *testing.T) {
	live := func(passed, failed int, latest *health.Round) *api.WatchSummary {
		return &api.WatchSummary{Passed: passed, Failed: failed, Latest: latest,
			Tally: health.Tally{Counts: health.Counts{Healthy: passed, Failed: failed}}}
	}
	validating := canaryStatus()
	p := paused(canaryStatus())
	done := rolledBack(p)
	done.Paused = false
	looks := []rolloutView{
		{st: validating, live: live(3, 0, nil), now: t0.Add(20 * time.Second)},
		{st: validating, live: live(3, 0, nil), now: t0.Add(21 * time.Second)}, // only the bake clock moved
		{st: validating, live: live(4, 0, nil), now: t0.Add(22 * time.Second)},
		{st: p, live: live(5, 0, nil), now: t0.Add(26 * time.Second)},
		{st: p, live: live(5, 0, nil), now: t0.Add(30 * time.Second)}, // frozen: nothing to say
		{st: p, live: live(5, 1, failing(31*time.Second)), bad: failing(31 * time.Second), now: t0.Add(32 * time.Second)},
		{st: done, bad: failing(31 * time.Second), now: t0.Add(35 * time.Second)},
	}
	var b bytes.Buffer
	d := &display{w: &b, mode: modePlain}
	for _, v := range looks {
		require.NoError(t, d.show(v, v.now))
	}
	require.Equal(t, `10:00:20 rollout deploy:docker:hello: canary of hello to stagecraft-demo:v2
10:00:20 stage 1/3 canary 34%: COMPLETED, new 2/4, rounds 10 passed 0 failed
10:00:20 stage 2/3 canary 67%: VALIDATING, new 3/4, bake 20s, rounds 5 passed 0 failed
10:00:22 stage 2/3 canary 67%: VALIDATING, new 3/4, bake 20s, rounds 6 passed 0 failed
10:00:26 control: pause by alice via update: checking dashboards
10:00:26 stage 2/3 canary 67%: VALIDATING, new 3/4, bake 20s, rounds 7 passed 0 failed
10:00:26 paused, bake time left 7.5s (frozen)
10:00:32 stage 2/3 canary 67%: VALIDATING, new 3/4, bake 20s, rounds 7 passed 1 failed
10:00:32 failing round at 10:00:31: failed
           healthz 127.0.0.1:32769 failed: status 500, want 200 | boom: database gone
10:00:35 stage 1/3 canary 34%: ROLLED_BACK, new 2/4, rounds 10 passed 0 failed
10:00:35 stage 2/3 canary 67%: ROLLED_BACK, new 3/4, rounds 7 passed 1 failed: health check failed: healthz 127.0.0.1:32769: status 500, want 200
10:00:35 rollback: restored and verified
10:00:35 outcome: rolled_back after 31s
         reason:  health check failed: healthz 127.0.0.1:32769: status 500, want 200
`, b.String())
	require.NotContains(t, b.String(), "\x1b")
}

func TestTerminalRedrawsInPlace(t *testing.T) {
	var b bytes.Buffer
	d := &display{w: &b, mode: modeTerminal, width: 40}
	first := rolloutView{st: canaryStatus(), now: t0.Add(20 * time.Second)}
	require.NoError(t, d.show(first, first.now))
	lines := first.frame()
	require.NotContains(t, b.String(), "\x1b[5A", "nothing to move up over the first time")
	require.Equal(t, "\x1b[2K"+lines[0][:38]+"…\n", b.String()[:len("\x1b[2K")+38+len("…\n")], "cut to the width, so no line wraps")
	b.Reset()
	second := rolloutView{st: canaryStatus(), now: t0.Add(21 * time.Second)}
	require.NoError(t, d.show(second, second.now))
	var want strings.Builder
	want.WriteString("\x1b[5A\r")
	for _, l := range second.frame() {
		want.WriteString("\x1b[2K" + cut(l, 40) + "\n")
	}
	want.WriteString("\x1b[J")
	require.Equal(t, want.String(), b.String())
	require.Contains(t, second.frame()[3], "bake 11s left of 20s")
}

// TestJSONLines: with --json, watch prints the status as one JSON object per
// line, only when it changed; each parses into api.Status.
func TestJSONLines(t *testing.T) {
	var b bytes.Buffer
	d := &display{w: &b, mode: modeJSON}
	st := canaryStatus()
	for _, v := range []rolloutView{{st: st, now: t0}, {st: st, now: t0.Add(time.Second)}, {st: paused(st), now: t0.Add(2 * time.Second)}} {
		require.NoError(t, d.show(v, v.now))
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 2)
	for i, l := range lines {
		var got api.Status
		require.NoError(t, json.Unmarshal([]byte(l), &got))
		require.Equal(t, i == 1, got.Paused)
	}
}

func releaseStatus() (api.ReleaseStatus, map[string]api.Status) {
	st := api.ReleaseStatus{WorkflowID: "release:prod/shop", Name: "shop", Environment: "prod", Phase: api.ReleaseActivating,
		Stages: []spec.ReleaseStage{{Name: "wave 1", Mode: "parallel", Services: []string{"db"}}, {Name: "wave 2", Mode: "sequential", Services: []string{"api", "web"}}},
		Services: []api.ServiceState{
			{Name: "db", Stage: 0, WorkflowID: "deploy:docker:db", State: api.ServiceReadyState},
			{Name: "api", Stage: 1, DependsOn: []string{"db"}, WorkflowID: "deploy:docker:hello", State: api.ServiceRunning},
			{Name: "web", Stage: 1, DependsOn: []string{"api"}, WorkflowID: "deploy:docker:web", State: api.ServicePending},
		},
		Controls:  []api.ControlRecord{{Action: "pause", Via: "update", By: "bob", Reason: "freeze", At: t0.Add(5 * time.Second), Accepted: false, Error: "the release is rolling_back"}},
		StartedAt: t0}
	return st, map[string]api.Status{"deploy:docker:hello": canaryStatus()}
}

func TestReleaseViews(t *testing.T) {
	st, rollouts := releaseStatus()
	v := releaseView{st: st, rollouts: rollouts, now: t0.Add(20 * time.Second)}
	got := strings.Join(v.frame(), "\n") + "\n"
	require.Equal(t, `release:prod/shop  release shop to prod
phase activating · 10:00:20
  wave 1 (parallel)
    db  ready                     deploy:docker:db
  wave 2 (sequential)
    api running                   deploy:docker:hello  stage 2/3 canary 67% VALIDATING [████████░░] 3/4 · bake 12s left
    web pending                   deploy:docker:web
last control 15s ago: pause by bob via update: freeze (refused: the release is rolling_back)
`, got)

	var b bytes.Buffer
	d := &display{w: &b, mode: modePlain}
	require.NoError(t, d.show(v, v.now))
	done := st
	done.Services = slices.Clone(st.Services)
	for i := range done.Services {
		done.Services[i].State = api.ServiceSucceeded
	}
	done.Phase, done.Outcome, done.CompletedAt = api.ReleaseDone, api.OutcomeSucceeded, at(time.Minute)
	require.NoError(t, d.show(releaseView{st: done, now: t0.Add(time.Minute)}, t0.Add(time.Minute)))
	require.Equal(t, `10:00:20 release release:prod/shop: shop to prod, 3 services
10:00:20 control: pause by bob via update: freeze (refused: the release is rolling_back)
10:00:20 phase activating
10:00:20 service db: ready (deploy:docker:db)
10:00:20 service api: running (deploy:docker:hello), stage 2/3 canary 67% VALIDATING 3/4
10:00:20 service web: pending (deploy:docker:web)
10:01:00 service db: succeeded (deploy:docker:db)
10:01:00 service api: succeeded (deploy:docker:hello)
10:01:00 service web: succeeded (deploy:docker:web)
10:01:00 outcome: succeeded after 1m0s
`, b.String())
}

func TestOutcomeCodes(t *testing.T) {
	for _, tt := range []struct {
		outcome api.Outcome
		code    int
	}{
		{api.OutcomeSucceeded, 0},
		{api.OutcomeRolledBack, 3},
		{api.OutcomeRollbackFailed, 4},
		{api.OutcomeRejected, 5},
		{"", 1},
		{"something new", 1},
	} {
		t.Run(string(tt.outcome), func(t *testing.T) {
			require.Equal(t, tt.code, outcomeCode(tt.outcome))
			err := outcomeError("rollout", "deploy:docker:hello", tt.outcome, "why")
			if tt.code == 0 {
				require.NoError(t, err)
				return
			}
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, tt.code, ee.code)
			require.Contains(t, err.Error(), "rollout deploy:docker:hello ended ")
		})
	}
	require.Contains(t, exitCodesHelp, "3  rolled_back")
}

func TestHelpShowsExamplesAndExitCodes(t *testing.T) {
	root := newRoot(&globals{})
	require.NotEmpty(t, root.Example)
	require.Contains(t, root.Long, exitCodesHelp)
	var names []string
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" {
			continue
		}
		names = append(names, c.Name())
		require.NotEmpty(t, c.Example, c.Name())
		require.Contains(t, c.Example, "starter "+c.Name(), c.Name())
	}
	for _, want := range []string{"deploy", "release", "validate", "status", "watch", "history", "list", "pause", "resume", "abort", "promote", "approve"} {
		require.Contains(t, names, want)
	}
	for _, action := range []string{"pause", "resume", "abort", "promote", "approve"} {
		cmd, _, err := root.Find([]string{action})
		require.NoError(t, err)
		require.NotNil(t, cmd.Flags().Lookup("reason"), action)
		require.NotNil(t, cmd.Flags().Lookup("by"), action)
	}
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, &out, &errb))
	require.Contains(t, out.String(), "5  rejected")
}

// TestUsageErrors: wrong arguments and flags are invalid input (2), found
// before anything is dialled.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"watch"}, "starter watch takes 1 argument(s), got 0 (usage: starter watch ID"},
		{[]string{"status", "a", "b"}, "starter status takes 1 argument(s), got 2"},
		{[]string{"approve", "deploy:docker:hello"}, `required flag(s) "reason" not set`},
		{[]string{"deploy"}, `required flag(s) "file" not set`},
		{[]string{"pause", "deploy:docker:hello", "--bogus"}, "unknown flag: --bogus (see starter pause --help)"},
		{[]string{"watch", "deploy:docker:hello", "--poll", "0s"}, "--poll must be positive"},
		{[]string{"deploy", "-f", "does-not-exist.yaml"}, "read spec"},
		// --by is printed in history, status and logs: a newline, a tab or
		// an escape would forge or garble their lines.
		{[]string{"deploy", "-f", "does-not-exist.yaml", "--by", "alice\n9*\tevil:v9"}, `--by "alice\n9*\tevil:v9": a control character at byte 5`},
		{[]string{"abort", "deploy:docker:hello", "--by", "x\ty"}, `--by "x\ty": a control character at byte 1`},
		{[]string{"release", "-f", "does-not-exist.yaml", "--by", "ops\x00"}, `--by "ops\x00": a control character at byte 3`},
		{[]string{"undo", "hello", "--by", "\x1b[31mred"}, `--by "\x1b[31mred": a control character at byte 0`},
		{[]string{"clear", "docker:hello", "--reason", "r", "--by", strings.Repeat("a", 201)}, "--by: 201 bytes, more than 200"},
		// --reason rides in the workflow's state and every status: bounded.
		{[]string{"abort", "deploy:docker:hello", "--reason", strings.Repeat("r", 1001)}, "--reason: 1001 bytes, more than 1000"},
		{[]string{"clear", "docker:hello", "--reason", "bad \xff byte"}, "--reason: not valid UTF-8"},
		{[]string{"undo", "hello", "--reason", strings.Repeat("é", 501)}, "--reason: 1002 bytes, more than 1000"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			require.Equal(t, exitInvalid, run(tt.args, &out, &errb))
			require.Contains(t, errb.String(), "error: "+tt.want)
			require.Empty(t, out.String())
		})
	}
}

func TestBakeLeftIsFrozenWhilePaused(t *testing.T) {
	st := paused(canaryStatus())
	a, _ := bakeLeft(st, t0)
	b, _ := bakeLeft(st, t0.Add(time.Hour))
	require.Equal(t, 7500*time.Millisecond, a)
	require.Equal(t, a, b)
	left, ok := bakeLeft(canaryStatus(), t0.Add(time.Hour))
	require.True(t, ok)
	require.Zero(t, left, "never negative")
}

func TestNewestBad(t *testing.T) {
	old, newer := failing(time.Second), failing(2*time.Second)
	healthy := &health.Round{At: t0.Add(3 * time.Second), Verdict: health.Healthy}
	require.Same(t, newer, newestBad(old, newer))
	require.Same(t, newer, newestBad(newer, old))
	require.Same(t, newer, newestBad(newer, healthy), "a healthy round is no evidence")
	require.Nil(t, newestBad(nil, nil))
}

// TestManyStagesAreSummedUp: a rolling rollout of 20 batches shows the
// stages around the current one and sums up the rest.
func TestManyStagesAreSummedUp(t *testing.T) {
	st := canaryStatus()
	st.Strategy, st.Stages, st.CurrentStage = "rolling", nil, 10
	for i := range 20 {
		s := api.StageRecord{Stage: plan.Stage{Index: i, Name: fmt.Sprintf("batch %d/20", i+1), New: i + 1, Old: 19 - i, Bake: 20 * time.Second}, Status: api.StagePending}
		switch {
		case i < 10:
			s.Status, s.InstancesUpdated, s.InstancesTotal, s.ChecksPassed = api.StageCompleted, i+1, 20, 4
		case i == 10:
			s.Status, s.InstancesUpdated, s.InstancesTotal = api.StageValidating, 11, 20
		}
		st.Stages = append(st.Stages, s)
	}
	lines := rolloutView{st: st, now: t0.Add(20 * time.Second)}.frame()
	require.Equal(t, []string{
		"  … stages 1-8: 8 COMPLETED",
		"  ✓  9 batch 9/20  [█████████░░░░░░░░░░░] 9/20    COMPLETED   rounds 4 passed 0 failed",
		"  ✓ 10 batch 10/20 [██████████░░░░░░░░░░] 10/20   COMPLETED   rounds 4 passed 0 failed",
		"  ▸ 11 batch 11/20 [███████████░░░░░░░░░] 11/20   VALIDATING  rounds 0 passed 0 failed · bake 12s left of 20s",
	}, lines[2:6])
	require.Equal(t, "  … stages 18-20: 3 PENDING", lines[len(lines)-1])
	require.Len(t, lines, 2+1+maxStageLines+1)
}

func TestTerminalFrameFitsTheScreen(t *testing.T) {
	var b bytes.Buffer
	d := &display{w: &b, mode: modeTerminal, height: 4}
	v := rolloutView{st: canaryStatus(), now: t0}
	require.NoError(t, d.show(v, v.now))
	require.Equal(t, 3, strings.Count(b.String(), "\n"))
	require.Contains(t, b.String(), "… 3 more lines: a taller terminal shows them\n")
	b.Reset()
	d.final = true
	require.NoError(t, d.show(v, v.now))
	require.True(t, strings.HasPrefix(b.String(), "\x1b[3A\r"), "moves up over the 3 lines drawn")
	require.Equal(t, 5, strings.Count(b.String(), "\n"), "the last frame whole")
}

// TestNoStatusYet: before the rollout answers its status query, a look
// says so and nothing else; --json prints nothing for it.
func TestNoStatusYet(t *testing.T) {
	v := rolloutView{warn: noAnswer("deploy:docker:hello", context.DeadlineExceeded), now: t0}
	want := `waiting for deploy:docker:hello to answer its status query (is a worker polling task queue "stagecraft"?): context deadline exceeded`
	require.Equal(t, []string{"(" + want + ")"}, v.frame())
	var b bytes.Buffer
	d := &display{w: &b, mode: modePlain}
	require.NoError(t, d.show(v, t0))
	require.NoError(t, d.show(v, t0.Add(time.Second)))
	require.Equal(t, "10:00:00 "+want+"\n", b.String())
	b.Reset()
	d = &display{w: &b, mode: modeJSON}
	require.NoError(t, d.show(v, t0))
	require.NoError(t, d.show(releaseView{warn: want, now: t0}, t0))
	require.Empty(t, b.String())
}

func TestFirstUnansweredLookIsQuiet(t *testing.T) {
	n := 0
	require.True(t, quiet("no answer", &n), "a rollout just started may not answer yet")
	require.False(t, quiet("no answer", &n), "the second in a row is shown")
	require.False(t, quiet("", &n))
	require.True(t, quiet("no answer", &n), "counted afresh")
}

// TestFollowShowsLooksUntilTheEnd: follow skips the first unanswered look
// in a row, shows the others, and returns the status of the look that ended;
// an interrupt stops the watch and says the rollout goes on.
func TestFollowShowsLooksUntilTheEnd(t *testing.T) {
	st := canaryStatus()
	done := rolledBack(st)
	looks := []rolloutView{{warn: "no answer"}, {st: st}, {warn: "no answer"}, {warn: "no answer"}, {st: done}}
	var b bytes.Buffer
	d := &display{w: &b, mode: modeJSON}
	n := 0
	got, err := follow(context.Background(), st.WorkflowID, time.Millisecond, nil, d, func(context.Context) (rolloutView, bool, error) {
		v := looks[n]
		n++
		return v, v.finished(), nil
	})
	require.NoError(t, err)
	require.Equal(t, done, got)
	require.Equal(t, len(looks), n, "every look taken, none after the end")
	require.True(t, d.final)
	require.Equal(t, 2, strings.Count(b.String(), "\n"), "the two statuses; the lone unanswered look is quiet, the second in a row has no JSON")

	ctx, cancel := context.WithCancel(context.Background())
	got, err = follow(ctx, st.WorkflowID, time.Millisecond, nil, &display{w: &b, mode: modeQuiet}, func(context.Context) (rolloutView, bool, error) {
		cancel()
		return rolloutView{st: st}, false, nil
	})
	require.ErrorContains(t, err, "stopped watching; deploy:docker:hello goes on")
	require.Equal(t, st, got, "the last status seen")
}

// TestFollowLooksAgainWhenTheRunCloses: a run that closes is looked at
// again at once, not a poll later, and only once per close.
func TestFollowLooksAgainWhenTheRunCloses(t *testing.T) {
	st := canaryStatus()
	done := rolledBack(st)
	closed := make(chan struct{})
	close(closed)
	looks := []rolloutView{{st: st}, {st: st}, {st: done}}
	n := 0
	var b bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	// The second look follows the close at once; the third waits out the
	// poll (200 ms): a closed channel wakes one sleep, not every one.
	got, err := follow(ctx, st.WorkflowID, 200*time.Millisecond, closed, &display{w: &b, mode: modeQuiet}, func(context.Context) (rolloutView, bool, error) {
		v := looks[n]
		n++
		return v, v.finished(), nil
	})
	require.NoError(t, err)
	require.Equal(t, done, got)
	require.Equal(t, 3, n)
	require.GreaterOrEqual(t, time.Since(t0), 200*time.Millisecond, "one sleep woken, the next waited out")

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed = make(chan struct{})
	n = 0
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(closed)
	}()
	_, err = follow(ctx, st.WorkflowID, time.Hour, closed, &display{w: &b, mode: modeQuiet}, func(context.Context) (rolloutView, bool, error) {
		v := looks[1+min(n, 1)]
		n++
		return v, v.finished(), nil
	})
	require.NoError(t, err, "the close ends the hour's sleep")
	require.Equal(t, 2, n)
}

// status and a release's summary name who started the run (and, for an
// undo, the run it restores), quoting a name with control characters, as
// any client may have set the memo; a run that names nobody prints no line.
func TestStatusNamesWhoStartedIt(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, canaryStatus(), t0)
	require.NotContains(t, out.String(), "started ")

	st := canaryStatus()
	st.StartedBy, st.UndoOf = "alice@laptop (release:prod/shop)", "run-of-v2"
	out.Reset()
	printStatus(&out, st, t0)
	require.Contains(t, out.String(), "\nstarted   by alice@laptop (release:prod/shop), an undo: restores the revision of run run-of-v2\n")

	st.StartedBy, st.UndoOf = "mallory\nphase     succeeded", ""
	out.Reset()
	printStatus(&out, st, t0)
	require.Contains(t, out.String(), "\nstarted   by \"mallory\\nphase     succeeded\"\n")

	out.Reset()
	printRelease(&out, api.ReleaseStatus{WorkflowID: "release:prod/shop", StartedBy: "ci\x1b[2J"})
	require.Contains(t, out.String(), "\nstarted by: \"ci\\x1b[2J\"\n")
}

// The status keeps the latest api.MaxControls control records; one added
// once the log is full (its oldest dropped, ControlsOmitted counting it)
// is still printed by a plain watch, as the first one was.
func TestWatchPrintsControlsPastTheKeptLog(t *testing.T) {
	full := canaryStatus()
	for i := range api.MaxControls {
		full.Controls = append(full.Controls, api.ControlRecord{Action: "resume", Via: "signal", By: "bot", Reason: fmt.Sprint("r", i),
			At: t0, Error: "cannot resume: rollout is not paused"})
	}
	next := full
	next.Controls = append(slices.Clone(full.Controls[1:]), api.ControlRecord{Action: "abort", Via: "signal", By: "alice", Reason: "the last word", At: t0, Accepted: true})
	next.ControlsOmitted = 1
	var b bytes.Buffer
	d := &display{w: &b, mode: modePlain}
	require.NoError(t, d.show(rolloutView{st: full, now: t0.Add(time.Second)}, t0.Add(time.Second)))
	require.NotContains(t, b.String(), "the last word")
	require.NoError(t, d.show(rolloutView{st: next, now: t0.Add(2 * time.Second)}, t0.Add(2*time.Second)))
	require.Contains(t, b.String(), "control: abort by alice via signal: the last word")
	require.Equal(t, api.MaxControls+1, strings.Count(b.String(), "control: "), "each record is printed once, none again when the log moves on")
}

// A pause older than the control log the status keeps is still named as
// a pause, with where to find who paused.
func TestPausedLineWhenThePauseLeftTheLog(t *testing.T) {
	st := paused(canaryStatus())
	st.Controls = nil
	for range api.MaxControls {
		st.Controls = append(st.Controls, api.ControlRecord{Action: "pause", Via: "signal", By: "bot", At: t0, Error: "cannot pause: rollout is already paused"})
	}
	st.ControlsOmitted = 1
	frame := strings.Join(rolloutView{st: st, now: t0.Add(time.Second)}.frame(), "\n")
	require.Contains(t, frame, "PAUSED (who paused: see starter history deploy:docker:hello)")
}
