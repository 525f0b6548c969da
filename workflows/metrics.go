package workflows

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/api"
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
	r.metrics(ctx, labelStage, string(r.plan.KindOf(i)), labelResult, result).
		Timer(MetricStageDuration).Record(rec.CompletedAt.Sub(*rec.StartedAt))
}

// countRollback counts a rollback by what caused it.
func (r *rollout) countRollback(ctx workflow.Context, c cause) {
	r.metrics(ctx, labelCause, string(c)).Counter(MetricRollbacks).Inc(1)
}

// platformLabel bounds the platform label: a spec naming none (rejected)
// is "none".
func platformLabel(p string) string {
	if p == "" {
		return "none"
	}
	return p
}
