package workflows

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
)

// auditVersion: the rollout writes its audit trail through the Audit
// activity. Runs recorded before it write none.
const auditVersion = "audit-20261122"

// auditBytesVersion: the writer sends its queue as Audit inputs bounded by
// rounds and bytes, bounds the health rounds it keeps waiting, and records
// rounds dropped (its own and the watchers') as events. Runs recorded
// before it send the whole queue as one input.
const auditBytesVersion = "audit-bytes-20261203"

// The server refuses a payload over 2 MiB, and a ScheduleActivityTask
// input over it terminates the workflow (no rollback), so no Audit input
// may grow with an outage.
const (
	// maxAuditBatchBytes and maxAuditBatchRounds bound one Audit input.
	maxAuditBatchBytes  = 512 << 10
	maxAuditBatchRounds = 500
	// maxAuditKeptBytes bounds the health rounds kept waiting in workflow
	// state (eight inputs' worth); the oldest beyond it are dropped.
	maxAuditKeptBytes = 4 << 20
)

// auditWriter writes a workflow's audit trail beside it: a collector
// goroutine wakes whenever the state differs from what it last recorded
// (dirty) and queues the difference as records (collect); a writer
// goroutine writes what is queued as one batch with the Audit activity,
// retried without limit, while the next changes queue up behind it. Both
// run beside the workflow, never in its way: a database outage delays the
// trail, not a stage or a rollback. The workflow ends only once every batch
// is written (close), so none is lost.
type auditWriter struct {
	on  bool
	seq int64
	// queue holds what is recorded and not yet being written.
	queue         audit.Batch
	closing, done bool
	// collecting: the collector runs (it outlives a close; reopen does not
	// start a second one).
	collecting bool
	// bytesV is auditBytesVersion's version for this run.
	bytesV workflow.Version
	// dirty and collect are the owner's, for the last collect of a
	// hand-off (end).
	dirty   func() bool
	collect func(workflow.Context)
	// writing: a batch is in flight, and cancelWrite cancels its Audit
	// activity. handing: end gave up waiting; the writer stops after the
	// batch in flight, putting it back at the front of the queue unless it
	// was written, and says so (stopped).
	writing          bool
	cancelWrite      workflow.CancelFunc
	handing, stopped bool
}

// start runs the collector and the writer on a disconnected context, so a
// cancelled workflow still writes its trail.
func (w *auditWriter) start(ctx workflow.Context, dirty func() bool, collect func(workflow.Context)) {
	w.on = true
	w.dirty, w.collect = dirty, collect
	w.bytesV = workflow.GetVersion(ctx, auditBytesVersion, workflow.DefaultVersion, 1)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, func(gctx workflow.Context) {
		opts := auditOptions()
		// A hand-off cancels the write in flight and must know how it ended
		// (written, or not) before it hands the batch on. Never sent to the
		// server: no run's history changes.
		opts.WaitForCancellation = true
		actx := workflow.WithActivityOptions(gctx, opts)
		// The collector records every change as it happens.
		if !w.collecting {
			w.collecting = true
			workflow.Go(gctx, func(cctx workflow.Context) {
				for {
					_ = workflow.Await(cctx, dirty)
					collect(cctx)
				}
			})
		}
		for {
			_ = workflow.Await(gctx, func() bool { return w.handing || w.closing || !w.queue.Empty() })
			if w.handing {
				w.stopped = true
				return
			}
			if w.queue.Empty() {
				// Closing, and the collector has recorded the end.
				if !dirty() {
					w.done = true
					return
				}
				collect(gctx)
				continue
			}
			b := w.take()
			wctx, cancel := workflow.WithCancel(actx)
			w.writing, w.cancelWrite = true, cancel
			err := workflow.ExecuteActivity(wctx, acts.Audit, b).Get(gctx, nil)
			w.writing, w.cancelWrite = false, nil
			cancel()
			if err != nil && w.handing {
				// Not written: the trail workflow writes it, first.
				w.untake(b)
				w.stopped = true
				return
			}
			if err != nil {
				workflow.GetLogger(gctx).Error("audit write abandoned", "error", err)
			}
		}
	})
}

// take takes the next Audit input off the queue: all of it in runs recorded
// before auditBytesVersion; else the plan and stages, then events and
// rounds in order, up to maxAuditBatchBytes and maxAuditBatchRounds (at
// least one record), leaving the rest queued for the next.
func (w *auditWriter) take() audit.Batch {
	q := w.queue
	if w.bytesV < 1 {
		w.queue = audit.Batch{}
		return q
	}
	b := audit.Batch{WorkflowID: q.WorkflowID, RunID: q.RunID, Plan: q.Plan, Stages: q.Stages}
	size := jsonBytes(b)
	fits := func(n int) bool { return size+n+1 <= maxAuditBatchBytes || b.Empty() }
	events := 0
	for ; events < len(q.Events); events++ {
		n := jsonBytes(q.Events[events])
		if !fits(n) {
			break
		}
		b.Events, size = append(b.Events, q.Events[events]), size+n+1
	}
	rounds := 0
	for events == len(q.Events) && rounds < len(q.Rounds) && rounds < maxAuditBatchRounds {
		n := jsonBytes(q.Rounds[rounds])
		if !fits(n) {
			break
		}
		b.Rounds, size = append(b.Rounds, q.Rounds[rounds]), size+n+1
		rounds++
	}
	w.queue = audit.Batch{WorkflowID: q.WorkflowID, RunID: q.RunID,
		Events: slices.Clone(q.Events[events:]), Rounds: slices.Clone(q.Rounds[rounds:])}
	return b
}

// untake puts a batch taken off the queue and not written back at its
// front: its events and rounds before those queued since, its plan and
// stage rows unless newer ones were queued since.
func (w *auditWriter) untake(b audit.Batch) {
	q := w.queue
	w.queue = audit.Batch{WorkflowID: cmp.Or(q.WorkflowID, b.WorkflowID), RunID: cmp.Or(q.RunID, b.RunID),
		Plan: b.Plan, Stages: slices.Clone(b.Stages),
		Events: append(slices.Clone(b.Events), q.Events...), Rounds: append(slices.Clone(b.Rounds), q.Rounds...)}
	if q.Plan != nil {
		// The newer plan record, with the spec of the one not written when
		// it has none (a plan sends its spec once).
		p := *q.Plan
		if p.Spec == nil && b.Plan != nil {
			p.Spec = b.Plan.Spec
		}
		w.queue.Plan = &p
	}
	for _, s := range q.Stages {
		w.stage(s)
	}
}

// jsonBytes is v's JSON size, as the default data converter encodes it.
func jsonBytes(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// close waits until the writer has written everything.
func (w *auditWriter) close(ctx workflow.Context) {
	if !w.on {
		return
	}
	w.closing = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return w.done })
}

// reopen restarts a closed writer: the run it was closed for goes on (an
// abort during a continue-as-new handover rolls back instead).
func (w *auditWriter) reopen(ctx workflow.Context, dirty func() bool, collect func(workflow.Context)) {
	if !w.on || !w.done {
		return
	}
	w.closing, w.done = false, false
	w.start(ctx, dirty, collect)
}

// event queues one event with the next sequence number, at now unless it
// has its own time.
func (w *auditWriter) event(now time.Time, e audit.Event) {
	w.seq++
	e.Seq = w.seq
	if e.At.IsZero() {
		e.At = now
	}
	w.queue.Events = append(w.queue.Events, e)
}

// stage queues a stage row, replacing one of the same index still queued.
func (w *auditWriter) stage(row audit.Stage) {
	for j := range w.queue.Stages {
		if w.queue.Stages[j].Index == row.Index {
			w.queue.Stages[j] = row
			return
		}
	}
	w.queue.Stages = append(w.queue.Stages, row)
}

// auditor turns the rollout's state into audit records for its writer.
type auditor struct {
	auditWriter
	// last is what the collector last recorded.
	phase    api.Phase
	outcome  api.Outcome
	controls int
	stages   []api.StageStatus
	// rounds are rounds the watchers could not store, waiting for a batch.
	rounds []audit.Round
	// spec is the spec the run runs, as JSON, sent with the first plan
	// record only (specQueued): the store keeps it, and history does not
	// carry it in every batch. startedBy and undoOf come from the memo.
	spec              json.RawMessage
	specQueued        bool
	startedBy, undoOf string
}

// startAudit starts the rollout's audit writer.
func (r *rollout) startAudit(ctx workflow.Context) {
	if workflow.GetVersion(ctx, auditVersion, workflow.DefaultVersion, 1) < 1 {
		return
	}
	r.auditor.spec, _ = json.Marshal(r.spec)
	r.auditor.startedBy, r.auditor.undoOf = r.st.StartedBy, r.st.UndoOf // noteStarter read them
	r.auditor.start(ctx, r.auditDirty, r.auditCollect)
}

// noteStarter puts who started the run, and the revision an undo restores,
// in its status, from the memo (startedBy).
func (r *rollout) noteStarter(ctx workflow.Context) {
	r.st.StartedBy, r.st.UndoOf = startedBy(ctx)
}

// startedBy reads who started the run and the revision it restores (an
// undo) from the memo the starter set (api.MemoStartedBy, api.MemoUndo); a
// rollout a release started without one was started by the release.
func startedBy(ctx workflow.Context) (by, undoOf string) {
	info := workflow.GetInfo(ctx)
	fields := info.Memo.GetFields()
	if p, ok := fields[api.MemoStartedBy]; ok {
		_ = dataConverter().FromPayload(p, &by)
	}
	if p, ok := fields[api.MemoUndo]; ok {
		var u api.Undo
		if dataConverter().FromPayload(p, &u) == nil {
			undoOf = u.RunID
		}
	}
	if by == "" && info.ParentWorkflowExecution != nil {
		by = info.ParentWorkflowExecution.ID
	}
	// Any client sets the memo: who started it is kept as a control
	// request's by is (api.ShownBy), readable in history, status and trail.
	return api.ShownBy(storableText(by)), storableText(undoOf)
}

// maxStoredText bounds the memo values the trail keeps (storableText).
const maxStoredText = 200

// storableText is a memo value any client set, made fit for the audit
// trail's text columns: valid UTF-8 without NUL (PostgreSQL refuses it,
// and the trail's writes would be retried forever), at most
// maxStoredText bytes.
func storableText(s string) string {
	return cutText(strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD"), maxStoredText)
}

// cutText drops s's last runes until it is at most n bytes.
func cutText(s string, n int) string {
	for len(s) > max(n, 0) {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// closeAudit ends the audit trail once the outcome is decided: it waits a
// short while for the writer, then hands what is left, with the
// notifications not yet delivered (settle), to a trail workflow (end).
func (r *rollout) closeAudit(ctx workflow.Context) { r.auditor.end(ctx, &r.notifier) }

// keepRounds queues rounds a watcher could not store.
func (r *rollout) keepRounds(rounds []audit.Round) {
	switch {
	case !r.auditor.on:
	case r.auditor.bytesV < 1:
		r.auditor.rounds = append(r.auditor.rounds, rounds...)
	default:
		r.auditor.keep(rounds)
	}
}

// keep queues rounds a watcher could not store, recording as an event how
// many it could not keep either (a round's Dropped), and drops the oldest
// rounds waiting while they are over maxAuditKeptBytes, recording how many
// of which stage, so the trail says rounds are missing.
func (a *auditor) keep(rounds []audit.Round) {
	for _, rd := range rounds {
		if rd.Dropped > 0 {
			a.dropped(rd.At, rd.Stage, rd.Which, rd.Dropped, "the watcher could not keep them while the audit store was down")
		}
		if rd.Note() {
			continue
		}
		rd.Dropped = 0
		a.rounds = append(a.rounds, rd)
	}
	// Oldest first: those being queued for a batch, then those waiting.
	waiting := [][]audit.Round{a.queue.Rounds, a.rounds}
	total := 0
	for _, rs := range waiting {
		for _, rd := range rs {
			total += jsonBytes(rd) + 1
		}
	}
	if total <= maxAuditKeptBytes {
		return
	}
	type key struct{ stage, which string }
	var order []key
	counts := map[key]int{}
	last := map[key]time.Time{}
	for i, rs := range waiting {
		n := 0
		for ; n < len(rs) && total > maxAuditKeptBytes; n++ {
			total -= jsonBytes(rs[n]) + 1
			k := key{rs[n].Stage, rs[n].Which}
			if counts[k] == 0 {
				order = append(order, k)
			}
			counts[k]++
			last[k] = rs[n].At
		}
		waiting[i] = slices.Clone(rs[n:])
	}
	a.queue.Rounds, a.rounds = waiting[0], waiting[1]
	for _, k := range order {
		a.dropped(last[k], k.stage, k.which, counts[k], "the audit store was down longer than the rollout keeps rounds for it")
	}
}

// dropped records that n health rounds of a stage were not kept, and why.
func (a *auditor) dropped(at time.Time, stage, which string, n int, why string) {
	of := "of stage " + strconv.Quote(stage)
	if stage == "" {
		of = "of a watch" // a rollback's verification names no stage
	}
	a.event(at, audit.Event{Kind: audit.KindDropped, At: at, Action: stage, To: strconv.Itoa(n),
		Reason: fmt.Sprintf("%d health rounds %s (%s instances) were not kept: %s", n, of, which, why)})
}

// auditDirty reports whether the state differs from what was last
// recorded. It runs on every workflow event, so it reads the state in place.
func (r *rollout) auditDirty() bool {
	st := &r.st
	if r.phase() != r.auditor.phase || st.Outcome != r.auditor.outcome || len(st.Controls) != r.auditor.controls ||
		len(st.Stages) != len(r.auditor.stages) || len(r.auditor.rounds) > 0 {
		return true
	}
	for i := range st.Stages {
		if st.Stages[i].Status != r.auditor.stages[i] {
			return true
		}
	}
	return false
}

// auditCollect queues what changed since it last ran, as records.
func (r *rollout) auditCollect(ctx workflow.Context) {
	st := r.status()
	q := &r.auditor.queue
	q.WorkflowID, q.RunID = st.WorkflowID, st.RunID
	now := workflow.Now(ctx)
	event := func(e audit.Event) { r.auditor.event(now, e) }
	// Control actions first: they cause the phase changes that follow.
	for _, c := range st.Controls[r.auditor.controls:] {
		event(audit.Event{Kind: audit.KindControl, At: c.At, Action: c.Action, Via: c.Via, By: c.By,
			Reason: c.Reason, Accepted: c.Accepted, Error: c.Error})
	}
	r.auditor.controls = len(st.Controls)
	if st.Phase != r.auditor.phase {
		event(audit.Event{Kind: audit.KindPhase, From: string(r.auditor.phase), To: string(st.Phase)})
		r.auditor.phase = st.Phase
	}
	for i, s := range st.Stages {
		prev := api.StageStatus("")
		if i < len(r.auditor.stages) {
			prev = r.auditor.stages[i]
		}
		if s.Status == prev {
			continue
		}
		idx := i
		event(audit.Event{Kind: audit.KindStage, Stage: &idx, Action: s.Name, From: string(prev), To: string(s.Status), Error: s.Error})
		r.auditor.stage(auditStage(st.Strategy, s))
	}
	r.auditor.stages = r.auditor.stages[:0]
	for _, s := range st.Stages {
		r.auditor.stages = append(r.auditor.stages, s.Status)
	}
	if st.Outcome != r.auditor.outcome {
		event(audit.Event{Kind: audit.KindOutcome, To: string(st.Outcome), Reason: st.Error})
		r.auditor.outcome = st.Outcome
	}
	q.Rounds = append(q.Rounds, r.auditor.rounds...)
	r.auditor.rounds = nil
	plan := auditPlan(st)
	plan.StartedBy, plan.UndoOf = r.auditor.startedBy, r.auditor.undoOf
	switch {
	case !r.auditor.specQueued:
		plan.Spec, r.auditor.specQueued = r.auditor.spec, true
	case q.Plan != nil:
		plan.Spec = q.Plan.Spec // queued and not yet taken: it stays queued
	}
	q.Plan = &plan
}

func auditPlan(st api.Status) audit.Plan {
	p := audit.Plan{WorkflowID: st.WorkflowID, RunID: st.RunID, ExecutionID: st.ExecutionID, RequestID: st.RequestID,
		Service: st.Service, Platform: st.Platform, Strategy: st.Strategy, Target: st.Target,
		ImageFrom: st.ImageFrom, ImageTo: st.ImageTo, Status: string(st.Phase), Error: st.Error,
		Stages: len(st.Stages), CreatedAt: st.StartedAt, CompletedAt: st.CompletedAt, State: string(st.PlanState())}
	started := st.StartedAt
	p.StartedAt = &started
	if st.Outcome != "" {
		p.Status = string(st.Outcome)
		p.Success = st.Outcome == api.OutcomeSucceeded
		p.RolledBack = st.Outcome == api.OutcomeRolledBack || st.Outcome == api.OutcomeRollbackFailed
	}
	return p
}

func auditStage(strategy string, s api.StageRecord) audit.Stage {
	return audit.Stage{Index: s.Index, Name: s.Name, Strategy: strategy, Percent: s.Percent,
		TargetNew: s.New, TargetTotal: s.New + s.Old, Status: string(s.Status),
		ChecksPassed: s.ChecksPassed, ChecksFailed: s.ChecksFailed, Rounds: s.Rounds,
		InstancesUpdated: s.InstancesUpdated, InstancesTotal: s.InstancesTotal, Error: s.Error,
		StartedAt: s.StartedAt, CompletedAt: s.CompletedAt}
}
