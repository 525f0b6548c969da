package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/audit"
)

// auditVersion: the rollout writes its audit trail through the Audit
// activity. Runs recorded before it write none.
const auditVersion = "audit-20261122"

// auditor turns the rollout's state into audit records. A collector
// goroutine wakes whenever the state differs from what it last recorded and
// queues the difference (events in order, changed stages, the plan, rounds
// the watchers could not store); a writer goroutine writes what is queued
// as one batch with the Audit activity, retried without limit, while the
// next changes queue up behind it. Both run beside the rollout, never in its
// way: a database outage delays the trail, not a stage or a rollback. The
// workflow ends only once every batch is written, so none is lost.
type auditor struct {
	on  bool
	seq int64
	// last is what the writer last handed over.
	phase    Phase
	outcome  Outcome
	controls int
	stages   []StageStatus
	// rounds are rounds the watchers could not store, waiting for a batch.
	rounds []audit.Round
	// queue holds what is recorded and not yet being written.
	queue         audit.Batch
	closing, done bool
}

// startAudit starts the audit writer on a disconnected context, so a
// cancelled rollout still writes its trail.
func (r *rollout) startAudit(ctx workflow.Context) {
	if workflow.GetVersion(ctx, auditVersion, workflow.DefaultVersion, 1) < 1 {
		return
	}
	r.au.on = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, func(gctx workflow.Context) {
		actx := workflow.WithActivityOptions(gctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			// Unlimited attempts: the trail waits for the database.
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
			Summary:     "audit",
		})
		// The collector records every change as it happens.
		workflow.Go(gctx, func(cctx workflow.Context) {
			for {
				_ = workflow.Await(cctx, r.auditDirty)
				r.auditCollect(cctx)
			}
		})
		for {
			_ = workflow.Await(gctx, func() bool { return r.au.closing || !r.au.queue.Empty() })
			if r.au.queue.Empty() {
				// Closing, and the collector has recorded the end.
				if !r.auditDirty() {
					r.au.done = true
					return
				}
				r.auditCollect(gctx)
				continue
			}
			b := r.au.queue
			r.au.queue = audit.Batch{}
			if err := workflow.ExecuteActivity(actx, acts.Audit, b).Get(gctx, nil); err != nil {
				workflow.GetLogger(gctx).Error("audit write abandoned", "error", err)
			}
		}
	})
}

// closeAudit waits until the writer has written everything.
func (r *rollout) closeAudit(ctx workflow.Context) {
	if !r.au.on {
		return
	}
	r.au.closing = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return r.au.done })
}

// keepRounds queues rounds a watcher could not store.
func (r *rollout) keepRounds(rounds []audit.Round) {
	if r.au.on {
		r.au.rounds = append(r.au.rounds, rounds...)
	}
}

// auditDirty reports whether the state differs from what was last
// recorded. It runs on every workflow event, so it reads the state in place.
func (r *rollout) auditDirty() bool {
	st := &r.st
	if r.phase() != r.au.phase || st.Outcome != r.au.outcome || len(st.Controls) != r.au.controls ||
		len(st.Stages) != len(r.au.stages) || len(r.au.rounds) > 0 {
		return true
	}
	for i := range st.Stages {
		if st.Stages[i].Status != r.au.stages[i] {
			return true
		}
	}
	return false
}

// auditCollect queues what changed since it last ran, as records.
func (r *rollout) auditCollect(ctx workflow.Context) {
	st := r.status()
	q := &r.au.queue
	q.WorkflowID, q.RunID = st.WorkflowID, st.RunID
	now := workflow.Now(ctx)
	event := func(e audit.Event) {
		r.au.seq++
		e.Seq = r.au.seq
		if e.At.IsZero() {
			e.At = now
		}
		q.Events = append(q.Events, e)
	}
	// Control actions first: they cause the phase changes that follow.
	for _, c := range st.Controls[r.au.controls:] {
		event(audit.Event{Kind: audit.KindControl, At: c.At, Action: c.Action, Via: c.Via, By: c.By,
			Reason: c.Reason, Accepted: c.Accepted, Error: c.Error})
	}
	r.au.controls = len(st.Controls)
	if st.Phase != r.au.phase {
		event(audit.Event{Kind: audit.KindPhase, From: string(r.au.phase), To: string(st.Phase)})
		r.au.phase = st.Phase
	}
	for i, s := range st.Stages {
		prev := StageStatus("")
		if i < len(r.au.stages) {
			prev = r.au.stages[i]
		}
		if s.Status == prev {
			continue
		}
		idx := i
		event(audit.Event{Kind: audit.KindStage, Stage: &idx, Action: s.Name, From: string(prev), To: string(s.Status), Error: s.Error})
		row := auditStage(st.Strategy, s)
		replaced := false
		for j := range q.Stages {
			if q.Stages[j].Index == row.Index {
				q.Stages[j], replaced = row, true
			}
		}
		if !replaced {
			q.Stages = append(q.Stages, row)
		}
	}
	r.au.stages = r.au.stages[:0]
	for _, s := range st.Stages {
		r.au.stages = append(r.au.stages, s.Status)
	}
	if st.Outcome != r.au.outcome {
		event(audit.Event{Kind: audit.KindOutcome, To: string(st.Outcome), Reason: st.Error})
		r.au.outcome = st.Outcome
	}
	q.Rounds = append(q.Rounds, r.au.rounds...)
	r.au.rounds = nil
	plan := auditPlan(st)
	q.Plan = &plan
}

func auditPlan(st Status) audit.Plan {
	p := audit.Plan{WorkflowID: st.WorkflowID, RunID: st.RunID, ExecutionID: st.ExecutionID, RequestID: st.RequestID,
		Service: st.Service, Platform: st.Platform, Strategy: st.Strategy, Target: st.Target,
		ImageFrom: st.ImageFrom, ImageTo: st.ImageTo, Status: string(st.Phase), Error: st.Error,
		Stages: len(st.Stages), CreatedAt: st.StartedAt, CompletedAt: st.CompletedAt}
	started := st.StartedAt
	p.StartedAt = &started
	if st.Outcome != "" {
		p.Status = string(st.Outcome)
		p.Success = st.Outcome == OutcomeSucceeded
		p.RolledBack = st.Outcome == OutcomeRolledBack || st.Outcome == OutcomeRollbackFailed
	}
	return p
}

func auditStage(strategy string, s StageRecord) audit.Stage {
	return audit.Stage{Index: s.Index, Name: s.Name, Strategy: strategy, Percent: s.Percent,
		TargetNew: s.New, TargetTotal: s.New + s.Old, Status: string(s.Status),
		ChecksPassed: s.ChecksPassed, ChecksFailed: s.ChecksFailed, Rounds: s.Rounds,
		InstancesUpdated: s.InstancesUpdated, InstancesTotal: s.InstancesTotal, Error: s.Error,
		StartedAt: s.StartedAt, CompletedAt: s.CompletedAt}
}
