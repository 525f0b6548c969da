package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// continueVersion: a long rollout continues as new between stages, carrying
// its state, so no run's history grows past Temporal's limits.
const continueVersion = "continue-as-new-20261122"

// ContinueAfterEvents is the history length past which a rollout continues
// as new at its next stage boundary (or earlier, when the server suggests
// it). Temporal warns at 10,240 events and stops a run at 51,200; staying
// under 4,096 keeps replay of each run fast. Tests lower it.
var ContinueAfterEvents = 3000

// carried is a rollout's state handed from one run to the next.
type carried struct {
	Status   api.Status        `json:"status"`
	Snapshot platform.Snapshot `json:"snapshot"`
	Plan     plan.Plan         `json:"plan"`
	Token    string            `json:"token"`
	Next     int               `json:"next"`
	Paused   bool              `json:"paused,omitempty"`
	Promoted bool              `json:"promoted,omitempty"`
	// Aborted and AbortReason: an abort accepted during the handover
	// (runs at handoverVersion roll back instead; this is belt and braces).
	Aborted     bool             `json:"aborted,omitempty"`
	AbortReason string           `json:"abortReason,omitempty"`
	Accept      bool             `json:"acceptDegraded,omitempty"`
	DeadlineAt  time.Time        `json:"deadlineAt"`
	HealthV     workflow.Version `json:"healthVersion"`
	// Audit is what the audit trail last recorded, so the next run goes on
	// numbering its events and writes no event twice.
	Audit    carriedAudit   `json:"audit"`
	Notified map[string]int `json:"notified,omitempty"`
	// Runs counts the runs before this one.
	Runs int `json:"runs"`
	// Rules are the spec validation rules the first run chose.
	Rules spec.Rules `json:"specRules,omitempty"`
}

type carriedAudit struct {
	On       bool              `json:"on"`
	Seq      int64             `json:"seq"`
	Phase    api.Phase         `json:"phase"`
	Controls int               `json:"controls"`
	Stages   []api.StageStatus `json:"stages"`
}

// shouldContinue reports whether the run should continue as new before
// stage next: its history is long, or the server suggests it. The answer is
// recorded (a mutable side effect, a marker only when it changes), so a
// replay follows what the run decided whatever the threshold is now.
func (r *rollout) shouldContinue(ctx workflow.Context, next int) bool {
	if next == 0 || next >= len(r.plan.Stages) {
		return false
	}
	if !r.continueAsked {
		r.continueAsked = true
		r.continueV = workflow.GetVersion(ctx, continueVersion, workflow.DefaultVersion, 1)
	}
	if r.continueV < 1 {
		return false
	}
	var due bool
	err := workflow.MutableSideEffect(ctx, "continue-as-new", func(ctx workflow.Context) any {
		info := workflow.GetInfo(ctx)
		return info.GetCurrentHistoryLength() >= ContinueAfterEvents || info.GetContinueAsNewSuggested()
	}, func(a, b any) bool { return a.(bool) == b.(bool) }).Get(&due)
	return err == nil && due
}

// handoverVersion: an abort accepted while a run hands over (its controls
// drained, its notifications flushed, its audit trail closed, all of which
// may wait) rolls the rollout back instead of continuing it as new.
const handoverVersion = "abort-at-handover-20261203"

// continueAsNew finishes this run's side work (notifications, the audit
// trail, control handlers in flight) and returns the error that continues
// the rollout in a new run from stage next.
func (r *rollout) continueAsNew(ctx workflow.Context, strategy string, next int) error {
	// Handle the controls already received, so none is lost.
	for _, action := range controls {
		ch := workflow.GetSignalChannel(ctx, action)
		for {
			var req api.ControlRequest
			if !ch.ReceiveAsync(&req) {
				break
			}
			_, _ = r.control(ctx, action, req, "signal")
		}
	}
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	r.awaitDrains(ctx)
	r.notifier.flush(ctx)
	r.auditor.close(ctx)
	// An abort accepted while this run handed over takes effect here: the
	// caller rolls back. (The audit trail, closed, reopens for the rest.)
	if r.aborted && workflow.GetVersion(ctx, handoverVersion, workflow.DefaultVersion, 1) >= 1 {
		r.auditor.reopen(ctx, r.auditDirty, r.auditCollect)
		return errAborted{r.abortReason}
	}
	c := carried{Status: r.status(), Snapshot: r.snapshot, Plan: r.plan, Token: r.token, Next: next,
		Paused: r.paused, Promoted: r.promoted, Aborted: r.aborted, AbortReason: r.abortReason, Accept: r.acceptDegraded, DeadlineAt: r.deadlineAt, HealthV: r.healthV,
		Audit:    carriedAudit{On: r.auditor.on, Seq: r.auditor.seq, Phase: r.auditor.phase, Controls: r.auditor.controls, Stages: r.auditor.stages},
		Notified: r.notifier.sent, Runs: r.runs + 1, Rules: r.rules}
	c.Status.Phase = r.st.Phase
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("carry state: %w", err)
	}
	in := api.RolloutInput{Spec: r.spec, Release: r.release, Resume: b}
	name, _ := api.WorkflowFor(strategy)
	workflow.GetLogger(ctx).Info("continuing as new", "service", r.spec.Service, "next stage", next,
		"history", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return workflow.NewContinueAsNewError(ctx, name, in)
}

// resume restores the state a previous run carried over.
func (r *rollout) resume(ctx workflow.Context, raw []byte) (int, error) {
	if workflow.GetInfo(ctx).ContinuedExecutionRunID == "" {
		return 0, fmt.Errorf("resume: is set by the workflow itself when a rollout continues as new")
	}
	var c carried
	if err := json.Unmarshal(raw, &c); err != nil {
		return 0, fmt.Errorf("resume: %w", err)
	}
	r.st, r.snapshot, r.plan, r.token = c.Status, c.Snapshot, c.Plan, c.Token
	r.paused, r.promoted, r.acceptDegraded, r.healthV = c.Paused, c.Promoted, c.Accept, c.HealthV
	r.aborted, r.abortReason = c.Aborted, c.AbortReason
	r.deadlineAt, r.runs = c.DeadlineAt, c.Runs
	r.auditor.seq, r.auditor.phase, r.auditor.controls, r.auditor.stages = c.Audit.Seq, c.Audit.Phase, c.Audit.Controls, c.Audit.Stages
	r.notifier.sent = c.Notified
	// A run an older worker continued carried a status that did not name
	// its starter; the memo, which continue-as-new carries, does.
	r.noteStarter(ctx)
	return c.Next, nil
}
