package workflows

import (
	"errors"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// PreviewRollout plans a rollout of a spec without changing anything: it
// validates the spec as the rollout would, reads the live target through
// the Preview activity (the worker's credentials and policies) and plans
// the stages from what runs, exactly as the rollout's own first steps do
// (execute), so the stages it shows are the stages a rollout started now
// would run.
func PreviewRollout(ctx workflow.Context, in api.RolloutInput) (api.Preview, error) {
	s := in.WithDefaults()
	strategy := s.Strategy.Type
	pv := api.Preview{WorkflowID: s.WorkflowID(), Target: s.TargetKey(), Strategy: strategy, Image: s.Image}
	name, err := api.WorkflowFor(strategy)
	if err != nil {
		pv.Checks = append(pv.Checks, api.PreviewCheck{Name: "spec", Verdict: api.CheckFailed, Message: err.Error()})
		return pv, nil
	}
	pv.Workflow = name
	if problems := checkSpec(s, strategy, spec.RulesStorable); len(problems) > 0 {
		pv.Checks = append(pv.Checks, api.PreviewCheck{Name: "spec", Verdict: api.CheckFailed, Message: strings.Join(problems, "; ")})
		return pv, nil
	}
	var res activities.PreviewResult
	if err := workflow.ExecuteActivity(prepareOptions(ctx), acts.Preview, activities.PreviewInput{Spec: s}).Get(ctx, &res); err != nil {
		pv.Checks = append(pv.Checks, api.PreviewCheck{Name: "target", Verdict: api.CheckFailed, Message: errorMessage(err)})
		return pv, nil
	}
	for _, c := range res.Checks {
		pv.Checks = append(pv.Checks, api.PreviewCheck(c))
	}
	pv.Ready = true
	for _, c := range pv.Checks {
		if c.Verdict == api.CheckFailed {
			pv.Ready = false
		}
	}
	if res.Snapshot == nil {
		return pv, nil
	}
	snap := *res.Snapshot
	pv.Snapshot = api.PreviewSnapshot{Count: snap.Count(), Images: snap.Images(), FreshInstall: snap.Empty()}
	p, err := planFrom(s, snap)
	if err != nil {
		pv.Ready = false
		pv.Checks = append(pv.Checks, api.PreviewCheck{Name: "plan", Verdict: api.CheckFailed, Message: err.Error()})
		return pv, nil
	}
	for i, st := range p.Stages {
		gate := s.Approval.Gates(st.Percent)
		if gate {
			pv.Gates++
		}
		pv.MinDuration += st.Bake
		pv.Stages = append(pv.Stages, api.PreviewStage{Stage: st, Kind: p.KindOf(i), Gate: gate})
	}
	pv.MinDuration += s.Strategy.KeepBlueFor.D()
	pv.Final = &p.Final
	describePlan(ctx, &pv, s, snap, p)
	return pv, nil
}

// describePlan asks the platform what each stage, the final state and a
// rollback would write (the Describe activity); a platform that cannot
// say, or an error, leaves them out.
func describePlan(ctx workflow.Context, pv *api.Preview, s spec.Spec, snap platform.Snapshot, p plan.Plan) {
	restore := plan.Desired{New: 0, Old: snap.Count(), Traffic: plan.TrafficOld, Order: plan.Surge}
	var want []plan.Desired
	for _, st := range p.Stages {
		want = append(want, st.Desired())
	}
	want = append(want, p.Final, restore)
	var out [][]string
	in := activities.DescribeInput{Spec: s, Snapshot: snap, Desired: want}
	if err := workflow.ExecuteActivity(prepareOptions(ctx), acts.Describe, in).Get(ctx, &out); err != nil || len(out) != len(want) {
		return
	}
	for i := range pv.Stages {
		pv.Stages[i].Changes = out[i]
	}
	pv.FinalChanges, pv.RollbackChanges = out[len(p.Stages)], out[len(p.Stages)+1]
}

// PreviewRelease plans a release without changing anything: it validates
// the release as the release does, then plans every service's rollout
// (PreviewRollout, as child workflows, all at once) and lays them out in
// the release's waves.
func PreviewRelease(ctx workflow.Context, in api.ReleaseInput) (api.ReleasePreview, error) {
	r := in.Release.WithDefaults()
	pv := api.ReleasePreview{WorkflowID: r.WorkflowID(), Name: r.Name, Environment: r.Environment}
	if err := withReserved(r.ValidateUnder(spec.RulesStorable), in.Reserved()); err != nil {
		var ve *spec.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				pv.Problems = append(pv.Problems, p.Error())
			}
		} else {
			pv.Problems = []string{err.Error()}
		}
		return pv, nil
	}
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	futures := map[string]workflow.ChildWorkflowFuture{}
	for _, svc := range r.Services {
		d := svc.Deploy
		if d.Environment == "" {
			d.Environment = r.Environment
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id + "/" + svc.Name, TaskQueue: api.TaskQueue})
		futures[svc.Name] = workflow.ExecuteChildWorkflow(cctx, api.PreviewWorkflow, api.RolloutInput{Spec: d, Release: pv.WorkflowID})
	}
	var pre activities.PreflightResult
	look := preflightInput(r)
	look.LookOnly = true // a plan pulls nothing
	if err := workflow.ExecuteActivity(preflightOptions(ctx), acts.Preflight, look).Get(ctx, &pre); err != nil {
		pv.Prerequisites = []string{"prerequisites: " + errorMessage(err)}
	} else {
		pv.Prerequisites = pre.Problems
	}
	pv.Ready = len(pv.Prerequisites) == 0
	for _, stage := range r.Stages {
		wave := api.PreviewWave{Name: stage.Name, Mode: stage.Mode}
		for _, name := range stage.Services {
			svc, _ := r.Service(name)
			var p api.Preview
			if err := futures[name].Get(ctx, &p); err != nil {
				p.Checks = append(p.Checks, api.PreviewCheck{Name: "plan", Verdict: api.CheckFailed, Message: errorMessage(err)})
			}
			pv.Ready = pv.Ready && p.Ready
			wave.Services = append(wave.Services, api.ServicePreview{Name: name, DependsOn: svc.DependsOn, Preview: p})
		}
		pv.Waves = append(pv.Waves, wave)
	}
	return pv, nil
}
