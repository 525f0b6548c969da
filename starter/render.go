package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
)

// A view is one look at a rollout or a release, shown three ways: a frame
// redrawn in place on a terminal, facts printed as plain lines when they
// change, or the status itself as JSON.
type view interface {
	frame() []string
	facts() []fact
	value() any
}

// fact is one thing a plain watch prints, and prints again when it changes:
// key names it, sig is what counts as a change (the text when empty).
type fact struct {
	key, sig, text string
}

// rolloutView is one look at a rollout.
type rolloutView struct {
	st api.Status
	// live is the running health watcher's heartbeat, nil when none runs.
	live *api.WatchSummary
	// bad is the latest failing round seen, here or in an earlier look.
	bad *health.Round
	// warn says why this look is incomplete (the status did not answer).
	warn string
	now  time.Time
}

// value is the status for --json; nil when the rollout has not answered.
func (v rolloutView) value() any {
	if v.st.WorkflowID == "" {
		return nil
	}
	return v.st
}

// waiting is the whole view while the status does not answer.
func waiting(warn string) []string { return []string{"(" + warn + ")"} }

// validating reports whether stage i is the one the running watcher checks
// for, so its live round counts add to the stage's recorded ones. (While
// paused they are shown too; the rounds of a watcher that only observes a
// pause are dropped by the workflow at resume, so the count may then drop.)
func (v rolloutView) validating(i int) bool {
	st := v.st
	return v.live != nil && (st.Phase == api.PhaseValidating || st.Phase == api.PhasePaused) &&
		i == st.CurrentStage && i < len(st.Stages) && st.Stages[i].Status == api.StageValidating
}

// rounds returns stage i's rounds passed and failed and their verdicts,
// live ones included.
func (v rolloutView) rounds(i int) (passed, failed int, c health.Counts) {
	s := v.st.Stages[i]
	passed, failed, c = s.ChecksPassed, s.ChecksFailed, s.Rounds
	if v.validating(i) {
		passed += v.live.Passed
		failed += v.live.Failed
		c = c.Add(v.live.Tally.Counts)
	}
	return passed, failed, c
}

func roundsText(passed, failed int, c health.Counts) string {
	s := fmt.Sprintf("rounds %d passed %d failed", passed, failed)
	var extra []string
	if c.Degraded > 0 {
		extra = append(extra, fmt.Sprintf("%d degraded", c.Degraded))
	}
	if c.NoData > 0 {
		extra = append(extra, fmt.Sprintf("%d no-data", c.NoData))
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// bakeLeft is the current stage's bake time left: frozen while paused.
func bakeLeft(st api.Status, now time.Time) (time.Duration, bool) {
	switch {
	case st.Paused:
		return st.BakeRemaining, true
	case st.BakeEndsAt != nil:
		return max(st.BakeEndsAt.Sub(now), 0), true
	}
	return 0, false
}

// openGate returns the open approval gate, if any: the last open one.
func openGate(st api.Status) *api.ApprovalRecord {
	for i := len(st.Approvals) - 1; i >= 0; i-- {
		if st.Approvals[i].Open() {
			return &st.Approvals[i]
		}
	}
	return nil
}

func gateText(a *api.ApprovalRecord, now time.Time) string {
	return fmt.Sprintf("awaiting approval for %s, %s left, then %s", a.Name, short(max(a.Deadline.Sub(now), 0)), a.OnTimeout)
}

// short rounds a duration for people: tenths under 10 s, seconds above.
func short(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// bar draws frac (0..1) as a bar of width cells.
func bar(frac float64, width int) string {
	n := int(frac*float64(width) + 0.5)
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("█", n) + strings.Repeat("░", width-n) + "]"
}

// instancesText says how far a stage got: updated/total once started, the
// plan's target before.
func instancesText(s api.StageRecord) (string, float64) {
	if s.Status == api.StagePending || s.InstancesTotal == 0 {
		return fmt.Sprintf("→ %d/%d", s.New, s.New+s.Old), 0
	}
	return fmt.Sprintf("%d/%d", s.InstancesUpdated, s.InstancesTotal), float64(s.InstancesUpdated) / float64(s.InstancesTotal)
}

func stageMark(s api.StageRecord) string {
	switch s.Status {
	case api.StageCompleted:
		return "✓"
	case api.StageFailed:
		return "✗"
	case api.StageRolledBack:
		return "↺"
	case api.StageInProgress, api.StageValidating:
		return "▸"
	}
	return " "
}

// resultText describes one check result as evidence.
func resultText(r health.Result) string {
	s := r.Check
	if r.Target != "" {
		s += " " + r.Target
	}
	s += " " + string(r.Verdict)
	switch {
	case r.Code != 0 && !strings.Contains(r.Error, fmt.Sprintf("status %d", r.Code)):
		s += fmt.Sprintf(" status %d", r.Code)
	case r.Exit != nil:
		s += fmt.Sprintf(" exit %d", *r.Exit)
	case r.Value != nil:
		s += fmt.Sprintf(" value %g", *r.Value)
	}
	if r.Error != "" {
		s += ": " + r.Error
	}
	if r.Excerpt != "" {
		s += " | " + strings.Join(strings.Fields(r.Excerpt), " ")
	}
	return s
}

// evidence lists a round's results that were not healthy, at most max.
func evidence(r *health.Round, limit int) []string {
	var out []string
	n := 0
	for _, res := range r.Results {
		if res.Verdict == health.Healthy {
			continue
		}
		if n++; n <= limit {
			out = append(out, resultText(res))
		}
	}
	if n > limit {
		out = append(out, fmt.Sprintf("(%d more)", n-limit))
	}
	if len(out) == 0 && r.Unobserved {
		out = append(out, "no instance to check")
	}
	return out
}

func controlText(c api.ControlRecord) string {
	s := fmt.Sprintf("%s by %s via %s", c.Action, orNone(c.By), c.Via)
	if c.Reason != "" {
		s += ": " + c.Reason
	}
	if !c.Accepted {
		s += " (refused: " + c.Error + ")"
	}
	return s
}

func outcomeLines(o api.Outcome, started time.Time, completed *time.Time, reason string) []string {
	s := "outcome: " + string(o)
	if completed != nil {
		s += " after " + completed.Sub(started).Round(time.Second).String()
	}
	out := []string{s}
	if reason != "" {
		out = append(out, "reason:  "+reason)
	}
	return out
}

func (v rolloutView) header() string {
	st := v.st
	return fmt.Sprintf("%s  %s of %s: %s → %s", st.WorkflowID, st.Strategy, st.Service, orNone(st.ImageFrom), st.ImageTo)
}

func (v rolloutView) finished() bool { return v.st.Phase == api.PhaseDone && v.st.Outcome != "" }

func (v rolloutView) frame() []string {
	st, now := v.st, v.now
	if st.WorkflowID == "" {
		return waiting(v.warn)
	}
	lines := []string{v.header()}
	status := "phase " + string(st.Phase)
	if n := len(st.Stages); n > 0 && !v.finished() {
		status += fmt.Sprintf(" · stage %d/%d", min(st.CurrentStage+1, n), n)
	}
	lines = append(lines, status+" · "+now.Format("15:04:05"))
	width := 0
	for _, s := range st.Stages {
		width = max(width, len([]rune(s.Name)))
	}
	from, to := stageWindow(len(st.Stages), st.CurrentStage)
	if from > 0 {
		lines = append(lines, fmt.Sprintf("  … stages 1-%d: %s", from, stageSummary(st.Stages[:from])))
	}
	for i, s := range st.Stages[from:to] {
		i += from
		inst, frac := instancesText(s)
		line := fmt.Sprintf("  %s %*d %-*s %s %-7s %-11s", stageMark(s), len(fmt.Sprint(len(st.Stages))), i+1, width, s.Name, bar(frac, 20), inst, s.Status)
		if passed, failed, c := v.rounds(i); s.Status != api.StagePending && (s.Status != api.StageInProgress || passed+failed > 0) {
			line += " " + roundsText(passed, failed, c)
		}
		if s.Status == api.StageValidating && i == st.CurrentStage {
			if left, ok := bakeLeft(st, now); ok {
				line += fmt.Sprintf(" · bake %s left of %s", short(left), s.Bake)
				if st.Paused {
					line += " (frozen)"
				}
			}
		}
		if s.Error != "" {
			line += " · " + s.Error
		}
		lines = append(lines, strings.TrimRight(line, " "))
	}
	if to < len(st.Stages) {
		lines = append(lines, fmt.Sprintf("  … stages %d-%d: %s", to+1, len(st.Stages), stageSummary(st.Stages[to:])))
	}
	if st.Paused {
		line := "PAUSED"
		if c, ok := lastControl(st, api.SignalPause); ok {
			line += fmt.Sprintf(" by %s via %s", orNone(c.By), c.Via)
			if c.Reason != "" {
				line += ": " + c.Reason
			}
		} else if st.ControlsOmitted > 0 {
			// The pause is older than the control log the status keeps.
			line += fmt.Sprintf(" (who paused: see starter history %s)", st.WorkflowID)
		}
		if left, ok := bakeLeft(st, now); ok {
			line += fmt.Sprintf("; bake frozen with %s left", short(left))
		}
		lines = append(lines, line)
	}
	if a := openGate(st); a != nil && !v.finished() {
		lines = append(lines, fmt.Sprintf("%s  (starter approve %s --reason ...)", gateText(a, now), st.WorkflowID))
	}
	if r := v.latest(); r != nil {
		lines = append(lines, fmt.Sprintf("last round %s: %s", r.At.Format("15:04:05"), r.Verdict))
	}
	if v.bad != nil {
		lines = append(lines, fmt.Sprintf("last failing round %s (%s ago): %s", v.bad.At.Format("15:04:05"), now.Sub(v.bad.At).Round(time.Second), v.bad.Verdict))
		for _, e := range evidence(v.bad, 4) {
			lines = append(lines, "  "+e)
		}
	}
	if n := len(st.Controls); n > 0 && !st.Paused {
		c := st.Controls[n-1]
		lines = append(lines, fmt.Sprintf("last control %s ago: %s", now.Sub(c.At).Round(time.Second), controlText(c)))
	}
	if rb := st.Rollback; rb != nil {
		line := "rollback: " + rb.Reason + " · " + rollbackState(rb)
		if rb.Reason == st.Error && v.finished() {
			line = "rollback: " + rollbackState(rb) // the reason follows
		}
		lines = append(lines, line)
	}
	if v.warn != "" {
		lines = append(lines, "("+v.warn+")")
	}
	if v.finished() {
		lines = append(lines, outcomeLines(st.Outcome, st.StartedAt, st.CompletedAt, st.Error)...)
	}
	return lines
}

// maxStageLines is how many stages a frame shows one by one; a rollout with
// more (a rolling one of many batches) shows those around the current
// stage and sums up the rest, so the frame fits a terminal.
const maxStageLines = 9

// stageWindow returns the stages [from, to) a frame shows one by one.
func stageWindow(n, current int) (from, to int) {
	if n <= maxStageLines {
		return 0, n
	}
	from = min(max(current-2, 0), n-maxStageLines)
	return from, from + maxStageLines
}

// stageSummary counts stages by status, in the order of the lifecycle.
func stageSummary(stages []api.StageRecord) string {
	counts := map[api.StageStatus]int{}
	for _, s := range stages {
		counts[s.Status]++
	}
	var parts []string
	for _, status := range []api.StageStatus{api.StageCompleted, api.StageInProgress, api.StageValidating,
		api.StageFailed, api.StageRolledBack, api.StagePending} {
		if n := counts[status]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, status))
		}
	}
	return strings.Join(parts, ", ")
}

func rollbackState(rb *api.RollbackRecord) string {
	var state string
	switch {
	case rb.Error != "":
		return "failed: " + rb.Error
	case rb.Verified:
		state = "restored and verified"
	case rb.CompletedAt != nil:
		state = "restored"
	default:
		return "in progress"
	}
	if n := len(rb.Terminating); n > 0 {
		state += fmt.Sprintf("; %d pod(s) of the new version still terminating, no longer ready (%s)", n, strings.Join(rb.Terminating, ", "))
	}
	return state
}

// latest is the newest round known: the watcher's live one or the recorded.
func (v rolloutView) latest() *health.Round {
	r := v.st.LatestRound
	if v.live != nil && v.live.Latest != nil && (r == nil || v.live.Latest.At.After(r.At)) {
		r = v.live.Latest
	}
	return r
}

// lastControl returns the last accepted control of action.
func lastControl(st api.Status, action string) (api.ControlRecord, bool) {
	for i := len(st.Controls) - 1; i >= 0; i-- {
		if c := st.Controls[i]; c.Action == action && c.Accepted {
			return c, true
		}
	}
	return api.ControlRecord{}, false
}

// plainPhases are the phases worth a line of their own: deploying and
// validating show in the stage lines, paused in the pause line.
func plainPhase(p api.Phase) bool {
	switch p {
	case api.PhaseDeploying, api.PhaseValidating, api.PhasePaused, api.PhaseDone:
		return false
	}
	return true
}

func (v rolloutView) facts() []fact {
	st, now := v.st, v.now
	if st.WorkflowID == "" {
		return []fact{{key: "warn", text: v.warn}}
	}
	// Printed once: the stages planned and the image found follow later.
	fs := []fact{{key: "head", sig: st.WorkflowID, text: fmt.Sprintf("rollout %s: %s of %s to %s", st.WorkflowID, st.Strategy, st.Service, st.ImageTo)}}
	// Keyed by their place in the whole log: the status keeps the latest
	// records only (ControlsOmitted counts the others).
	for i, c := range st.Controls {
		fs = append(fs, fact{key: fmt.Sprintf("control/%d", st.ControlsOmitted+i), text: "control: " + controlText(c)})
	}
	if plainPhase(st.Phase) {
		text := "phase " + string(st.Phase)
		if st.Phase == api.PhaseRollingBack && st.Rollback != nil {
			text += ": " + st.Rollback.Reason
		}
		fs = append(fs, fact{key: "phase", sig: string(st.Phase), text: text})
	}
	for i, s := range st.Stages {
		if s.Status == api.StagePending {
			continue
		}
		inst, _ := instancesText(s)
		text := fmt.Sprintf("stage %d/%d %s: %s, new %s", i+1, len(st.Stages), s.Name, s.Status, inst)
		if s.Status == api.StageValidating {
			text += fmt.Sprintf(", bake %s", s.Bake)
		}
		if s.Status != api.StageInProgress {
			text += ", " + roundsText(v.rounds(i))
		}
		if s.Error != "" {
			text += ": " + s.Error
		}
		fs = append(fs, fact{key: fmt.Sprintf("stage/%d", i), text: text})
	}
	if st.Paused {
		text := "paused"
		if left, ok := bakeLeft(st, now); ok {
			text += fmt.Sprintf(", bake time left %s (frozen)", short(left))
		}
		fs = append(fs, fact{key: "paused", sig: fmt.Sprint(st.ControlsOmitted + len(st.Controls)), text: text})
	}
	if a := openGate(st); a != nil && !v.finished() {
		fs = append(fs, fact{key: "approval", sig: fmt.Sprint(a.Stage, a.Deadline.UnixNano()),
			text: fmt.Sprintf("%s (starter approve %s --reason ...)", gateText(a, now), st.WorkflowID)})
	}
	if v.bad != nil {
		text := fmt.Sprintf("failing round at %s: %s", v.bad.At.Format("15:04:05"), v.bad.Verdict)
		for _, e := range evidence(v.bad, 4) {
			text += "\n  " + e
		}
		fs = append(fs, fact{key: "bad", sig: v.bad.At.String(), text: text})
	}
	if rb := st.Rollback; rb != nil && (rb.CompletedAt != nil || rb.Error != "") {
		fs = append(fs, fact{key: "rollback", text: "rollback: " + rollbackState(rb)})
	}
	if v.warn != "" {
		fs = append(fs, fact{key: "warn", text: v.warn})
	}
	if v.finished() {
		fs = append(fs, fact{key: "outcome", text: strings.Join(outcomeLines(st.Outcome, st.StartedAt, st.CompletedAt, st.Error), "\n")})
	}
	return fs
}

// releaseView is one look at a release, with the status of each running
// service's rollout.
type releaseView struct {
	st       api.ReleaseStatus
	rollouts map[string]api.Status
	warn     string
	now      time.Time
}

func (v releaseView) value() any {
	if v.st.WorkflowID == "" {
		return nil
	}
	return v.st
}

func (v releaseView) finished() bool {
	return v.st.Phase == api.ReleaseDone && v.st.Outcome != ""
}

// rolloutText sums up a running service's rollout: its current stage.
func (v releaseView) rolloutText(s api.ServiceState, withBar bool) string {
	ro, ok := v.rollouts[s.WorkflowID]
	if !ok || s.State != api.ServiceRunning || len(ro.Stages) == 0 {
		return ""
	}
	i := min(ro.CurrentStage, len(ro.Stages)-1)
	stage := ro.Stages[i]
	inst, frac := instancesText(stage)
	text := fmt.Sprintf("stage %d/%d %s %s", i+1, len(ro.Stages), stage.Name, stage.Status)
	if withBar {
		text += " " + bar(frac, 10)
	}
	text += " " + inst
	if withBar && stage.Status == api.StageValidating {
		if left, ok := bakeLeft(ro, v.now); ok {
			text += fmt.Sprintf(" · bake %s left", short(left))
		}
	}
	if ro.Paused {
		text += " · paused"
	}
	if a := openGate(ro); a != nil {
		text += " · " + gateText(a, v.now)
	}
	return text
}

func (v releaseView) frame() []string {
	st := v.st
	if st.WorkflowID == "" {
		return waiting(v.warn)
	}
	lines := []string{fmt.Sprintf("%s  release %s to %s", st.WorkflowID, st.Name, st.Environment)}
	status := "phase " + st.Phase
	if st.Paused {
		status += " · PAUSED"
	}
	lines = append(lines, status+" · "+v.now.Format("15:04:05"))
	width := 0
	for _, s := range st.Services {
		width = max(width, len(s.Name))
	}
	for i, stage := range st.Stages {
		lines = append(lines, fmt.Sprintf("  %s (%s)", stage.Name, stage.Mode))
		for _, s := range st.Services {
			if s.Stage != i {
				continue
			}
			line := fmt.Sprintf("    %-*s %-25s %s", width, s.Name, s.State, s.WorkflowID)
			if t := v.rolloutText(s, true); t != "" {
				line += "  " + t
			}
			if s.Error != "" {
				line += "  (" + s.Error + ")"
			}
			lines = append(lines, line)
		}
	}
	if st.Integration != nil {
		lines = append(lines, fmt.Sprintf("integration checks %s: %s", st.Integration.At.Format("15:04:05"), st.Integration.Verdict))
	}
	if st.Readiness != "" {
		lines = append(lines, "readiness: "+st.Readiness)
	}
	if n := len(st.Controls); n > 0 {
		c := st.Controls[n-1]
		lines = append(lines, fmt.Sprintf("last control %s ago: %s", v.now.Sub(c.At).Round(time.Second), controlText(c)))
	}
	if len(st.RollbackOrder) > 0 {
		lines = append(lines, "rolled back, in order: "+strings.Join(st.RollbackOrder, ", "))
	}
	if v.warn != "" {
		lines = append(lines, "("+v.warn+")")
	}
	if v.finished() {
		lines = append(lines, outcomeLines(st.Outcome, st.StartedAt, st.CompletedAt, st.Error)...)
	}
	return lines
}

func (v releaseView) facts() []fact {
	st := v.st
	if st.WorkflowID == "" {
		return []fact{{key: "warn", text: v.warn}}
	}
	fs := []fact{{key: "head", text: fmt.Sprintf("release %s: %s to %s, %d services", st.WorkflowID, st.Name, st.Environment, len(st.Services))}}
	// Keyed by their place in the whole log: the status keeps the latest
	// records only (ControlsOmitted counts the others).
	for i, c := range st.Controls {
		fs = append(fs, fact{key: fmt.Sprintf("control/%d", st.ControlsOmitted+i), text: "control: " + controlText(c)})
	}
	if st.Phase != api.ReleaseDone {
		text := "phase " + st.Phase
		if st.Paused {
			text += " (paused)"
		}
		fs = append(fs, fact{key: "phase", text: text})
	}
	for _, s := range st.Services {
		text := fmt.Sprintf("service %s: %s (%s)", s.Name, s.State, s.WorkflowID)
		if t := v.rolloutText(s, false); t != "" {
			text += ", " + t
		}
		if s.Error != "" {
			text += ": " + s.Error
		}
		fs = append(fs, fact{key: "service/" + s.Name, text: text})
	}
	if st.Readiness != "" {
		fs = append(fs, fact{key: "readiness", text: "readiness: " + st.Readiness})
	}
	if len(st.RollbackOrder) > 0 {
		fs = append(fs, fact{key: "rollback", text: "rolled back, in order: " + strings.Join(st.RollbackOrder, ", ")})
	}
	if v.warn != "" {
		fs = append(fs, fact{key: "warn", text: v.warn})
	}
	if v.finished() {
		fs = append(fs, fact{key: "outcome", text: strings.Join(outcomeLines(st.Outcome, st.StartedAt, st.CompletedAt, st.Error), "\n")})
	}
	return fs
}
