package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// CapacityReporter is implemented by a platform that can tell whether extra
// instances of a target fit in what it has left (both Kubernetes and
// Docker do). It is apart from Platform because a rollout does not need it.
type CapacityReporter interface {
	Capacity(ctx context.Context, s spec.Spec, extra int) (platform.CapacityReport, error)
}

// prerequisiteProblems lists what stops service name's rollout before it
// starts, beyond Preflight's own checks: its requirements on services
// running outside the release, and the capacity its rollout needs.
func (a *Activities) prerequisiteProblems(ctx context.Context, name string, s spec.Spec, rs []spec.Requirement) ([]string, error) {
	problems, err := a.requirementProblems(ctx, name, rs)
	if err != nil {
		return problems, err
	}
	more, err := a.capacityProblems(ctx, name, s)
	return append(problems, more...), err
}

// requirementProblems checks the requirements of service name on services
// running outside the release: every image the target runs must carry a
// version that satisfies the constraint. A missing target, a refused read,
// nothing running or a version that cannot be told is a problem; a
// transient error is returned. Requirements on the release's own services
// are checked by the release's validation, against the images it rolls out.
func (a *Activities) requirementProblems(ctx context.Context, name string, rs []spec.Requirement) ([]string, error) {
	var problems []string
	for _, r := range rs {
		if r.Platform == nil {
			continue
		}
		s := spec.Spec{Service: r.Service, Platform: *r.Platform}
		problem := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf("service %s: requirement on %s: ", name, s.TargetKey())+fmt.Sprintf(format, args...))
		}
		p, err := a.platform(s)
		if err != nil {
			problem("%v", err)
			continue
		}
		snap, err := p.Snapshot(ctx, s)
		var tnf *platform.TargetNotFoundError
		switch {
		case errors.As(err, &tnf), errors.Is(err, platform.ErrForbidden):
			problem("%v", err)
			continue
		case err != nil:
			return problems, fmt.Errorf("service %s: requirement on %s: %w", name, s.TargetKey(), err)
		}
		if snap.Empty() {
			problem("%s is not running", r.Service)
			continue
		}
		for _, image := range snap.Images() {
			if err := r.Check(image); err != nil {
				problem("%v", err)
			}
		}
	}
	return problems, nil
}

// capacityProblems checks that the platform has room for the instances s's
// rollout runs at its peak beyond the current ones (plan.PeakExtra), where
// the platform can tell. A platform that cannot, a target that is missing
// (Preflight reports it) or a platform that refuses the worker the reads
// (Kubernetes nodes and pods cluster-wide) is no problem: the check is
// skipped, and logged. A transient error is returned.
func (a *Activities) capacityProblems(ctx context.Context, name string, s spec.Spec) ([]string, error) {
	p, err := a.platform(s)
	if err != nil {
		return nil, nil // Preflight reports the missing platform
	}
	cr, ok := p.(CapacityReporter)
	if !ok {
		return nil, nil
	}
	log := a.logger(ctx).With(zap.String("service", name), zap.String("target", s.TargetKey()))
	snap, err := p.Snapshot(ctx, s)
	var tnf *platform.TargetNotFoundError
	switch {
	case errors.As(err, &tnf), errors.Is(err, platform.ErrForbidden):
		return nil, nil // Preflight reports the target
	case err != nil:
		return nil, fmt.Errorf("service %s: capacity: snapshot %s: %w", name, s.TargetKey(), err)
	}
	extra := plan.PeakExtra(s, snap.Count())
	if extra == 0 {
		return nil, nil
	}
	rep, err := cr.Capacity(ctx, s, extra)
	switch {
	case errors.As(err, &tnf):
		return nil, nil
	case errors.Is(err, platform.ErrForbidden):
		log.Warn("capacity not checked: the platform refused the reads it needs", zap.Error(err))
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("service %s: capacity of %s: %w", name, s.TargetKey(), err)
	}
	log.Info("capacity checked", zap.Int("current", snap.Count()), zap.Int("extra", extra),
		zap.Any("need", rep.Need), zap.Any("free", rep.Free), zap.Bool("fits", rep.Fits))
	if rep.Fits {
		return nil, nil
	}
	return []string{fmt.Sprintf("service %s: capacity: the %s rollout of %s runs %d instance(s) beyond the %d running at its peak, needing %s (%s each); free: %s (%s)",
		name, s.Strategy.Type, s.TargetKey(), extra, snap.Count(), quantities(rep.Need), quantities(rep.PerInstance), quantities(rep.Free), rep.Detail)}, nil
}

// quantities writes a capacity map as "cpu 2, memory 1Gi, pods 2".
func quantities(m map[string]string) string {
	var parts []string
	for _, r := range []string{platform.ResourceCPU, platform.ResourceMemory, platform.ResourcePods} {
		if q, ok := m[r]; ok {
			parts = append(parts, r+" "+q)
		}
	}
	if len(parts) == 0 {
		return "nothing declared"
	}
	return strings.Join(parts, ", ")
}
