package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// auditHandoffVersion: a rollout or release whose outcome is decided waits
// at most AuditCloseWait for its audit writer, then hands what is left of
// its trail to an AuditTrail workflow and completes, so a database outage
// never keeps its target locked. Runs recorded before it wait for the
// database however long it takes.
const auditHandoffVersion = "audit-handoff-20261203"

// AuditCloseWait is how long a decided rollout or release waits for its
// audit writer to finish before it hands the rest of its trail on. A
// healthy store takes a batch in milliseconds; 10 s is the Audit activity's
// first three attempts (1 s and 2 s apart), so a store that has not taken
// the last batch by then is down or stuck, and the target is locked for at
// most this long by it.
var AuditCloseWait = 10 * time.Second

// AuditTrailWorkflow is the name of the workflow that writes a finished
// run's trail (AuditTrail).
const AuditTrailWorkflow = "AuditTrail"

// SignalTrailBatch carries the second and later batches of a hand-off
// (TrailBatch) to the AuditTrail workflow.
const SignalTrailBatch = "trail-batch"

// TrailID is the ID of the AuditTrail workflow that writes the rest of the
// trail of run runID of workflowID: one per run, and never a target's or
// release's ID (those start with deploy: or release:), so it locks nothing.
func TrailID(workflowID, runID string) string { return "trail:" + workflowID + ":" + runID }

// TrailInput starts an AuditTrail: the run whose trail it writes, the
// number of batches handed over and the first of them. The others follow
// as signals, one batch each, so no payload is larger than one batch
// (maxAuditBatchBytes), however much the outage left.
//
// Notices are the notifications the run had not delivered by its close
// (settle), sent to NotifyTargets (the spec's, bounded with it) as the run
// would have sent them.
type TrailInput struct {
	WorkflowID    string              `json:"workflowId"`
	RunID         string              `json:"runId"`
	Batches       int                 `json:"batches"`
	First         audit.Batch         `json:"first"`
	NotifyTargets []spec.Notification `json:"notifyTargets,omitempty"`
	Notices       []notify.Event      `json:"notices,omitempty"`
}

// TrailBatch is batch Index (from 0; 0 is the input's) of a hand-off.
type TrailBatch struct {
	Index int         `json:"index"`
	Batch audit.Batch `json:"batch"`
}

// TrailResult says what an AuditTrail wrote.
type TrailResult struct {
	Batches int `json:"batches"`
	Events  int `json:"events"`
	Rounds  int `json:"rounds"`
	// Notified counts the notices delivered; the others were given up
	// after the Notify activity's retries, as the run would have.
	Notified int `json:"notified"`
}

// trailBatchWait bounds how long an AuditTrail waits for a batch its
// parent said it would signal (the parent signals them at once, after the
// trail has started; only a parent that failed mid-hand-off leaves one
// missing).
const trailBatchWait = 24 * time.Hour

// AuditTrail writes the batches a finished run handed over, in order, with
// the Audit activity retried without limit (and, should it ever give up,
// again after a minute), sends the notifications it handed over beside
// them (Notify, retried as the run would), then ends. The store writes idempotently (events
// and rounds once by key, plan and stage rows by upsert), so a batch
// written twice, by a cancelled attempt of the run and by this workflow,
// leaves one copy.
func AuditTrail(ctx workflow.Context, in TrailInput) (TrailResult, error) {
	if in.Batches < 0 || (in.Batches == 0 && len(in.Notices) == 0) {
		return TrailResult{}, temporal.NewNonRetryableApplicationError("a trail hand-off has a batch or a notification", "InvalidTrail", nil)
	}
	var res TrailResult
	sending := len(in.Notices)
	for _, ev := range in.Notices {
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer func() { sending-- }()
			var nr activities.NotifyResult
			err := workflow.ExecuteActivity(workflow.WithActivityOptions(gctx, notifyOptions(ev.Kind)), acts.Notify,
				activities.NotifyInput{Targets: in.NotifyTargets, Event: ev}).Get(gctx, &nr)
			if err != nil || len(nr.Failed) > 0 {
				workflow.GetLogger(gctx).Warn("notification not delivered", "event", ev.Kind, "failed", nr.Failed, "error", err)
			}
			if err == nil {
				res.Notified++
			}
		})
	}
	got := make([]*audit.Batch, in.Batches)
	if in.Batches > 0 {
		first := in.First
		got[0] = &first
	}
	ch := workflow.GetSignalChannel(ctx, SignalTrailBatch)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var tb TrailBatch
			ch.Receive(gctx, &tb)
			if tb.Index > 0 && tb.Index < len(got) && got[tb.Index] == nil {
				b := tb.Batch
				got[tb.Index] = &b
			}
		}
	})
	actx := workflow.WithActivityOptions(ctx, auditOptions())
	for i := range got {
		if got[i] == nil {
			ok, _ := workflow.AwaitWithTimeout(ctx, trailBatchWait, func() bool { return got[i] != nil })
			if !ok {
				return res, fmt.Errorf("audit trail of %s run %s: batch %d of %d never arrived; %d batches written",
					in.WorkflowID, in.RunID, i+1, in.Batches, res.Batches)
			}
		}
		b := *got[i]
		for {
			err := workflow.ExecuteActivity(actx, acts.Audit, b).Get(ctx, nil)
			if err == nil {
				break
			}
			workflow.GetLogger(ctx).Error("audit trail write failed; trying again in a minute", "batch", i+1, "of", in.Batches, "error", err)
			if err := workflow.Sleep(ctx, time.Minute); err != nil {
				return res, err
			}
		}
		res.Batches++
		res.Events += len(b.Events)
		res.Rounds += len(b.Rounds)
		got[i] = &audit.Batch{} // written: keep no copy in memory
	}
	_ = workflow.Await(ctx, func() bool { return sending == 0 })
	return res, nil
}

// auditOptions are the Audit activity's options: attempts without limit,
// as the trail waits for the database.
func auditOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    keepAliveTimeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
		Summary:             "audit",
	}
}

// end closes the writer once the outcome is decided, after the notifier
// settled (n.left: notifications it did not deliver in time). Runs before
// auditHandoffVersion wait for the writer (close). Later runs wait at most
// AuditCloseWait; then the write in flight is cancelled (and put back at
// the front of the queue unless it was written after all), the last records
// are collected, an event naming the trail workflow is recorded, and the
// whole queue, with the notifications left, goes to a new AuditTrail child
// workflow that outlives this run (ParentClosePolicy ABANDON): its first
// batch as input, the others as signals, each at most maxAuditBatchBytes.
// The run then completes, and its target is free.
func (w *auditWriter) end(ctx workflow.Context, n *notifier) {
	if workflow.GetVersion(ctx, auditHandoffVersion, workflow.DefaultVersion, 1) < 1 {
		w.close(ctx)
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	handing := w.on
	if w.on {
		w.closing = true
		if ok, _ := workflow.AwaitWithTimeout(dctx, AuditCloseWait, func() bool { return w.done }); ok {
			handing = false
		}
	}
	if handing {
		w.handing = true
		if w.writing && w.cancelWrite != nil {
			w.cancelWrite()
		}
		_ = workflow.Await(dctx, func() bool { return w.stopped || w.done })
		// Done after all: its last write went through as it was cancelled.
		handing = !w.done
		for handing && w.dirty() {
			w.collect(dctx)
		}
	}
	if !handing && len(n.left) == 0 {
		return
	}
	// The IDs go into the history as a side effect: the child's workflow ID
	// must replay as recorded, and a replayer runs the workflow under an ID
	// of its own ("ReplayId").
	var ex workflow.Execution
	if err := workflow.SideEffect(dctx, func(ctx workflow.Context) any { return workflow.GetInfo(ctx).WorkflowExecution }).Get(&ex); err != nil {
		info := workflow.GetInfo(ctx)
		ex = info.WorkflowExecution
	}
	wid, rid := ex.ID, ex.RunID
	id := TrailID(wid, rid)
	q := w.queue
	var why []string
	if handing {
		why = append(why, fmt.Sprintf("the audit store did not take this trail within %s of the outcome; the rest (%d events with this one, %d health rounds) is written by workflow %s",
			AuditCloseWait, len(q.Events)+1, len(q.Rounds), id))
	}
	if len(n.left) > 0 {
		var kinds []string
		for _, ev := range n.left {
			kinds = append(kinds, ev.Kind)
		}
		why = append(why, fmt.Sprintf("%d notifications not delivered within %s of the outcome (%s) are sent by workflow %s",
			len(n.left), AuditCloseWait, strings.Join(kinds, ", "), id))
	}
	var batches []audit.Batch
	if w.on {
		// The writer has stopped or is done: the queue is end's alone.
		w.event(workflow.Now(ctx), audit.Event{Kind: api.KindHandoff, To: id, Reason: strings.Join(why, "; ")})
		w.queue.WorkflowID, w.queue.RunID = wid, rid
		batches = w.split()
	}
	logger := workflow.GetLogger(ctx)
	logger.Warn("audit trail handed off", "trail", id, "batches", len(batches), "events", len(q.Events)+1, "rounds", len(q.Rounds), "notifications", len(n.left))

	cctx := workflow.WithChildOptions(dctx, workflow.ChildWorkflowOptions{
		WorkflowID: id,
		// Outlives this run: the target is free while it writes.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		// One trail per run: a second start under the ID fails.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	})
	in := TrailInput{WorkflowID: wid, RunID: rid, Batches: len(batches), NotifyTargets: n.targets, Notices: n.left}
	if len(batches) > 0 {
		in.First = batches[0]
	}
	f := workflow.ExecuteChildWorkflow(cctx, AuditTrailWorkflow, in)
	if err := f.GetChildWorkflowExecution().Get(dctx, nil); err != nil {
		logger.Error("audit trail not handed off; waiting for the store", "trail", id, "error", err)
		w.resume(ctx, batches)
		n.resend(ctx)
		return
	}
	for i := 1; i < len(batches); i++ {
		if err := f.SignalChildWorkflow(dctx, SignalTrailBatch, TrailBatch{Index: i, Batch: batches[i]}).Get(dctx, nil); err != nil {
			logger.Error("audit trail batch not handed off; waiting for the store", "trail", id, "batch", i+1, "error", err)
			w.resume(ctx, batches[i:])
			return
		}
	}
}

// split takes the whole queue as Audit inputs bounded by bytes and rounds,
// in order (whatever version the run's writer follows).
func (w *auditWriter) split() []audit.Batch {
	v := w.bytesV
	w.bytesV = 1
	defer func() { w.bytesV = v }()
	var out []audit.Batch
	for !w.queue.Empty() {
		out = append(out, w.take())
	}
	if len(out) == 0 {
		out = append(out, audit.Batch{WorkflowID: w.queue.WorkflowID, RunID: w.queue.RunID})
	}
	return out
}

// resend sends again the notifications settle left when no trail
// workflow could take them, and waits for them (flush).
func (n *notifier) resend(ctx workflow.Context) {
	left := n.left
	n.left = nil
	for _, ev := range left {
		n.pending++
		f := &flight{ev: ev}
		n.flights = append(n.flights, f)
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		workflow.Go(dctx, func(gctx workflow.Context) {
			defer func() { n.pending-- }()
			err := workflow.ExecuteActivity(workflow.WithActivityOptions(gctx, notifyOptions(ev.Kind)), acts.Notify,
				activities.NotifyInput{Targets: n.targets, Event: ev}).Get(gctx, nil)
			f.done, f.delivered = true, err == nil
		})
	}
	n.flush(ctx)
}

// resume writes batches a hand-off could not pass on with this run's own
// writer, and waits for it as runs before auditHandoffVersion do.
func (w *auditWriter) resume(ctx workflow.Context, batches []audit.Batch) {
	if len(batches) == 0 {
		return
	}
	w.queue = audit.Batch{}
	for _, b := range slices.Backward(batches) {
		w.untake(b)
	}
	w.handing, w.stopped, w.done, w.closing = false, false, false, true
	w.start(ctx, w.dirty, w.collect)
	w.close(ctx)
}
