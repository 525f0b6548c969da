package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// releaseVersion: the release prepares its services' configuration
// (Kubernetes ConfigMaps) and restores it on rollback, writes its own audit
// trail, sends notifications, and takes its controls as updates too. Runs
// recorded before it do none of these.
const releaseVersion = "release-phases-20261122"

// ReleasePreparing is the phase that writes the services' configuration.
const ReleasePreparing = "preparing"

// commitVersion: just before it commits, the release looks again for an
// abort or a service that failed while it validated (a held rollout that
// timed out or was aborted directly), and rolls back instead; once it
// commits, it refuses an abort with its reason instead of accepting one it
// can no longer act on. Runs recorded before it commit regardless.
const commitVersion = "release-commit-20261203"

// committingRefusal is why an abort is refused once the release commits.
const committingRefusal = "the release is committing; its services are finalizing"

// commitBlocked says why the release must not commit now, or "": it was
// aborted, or a service failed after passing its stages.
func (rel *release) commitBlocked() string {
	if rel.aborted {
		return rel.reason
	}
	for _, s := range rel.st.Services {
		if s.State == api.ServiceFailed {
			return fmt.Sprintf("service %s: %s", s.Name, s.Error)
		}
	}
	return ""
}

// configItems lists the services whose configuration the release writes
// before activating them (platform.TakesReleaseConfig).
func (rel *release) configItems() []activities.ConfigItem {
	var items []activities.ConfigItem
	for _, s := range rel.spec.Services {
		if platform.TakesReleaseConfig(s.Deploy) {
			if data := rel.spec.ServiceConfig(s.Name); len(data) > 0 {
				items = append(items, activities.ConfigItem{Name: s.Name, Spec: s.Deploy, Data: data})
			}
		}
	}
	return items
}

// prepare writes the services' configuration, returning why it failed, or
// "". What the pods use now is left as it is, so the snapshot of the
// previous values is the ConfigMaps they refer to (Status.Config).
func (rel *release) prepare(ctx workflow.Context) string {
	items := rel.configItems()
	if len(items) == 0 {
		return ""
	}
	rel.st.Phase = ReleasePreparing
	var res []platform.ConfigResult
	err := workflow.ExecuteActivity(retried(ctx, "prepare configuration", 2*time.Minute, 10*time.Second, 5), acts.PrepareConfig,
		activities.ConfigInput{Owner: rel.st.WorkflowID, Items: items}).Get(ctx, &res)
	rel.st.Config = res
	if err != nil {
		return "preparation: " + errorMessage(err)
	}
	return ""
}

// restoreConfig removes the configuration the release wrote and reports
// whether every piece is gone or was not the release's to remove. One that
// a Deployment still refers to (its service could not be rolled back) stays.
func (rel *release) restoreConfig(ctx workflow.Context) bool {
	items := rel.configItems()
	if len(items) == 0 {
		return true
	}
	var res []platform.ConfigResult
	err := workflow.ExecuteActivity(retried(ctx, "restore configuration", 2*time.Minute, 30*time.Second, 10), acts.RestoreConfig,
		activities.ConfigInput{Owner: rel.st.WorkflowID, Items: items}).Get(ctx, &res)
	if err != nil {
		rel.st.ConfigError = "restore configuration: " + errorMessage(err)
		return false
	}
	ok := true
	for _, r := range res {
		i := slices.IndexFunc(rel.st.Config, func(c platform.ConfigResult) bool { return c.Service == r.Service })
		if i < 0 {
			rel.st.Config = append(rel.st.Config, r)
			i = len(rel.st.Config) - 1
		}
		rel.st.Config[i].Removed, rel.st.Config[i].InUse = r.Removed, r.InUse
		if len(r.InUse) > 0 {
			ok = false
			if s := rel.service(r.Service); s != nil && s.State != api.ServiceManual {
				s.State, s.Error = api.ServiceManual, fmt.Sprintf("configmap %s is still used by %v", r.Name, r.InUse)
			}
		}
	}
	return ok
}

// releaseAudit turns the release's state into audit records: the release
// as a plan, its stages, and events for its phases, its services' states,
// its control actions and its outcome.
type releaseAudit struct {
	auditWriter
	phase    string
	outcome  api.Outcome
	controls int
	services []string
	stages   []string
}

func (rel *release) auditDirty() bool {
	a := &rel.auditor
	if rel.st.Phase != a.phase || rel.st.Outcome != a.outcome || len(rel.st.Controls) != a.controls {
		return true
	}
	for i, s := range rel.st.Services {
		if i >= len(a.services) || s.State != a.services[i] {
			return true
		}
	}
	return false
}

func (rel *release) auditCollect(ctx workflow.Context) {
	a, st := &rel.auditor, &rel.st
	a.queue.WorkflowID, a.queue.RunID = st.WorkflowID, st.RunID
	now := workflow.Now(ctx)
	for _, c := range st.Controls[a.controls:] {
		a.event(now, audit.Event{Kind: audit.KindControl, At: c.At, Action: c.Action, Via: c.Via, By: c.By,
			Reason: c.Reason, Accepted: c.Accepted, Error: c.Error})
	}
	a.controls = len(st.Controls)
	if st.Phase != a.phase {
		a.event(now, audit.Event{Kind: audit.KindPhase, From: a.phase, To: st.Phase})
		a.phase = st.Phase
	}
	for i, s := range st.Services {
		prev := ""
		if i < len(a.services) {
			prev = a.services[i]
		} else {
			a.services = append(a.services, "")
		}
		if s.State != prev {
			stage := s.Stage
			a.event(now, audit.Event{Kind: audit.KindService, Stage: &stage, Action: s.Name, From: prev, To: s.State, Error: s.Error})
			a.services[i] = s.State
		}
	}
	for i, stage := range rel.spec.Stages {
		state := rel.stageState(stage)
		if i >= len(a.stages) {
			a.stages = append(a.stages, "")
		}
		if state == a.stages[i] {
			continue
		}
		idx := i
		a.event(now, audit.Event{Kind: audit.KindStage, Stage: &idx, Action: stage.Name, From: a.stages[i], To: state})
		a.stages[i] = state
		done := 0
		for _, n := range stage.Services {
			if s := rel.service(n); s.State == api.ServiceReadyState || s.State == api.ServiceSucceeded {
				done++
			}
		}
		a.stage(audit.Stage{Index: i, Name: stage.Name, Strategy: stage.Mode, TargetNew: len(stage.Services), TargetTotal: len(stage.Services),
			Status: state, InstancesUpdated: done, InstancesTotal: len(stage.Services)})
	}
	if st.Outcome != a.outcome {
		a.event(now, audit.Event{Kind: audit.KindOutcome, To: string(st.Outcome), Reason: st.Error})
		a.outcome = st.Outcome
	}
	plan := audit.Plan{WorkflowID: st.WorkflowID, RunID: st.RunID, Service: st.Name, Platform: "release", Strategy: "release",
		Target: st.WorkflowID, Status: st.Phase, Error: st.Error, Stages: len(rel.spec.Stages),
		CreatedAt: st.StartedAt, StartedAt: &st.StartedAt, CompletedAt: st.CompletedAt, StartedBy: st.StartedBy}
	if st.Outcome != "" {
		plan.Status = string(st.Outcome)
		plan.Success = st.Outcome == api.OutcomeSucceeded
		plan.RolledBack = st.Outcome == api.OutcomeRolledBack || st.Outcome == api.OutcomeRollbackFailed
	}
	a.queue.Plan = &plan
}

// stageState summarizes a release stage from its services' states.
func (rel *release) stageState(stage spec.ReleaseStage) string {
	count := map[string]int{}
	for _, n := range stage.Services {
		count[rel.service(n).State]++
	}
	all := func(state string) bool { return count[state] == len(stage.Services) }
	switch {
	case count[api.ServiceManual] > 0:
		return api.ServiceManual
	case count[api.ServiceFailed] > 0:
		return api.ServiceFailed
	case count[api.ServiceRunning] > 0:
		return api.ServiceRunning
	case count[api.ServiceRolledBack] > 0:
		return api.ServiceRolledBack
	case all(api.ServiceSucceeded):
		return api.ServiceSucceeded
	case all(api.ServiceReadyState):
		return "passed"
	case all(api.ServiceNotStarted):
		return api.ServiceNotStarted
	case all(api.ServicePending):
		return api.ServicePending
	}
	return api.ServiceRunning
}
