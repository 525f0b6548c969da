package kubernetes

import (
	"fmt"
	"sort"
	"strings"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Describe says, in words, what converging the target of s from snap to d
// writes: the Deployments created, scaled, updated or deleted and the
// Service selector changes, as Converge would make them (the same dispatch:
// restore, promote, blue-green, shared). It reads nothing; beside an
// autoscaler the counts are the plan's, which Converge then fits to the
// autoscaler's (docs/KUBERNETES.md).
func (p *Platform) Describe(s spec.Spec, snap platform.Snapshot, d plan.Desired) ([]string, error) {
	k := s.Platform.Kubernetes
	if k == nil {
		return nil, fmt.Errorf("describe %q: spec has no kubernetes platform", s.Service)
	}
	orig, origSvc, err := decodeSnapshot(snap)
	if err != nil {
		return nil, fmt.Errorf("describe %q: %w", s.Service, err)
	}
	ns, name := namespace(k), orig.Name
	dep := func(n string) string { return "Deployment " + ns + "/" + n }
	svc := ""
	if origSvc != nil {
		svc = "Service " + ns + "/" + origSvc.Name
	}
	traffic := d.Traffic
	if traffic == "" {
		traffic = plan.TrafficShared
	}
	var out []string
	switch {
	case d.New == 0:
		out = append(out, fmt.Sprintf("%s back to its snapshot: %s, %d replica(s)", dep(name), snap.Kubernetes.Image, snap.Kubernetes.Replicas))
		if svc != "" {
			out = append(out, svc+" selector back to its snapshot's ("+selector(origSvc.Spec.Selector)+")")
		}
		out = append(out, fmt.Sprintf("%s and %s deleted if present", dep(canaryName(name)), dep(greenName(name))))
	case d.Old == 0:
		if d.Order == plan.StopFirst {
			out = append(out, fmt.Sprintf("%s scaled to 0 first (stop-first)", dep(name)))
		}
		if d.Order != plan.StopFirst {
			out = append(out, fmt.Sprintf("where %s runs (a canary or rolling rollout) and %s is at rest with no autoscaler: the canary grows to %d replica(s) in steps of %s's maxSurge, then %s takes its ReplicaSet over as its own, so each new pod starts once",
				dep(canaryName(name)), dep(name), d.New, dep(name), dep(name)))
		}
		out = append(out, fmt.Sprintf("%s updated to %s, %d replica(s): your own Deployment, nothing of the rollout's left", dep(name), s.Image, d.New))
		if svc != "" {
			out = append(out, svc+" selector back to its own ("+selector(origSvc.Spec.Selector)+")")
		}
		out = append(out, fmt.Sprintf("%s and %s deleted", dep(canaryName(name)), dep(greenName(name))))
	case traffic == plan.TrafficOld || traffic == plan.TrafficNew:
		out = append(out, fmt.Sprintf("%s with %d replica(s) of %s (created or scaled)", dep(greenName(name)), d.New, s.Image),
			fmt.Sprintf("%s scaled to %d", dep(name), d.Old))
		switch {
		case svc == "":
		case traffic == plan.TrafficNew:
			out = append(out, svc+" selector switched to green ("+selector(map[string]string{platform.LabelService: s.Service, platform.LabelRollout: "<rollout>", LabelColor: colorGreen})+")")
		default:
			out = append(out, svc+" keeps selecting blue ("+selector(origSvc.Spec.Selector)+")")
		}
	default:
		out = append(out, fmt.Sprintf("%s with %d replica(s) of %s (created or scaled)", dep(canaryName(name)), d.New, s.Image),
			fmt.Sprintf("%s scaled to %d", dep(name), d.Old))
		if svc != "" {
			out = append(out, svc+" unchanged: it selects both")
		}
	}
	return out, nil
}

// selector writes a label selector as k=v,k=v in key order.
func selector(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
