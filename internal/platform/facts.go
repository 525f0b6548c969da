package platform

import (
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// The facts below are what the workflows need to know about a platform
// before they call it: they read them here, never from a platform's own
// spec fields, so a workflow is the same whatever runs the target.

// convergeWaits is how many waits one Kubernetes converge can make in turn
// (new pods ready, stable scaled, traffic switched, old removed), each
// bounded by the spec's progress deadline plus a grace.
const convergeWaits = 4

// ConvergeBudget is how long one Converge attempt of s may take: at least
// 10 minutes, and on Kubernetes room for the waits one converge can make
// in turn, so a slow but progressing control plane is waited for, as the
// spec's deadline says, rather than cut off and retried. A dead worker is
// noticed by the heartbeat timeout long before.
func ConvergeBudget(s spec.Spec) time.Duration {
	d := 10 * time.Minute
	if k := s.Platform.Kubernetes; k != nil {
		d = max(d, spec.SatMul(spec.SatAdd(k.ProgressDeadline.D(), time.Minute), convergeWaits))
	}
	return d
}

// TakesReleaseConfig reports whether a release writes configuration for a
// service deployed by s before activating it: a Kubernetes service that
// names a ConfigMap. (A Docker service's configuration is its containers'
// environment, which its rollout snapshots and restores.)
func TakesReleaseConfig(s spec.Spec) bool {
	k := s.Platform.Kubernetes
	return k != nil && k.ConfigMap != ""
}
