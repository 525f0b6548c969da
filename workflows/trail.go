package workflows

import (
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/audit"
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

// KindHandoff is the audit event that says the rest of the trail was
// handed to another workflow: To names it, Reason says why and how much.
const KindHandoff = "trail_handed_off"

// TrailID is the ID of the AuditTrail workflow that writes the rest of the
// trail of run runID of workflowID: one per run, and never a target's or
// release's ID (those start with deploy: or release:), so it locks nothing.
func TrailID(workflowID, runID string) string { return "trail:" + workflowID + ":" + runID }

// TrailInput starts an AuditTrail: the run whose trail it writes, the
// number of batches handed over and the first of them. The others follow
// as signals, one batch each, so no payload is larger than one batch
// (maxAuditBatchBytes), however much the outage left.
type TrailInput struct {
	WorkflowID string      `json:"workflowId"`
	RunID      string      `json:"runId"`
	Batches    int         `json:"batches"`
	First      audit.Batch `json:"first"`
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
}

// trailBatchWait bounds how long an AuditTrail waits for a batch its
// parent said it would signal (the parent signals them at once, after the
// trail has started; only a parent that failed mid-hand-off leaves one
// missing).
const trailBatchWait = 24 * time.Hour

// AuditTrail writes the batches a finished run handed over, in order, with
// the Audit activity retried without limit (and, should it ever give up,
// again after a minute), then ends. The store writes idempotently (events
// and rounds once by key, plan and stage rows by upsert), so a batch
// written twice, by a cancelled attempt of the run and by this workflow,
// leaves one copy.
func AuditTrail(ctx workflow.Context, in TrailInput) (TrailResult, error) {
	if in.Batches < 1 {
		return TrailResult{}, temporal.NewNonRetryableApplicationError("an audit trail hand-off has at least one batch", "InvalidTrail", nil)
	}
	got := make([]*audit.Batch, in.Batches)
	first := in.First
	got[0] = &first
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
	var res TrailResult
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

// end closes the writer once the outcome is decided. Runs before
// auditHandoffVersion wait for it (close). Later runs wait at most
// AuditCloseWait; then the write in flight is cancelled (and put back at the
// front of the queue unless it was written after all), the last records are
// collected, an event naming the trail workflow is recorded, and the whole
// queue goes to a new AuditTrail child workflow that outlives this run
// (ParentClosePolicy ABANDON): its first batch as input, the others as
// signals, each at most maxAuditBatchBytes. The run then completes, and
// its target is free.
func (w *auditWriter) end(ctx workflow.Context) {
	if !w.on {
		return
	}
	if workflow.GetVersion(ctx, auditHandoffVersion, workflow.DefaultVersion, 1) < 1 {
		w.close(ctx)
		return
	}
	w.closing = true
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if ok, _ := workflow.AwaitWithTimeout(dctx, AuditCloseWait, func() bool { return w.done }); ok {
		return
	}
	w.handing = true
	if w.writing && w.cancelWrite != nil {
		w.cancelWrite()
	}
	_ = workflow.Await(dctx, func() bool { return w.stopped || w.done })
	if w.done {
		return
	}
	for w.dirty() {
		w.collect(dctx)
	}
	info := workflow.GetInfo(ctx)
	wid, rid := info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	id := TrailID(wid, rid)
	q := w.queue
	w.event(workflow.Now(ctx), audit.Event{Kind: KindHandoff, To: id,
		Reason: fmt.Sprintf("the audit store did not take this trail within %s of the outcome; the rest (%d events with this one, %d health rounds) is written by workflow %s",
			AuditCloseWait, len(q.Events)+1, len(q.Rounds), id)})
	w.queue.WorkflowID, w.queue.RunID = wid, rid
	batches := w.split()
	logger := workflow.GetLogger(ctx)
	logger.Warn("audit trail handed off", "trail", id, "batches", len(batches), "events", len(q.Events)+1, "rounds", len(q.Rounds))

	cctx := workflow.WithChildOptions(dctx, workflow.ChildWorkflowOptions{
		WorkflowID: id,
		// Outlives this run: the target is free while it writes.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		// One trail per run: a second start under the ID fails.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	})
	f := workflow.ExecuteChildWorkflow(cctx, AuditTrailWorkflow, TrailInput{WorkflowID: wid, RunID: rid, Batches: len(batches), First: batches[0]})
	if err := f.GetChildWorkflowExecution().Get(dctx, nil); err != nil {
		logger.Error("audit trail not handed off; waiting for the store", "trail", id, "error", err)
		w.resume(ctx, batches)
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

// resume writes batches a hand-off could not pass on with this run's own
// writer, and waits for it as runs before auditHandoffVersion do.
func (w *auditWriter) resume(ctx workflow.Context, batches []audit.Batch) {
	w.queue = audit.Batch{}
	for _, b := range slices.Backward(batches) {
		w.untake(b)
	}
	w.handing, w.stopped, w.done, w.closing = false, false, false, true
	w.start(ctx, w.dirty, w.collect)
	w.close(ctx)
}
