package workflows

// Notifications: what a rollout and a release tell the spec's receivers,
// sent beside the workflow by the Notify activity (notifier), and how a
// decided run settles those still in flight.

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// notifyVersion: a rollout with notifications sends them. Runs recorded
// before it have none.
const notifyVersion = "notify-20261122"

// startNotify turns notifications on for a rollout whose spec has targets.
func (r *rollout) startNotify(ctx workflow.Context) {
	if len(r.spec.Notifications) == 0 || workflow.GetVersion(ctx, notifyVersion, workflow.DefaultVersion, 1) < 1 {
		return
	}
	r.notifier.targets = r.spec.Notifications
}

// notify sends a rollout event to the spec's targets that want it.
func (r *rollout) notify(ctx workflow.Context, kind, reason string) {
	if len(r.notifier.targets) == 0 {
		return
	}
	st := &r.st
	r.notifier.send(ctx, notify.Event{Kind: kind, Key: st.WorkflowID + "/" + st.RunID + "/" + kind, Subject: "rollout",
		WorkflowID: st.WorkflowID, RunID: st.RunID, Name: st.Service, Environment: r.spec.Environment,
		Strategy: st.Strategy, Platform: st.Platform, ImageFrom: st.ImageFrom, ImageTo: st.ImageTo, Reason: reason})
}

// notifier sends a workflow's notifications with the Notify activity,
// beside the workflow: a failure to notify is logged, never a failure of
// the workflow, which waits for what is in flight before it closes (flush)
// or, from notifyHandoffVersion, hands it to its trail workflow (settle).
type notifier struct {
	targets []spec.Notification
	pending int
	sent    map[string]int
	// flights are the notifications sent by this run, in order; left are
	// those settle cancelled undelivered, for the trail workflow.
	flights []*flight
	left    []notify.Event
}

// flight is one notification being sent.
type flight struct {
	ev        notify.Event
	cancel    workflow.CancelFunc
	done      bool
	cancelled bool
	delivered bool
}

// notifyOptions are the Notify activity's options: bounded retries (8
// attempts, backoff to a minute, about 5 minutes against a dead receiver).
func notifyOptions(kind string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		HeartbeatTimeout:    keepAliveTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute, MaximumAttempts: 8},
		Summary: "notify " + kind,
	}
}

// send notifies the targets that want the event, once per key.
func (n *notifier) send(ctx workflow.Context, ev notify.Event) {
	if !slices.ContainsFunc(n.targets, func(t spec.Notification) bool { return t.Wants(ev.Kind) }) {
		return
	}
	if n.sent == nil {
		n.sent = map[string]int{}
	}
	n.sent[ev.Kind]++
	if c := n.sent[ev.Kind]; c > 1 {
		ev.Key = fmt.Sprintf("%s/%d", ev.Key, c)
	}
	ev.At = workflow.Now(ctx)
	n.pending++
	f := &flight{ev: ev}
	n.flights = append(n.flights, f)
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(dctx, func(gctx workflow.Context) {
		defer func() { n.pending-- }()
		opts := notifyOptions(ev.Kind)
		// settle cancels a notification still in flight and must know
		// whether it was delivered; never sent to the server.
		opts.WaitForCancellation = true
		actx, cancel := workflow.WithCancel(workflow.WithActivityOptions(gctx, opts))
		f.cancel = cancel
		if f.cancelled {
			cancel()
			return // settled before it was sent: the trail workflow sends it
		}
		var res activities.NotifyResult
		err := workflow.ExecuteActivity(actx, acts.Notify, activities.NotifyInput{Targets: n.targets, Event: ev}).Get(gctx, &res)
		f.done, f.delivered = true, err == nil
		cancel()
		if err != nil && f.cancelled {
			return // handed to the trail workflow
		}
		if err != nil || len(res.Failed) > 0 {
			workflow.GetLogger(gctx).Warn("notification not delivered", "event", ev.Kind, "failed", res.Failed, "error", err)
		}
	})
}

// flush waits until every notification is delivered or given up.
func (n *notifier) flush(ctx workflow.Context) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return n.pending == 0 })
}

// notifyHandoffVersion: a decided rollout or release waits at most
// AuditCloseWait for its notifications in flight, then cancels them and
// hands them to its trail workflow (AuditTrail). Runs recorded before it
// wait for them (flush), up to about 5 minutes against a dead receiver.
const notifyHandoffVersion = "notify-handoff-20261203"

// settle ends the notifications of a run whose outcome is decided: it
// waits at most AuditCloseWait for those in flight, then cancels the rest
// and keeps those not delivered (left) for the trail workflow that end
// starts. Runs before notifyHandoffVersion wait (flush).
func (n *notifier) settle(ctx workflow.Context) {
	if workflow.GetVersion(ctx, notifyHandoffVersion, workflow.DefaultVersion, 1) < 1 {
		n.flush(ctx)
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if ok, _ := workflow.AwaitWithTimeout(dctx, AuditCloseWait, func() bool { return n.pending == 0 }); ok {
		return
	}
	for _, f := range n.flights {
		if !f.done {
			f.cancelled = true
			if f.cancel != nil {
				f.cancel()
			}
		}
	}
	_ = workflow.Await(dctx, func() bool { return n.pending == 0 })
	for _, f := range n.flights {
		if f.cancelled && !f.delivered {
			n.left = append(n.left, f.ev)
		}
	}
}

// notify sends a release event.
func (rel *release) notify(ctx workflow.Context, kind, reason string) {
	if rel.version < 1 {
		return
	}
	ev := notify.Event{Kind: kind, Key: rel.st.WorkflowID + "/" + rel.st.RunID + "/" + kind, Subject: "release",
		WorkflowID: rel.st.WorkflowID, RunID: rel.st.RunID, Name: rel.st.Name, Environment: rel.st.Environment, Reason: reason}
	for _, s := range rel.st.Services {
		ev.Services = append(ev.Services, notify.ServiceOutcome{Name: s.Name, State: s.State, Error: s.Error})
	}
	rel.notifier.send(ctx, ev)
}
