package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// PreviewInput asks what a rollout of Spec would start from.
type PreviewInput struct {
	Spec spec.Spec `json:"spec"`
}

// Preview check verdicts (the same words as api's).
const (
	checkOK      = "ok"
	checkWarning = "warning"
	checkFailed  = "failed"
)

// PreviewCheck is one prerequisite and what was found.
type PreviewCheck struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"`
	Message string `json:"message,omitempty"`
}

// PreviewResult is the target as it runs now (nil when it could not be
// read) and every prerequisite's verdict.
type PreviewResult struct {
	Snapshot *platform.Snapshot `json:"snapshot,omitempty"`
	Checks   []PreviewCheck     `json:"checks"`
}

// Preview runs the checks Prepare runs, in the same order and under the
// same worker policies, but changes nothing (it claims no lease) and does
// not stop at the first problem: each check reports its verdict. It adds
// what a single rollout does not check by itself: whether the instances
// its peak adds fit in what the platform has left.
func (a *Activities) Preview(ctx context.Context, in PreviewInput) (PreviewResult, error) {
	_, stop := keepAlive(ctx)
	defer stop()
	var res PreviewResult
	add := func(name, verdict, format string, args ...any) {
		res.Checks = append(res.Checks, PreviewCheck{Name: name, Verdict: verdict, Message: fmt.Sprintf(format, args...)})
	}
	s := in.Spec
	p, err := a.platform(s)
	if err != nil {
		add("platform", checkFailed, "%v", err)
		return res, nil
	}
	if err := s.Validate(); err != nil {
		add("spec", checkFailed, "%v", err)
	} else {
		add("spec", checkOK, "valid")
	}
	if err := s.Health.CommandNotAllowed(a.Checker.Allowlist()); err != nil {
		add("commands", checkFailed, "%v", err)
	}
	if err := a.checkHold(ctx, s); err != nil {
		add("hold", checkFailed, "%s", errorText(err))
	} else {
		add("hold", checkOK, "not held")
	}
	a.previewImage(ctx, p, s.Image, add)
	snap, err := p.Snapshot(ctx, s)
	if err != nil {
		add("snapshot", checkFailed, "snapshot %s: %v", s.TargetKey(), err)
		return res, nil
	}
	res.Snapshot = &snap
	if snap.Empty() {
		add("snapshot", checkOK, "nothing runs: a fresh install")
	} else {
		add("snapshot", checkOK, "%d instance(s) of %s", snap.Count(), strings.Join(snap.Images(), ", "))
	}
	a.previewCapacity(ctx, p, s, snap, add)
	return res, nil
}

// previewImage says whether the image can be had. A platform that holds
// images (ImageLooker) is looked at, and its registry asked for the
// image's manifest: a plan pulls nothing (Prepare pulls an absent image
// when the rollout starts).
func (a *Activities) previewImage(ctx context.Context, p Platform, image string, add func(name, verdict, format string, args ...any)) {
	if l, ok := p.(ImageLooker); ok {
		var outage *platform.RegistryUnavailableError
		switch local, err := l.FindImage(ctx, image); {
		case errors.As(err, &outage):
			// Not a refusal: a rollout started now retries the pull.
			add("image", checkWarning, "%v; a rollout started now retries the pull, and fails only if the outage outlasts its retries", err)
		case err != nil:
			add("image", checkFailed, "%v", err)
		case local:
			add("image", checkOK, "%s is present", image)
		default:
			add("image", checkWarning, "%s is not on the engine; its registry has it: the rollout pulls it when it starts (a plan pulls nothing)", image)
		}
		return
	}
	if err := p.CheckImage(ctx, image); err != nil {
		add("image", checkFailed, "%v", err)
	} else {
		add("image", checkOK, "%s is present", image)
	}
}

// previewCapacity says whether the instances the rollout's peak adds fit.
func (a *Activities) previewCapacity(ctx context.Context, p Platform, s spec.Spec, snap platform.Snapshot, add func(string, string, string, ...any)) {
	cr, ok := p.(CapacityReporter)
	extra := plan.PeakExtra(s, snap.Count())
	if !ok || extra == 0 {
		return
	}
	rep, err := cr.Capacity(ctx, s, extra)
	switch {
	case err != nil:
		add("capacity", checkWarning, "not checked: %v", err)
	case rep.Fits:
		add("capacity", checkOK, "%d more instance(s) at the peak fit (free: %s)", extra, quantities(rep.Free))
	default:
		add("capacity", checkWarning, "%d more instance(s) at the peak need %s; free: %s (%s)", extra, quantities(rep.Need), quantities(rep.Free), rep.Detail)
	}
}

// errorText is an activity error's message without Temporal's wrapping.
func errorText(err error) string {
	if app, ok := err.(interface{ Message() string }); ok {
		return app.Message()
	}
	return err.Error()
}

// Describer is a platform that can say in words what a converge would
// write (starter plan): objects created, scaled, updated, deleted, and
// traffic moved. It reads nothing.
type Describer interface {
	Describe(s spec.Spec, snap platform.Snapshot, d plan.Desired) ([]string, error)
}

// DescribeInput asks what converging from Snapshot to each of Desired
// would write.
type DescribeInput struct {
	Spec     spec.Spec         `json:"spec"`
	Snapshot platform.Snapshot `json:"snapshot"`
	Desired  []plan.Desired    `json:"desired"`
}

// Describe says, for each desired state in turn, what a converge to it
// would write; nil for a platform that cannot say.
func (a *Activities) Describe(ctx context.Context, in DescribeInput) ([][]string, error) {
	p, err := a.platform(in.Spec)
	if err != nil {
		return nil, err
	}
	d, ok := p.(Describer)
	if !ok {
		return nil, nil
	}
	out := make([][]string, len(in.Desired))
	for i, want := range in.Desired {
		if out[i], err = d.Describe(in.Spec, in.Snapshot, want); err != nil {
			return nil, classify(err)
		}
	}
	return out, nil
}
