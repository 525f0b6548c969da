package workflows

import (
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/client/api"
)

// Stagecraft's own metrics, as workflow code emits them. The worker's
// Prometheus handler adds "_total" to counters and "_seconds" to timers
// (a histogram), so MetricRolloutsStarted is scraped as
// stagecraft_rollouts_started_total.
//
// They go through workflow.GetMetricsHandler, which drops whatever a worker
// emits while it replays history: each is counted once however often a run
// is replayed, and emitting one adds no command to the history. Labels are
// bounded: strategy (4), platform (docker, kubernetes), outcome, stage
// kind, rollback cause; never the service or the stage's name.
const (
	// MetricRolloutsStarted counts rollouts started (not the runs a
	// rollout continues as new into). Labels: strategy, platform.
	MetricRolloutsStarted = "stagecraft_rollouts_started"
	// MetricRolloutsFinished counts rollouts finished. Labels: strategy,
	// platform, outcome.
	MetricRolloutsFinished = "stagecraft_rollouts_finished"
	// MetricRolloutDuration times rollouts from start to finish. Labels:
	// strategy, platform, outcome.
	MetricRolloutDuration = "stagecraft_rollout_duration"
	// MetricStageDuration times each stage, converge and bake. Labels:
	// strategy, platform, stage (kind), result (completed, failed).
	MetricStageDuration = "stagecraft_stage_duration"
	// MetricRollbacks counts rollbacks started. Labels: strategy,
	// platform, cause (health, abort, timeout, approval_timeout,
	// cancelled, error).
	MetricRollbacks = "stagecraft_rollbacks"
)

// Label names.
const (
	labelStrategy = "strategy"
	labelPlatform = "platform"
	labelOutcome  = "outcome"
	labelStage    = "stage"
	labelResult   = "result"
	labelCause    = "cause"
)

// metrics is the workflow's metrics handler with the rollout's labels.
func (r *rollout) metrics(ctx workflow.Context, more ...string) client.MetricsHandler {
	tags := map[string]string{labelStrategy: r.st.Strategy, labelPlatform: platformLabel(r.spec.PlatformName())}
	for i := 0; i+1 < len(more); i += 2 {
		tags[more[i]] = more[i+1]
	}
	return workflow.GetMetricsHandler(ctx).WithTags(tags)
}

// countStarted counts a new rollout; a run it continued as new into is
// the same rollout.
func (r *rollout) countStarted(ctx workflow.Context) {
	if workflow.GetInfo(ctx).ContinuedExecutionRunID != "" {
		return
	}
	r.metrics(ctx).Counter(MetricRolloutsStarted).Inc(1)
}

// countFinished counts the rollout's outcome and times the whole rollout.
func (r *rollout) countFinished(ctx workflow.Context, o api.Outcome) {
	h := r.metrics(ctx, labelOutcome, string(o))
	h.Counter(MetricRolloutsFinished).Inc(1)
	if r.st.CompletedAt != nil && !r.st.StartedAt.IsZero() {
		h.Timer(MetricRolloutDuration).Record(r.st.CompletedAt.Sub(r.st.StartedAt))
	}
}

// timeStage records how long stage i took, from its converge to the end
// of its bake (or its failure).
func (r *rollout) timeStage(ctx workflow.Context, i int, err error) {
	rec := r.st.Stages[i]
	if rec.StartedAt == nil || rec.CompletedAt == nil {
		return
	}
	result := "completed"
	if err != nil {
		result = "failed"
	}
	r.metrics(ctx, labelStage, stageKind(rec.Name), labelResult, result).
		Timer(MetricStageDuration).Record(rec.CompletedAt.Sub(*rec.StartedAt))
}

// countRollback counts a rollback by what caused it.
func (r *rollout) countRollback(ctx workflow.Context, reason string) {
	r.metrics(ctx, labelCause, r.rollbackCause(reason)).Counter(MetricRollbacks).Inc(1)
}

// rollbackCause sorts a rollback's reason into a bounded label.
func (r *rollout) rollbackCause(reason string) string {
	switch {
	case r.aborted:
		// The last abort says who asked: an operator or the rollout timeout.
		for i := len(r.st.Controls) - 1; i >= 0; i-- {
			if c := r.st.Controls[i]; c.Action == api.SignalAbort && c.Via == "timeout" {
				return "timeout"
			} else if c.Action == api.SignalAbort {
				break
			}
		}
		return "abort"
	case strings.HasPrefix(reason, "health "):
		return "health"
	case strings.HasPrefix(reason, "approval of "):
		return "approval_timeout"
	case reason == "workflow cancelled":
		return "cancelled"
	}
	return "error"
}

// stageKind names the kind of a planned stage ("canary 25%" is a canary
// stage), so stage labels stay few whatever the steps.
func stageKind(name string) string {
	switch {
	case strings.HasPrefix(name, "canary "):
		return "canary"
	case strings.HasPrefix(name, "batch "):
		return "batch"
	case name == "green up":
		return "green_up"
	case name == "switch", name == "recreate":
		return name
	}
	return "other"
}

// platformLabel bounds the platform label: a spec naming none (rejected)
// is "none".
func platformLabel(p string) string {
	if p == "" {
		return "none"
	}
	return p
}
