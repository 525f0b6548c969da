// Package plan turns a validated spec and the size of what runs now into an
// ordered list of stages, each a desired state. It is pure and deterministic,
// so workflow code calls it directly.
package plan

import (
	"fmt"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// Traffic says which instances receive traffic in a stage.
type Traffic string

const (
	// TrafficShared: every instance, old and new, serves; the split follows
	// instance counts.
	TrafficShared Traffic = "shared"
	// TrafficOld: only old instances serve; new ones are up but unexposed.
	TrafficOld Traffic = "old"
	// TrafficNew: only new instances serve.
	TrafficNew Traffic = "new"
)

// Order says how a platform converges when it both adds and removes.
type Order string

const (
	// Surge starts the new instances before removing old ones.
	Surge Order = "surge"
	// StopFirst removes old instances before starting new ones.
	StopFirst Order = "stop-first"
)

// Stage is one desired state of the target, then a bake under health checks.
type Stage struct {
	Index   int           `json:"index"`
	Name    string        `json:"name"`
	Percent int           `json:"percent,omitempty"`
	New     int           `json:"new"`
	Old     int           `json:"old"`
	Traffic Traffic       `json:"traffic"`
	Order   Order         `json:"order"`
	Bake    time.Duration `json:"bake"`
}

// Desired returns the stage's desired state.
func (s Stage) Desired() Desired {
	return Desired{New: s.New, Old: s.Old, Traffic: s.Traffic, Order: s.Order}
}

// Desired is what a platform converges a target to: how many instances of the
// new version, how many of the old (snapshot) ones, and who serves traffic.
type Desired struct {
	New     int     `json:"new"`
	Old     int     `json:"old"`
	Traffic Traffic `json:"traffic"`
	Order   Order   `json:"order"`
}

// Plan is the ordered stages of one rollout and the state left after success.
type Plan struct {
	Strategy string  `json:"strategy"`
	Total    int     `json:"total"`
	Current  int     `json:"current"`
	Stages   []Stage `json:"stages"`
	// Final is converged to after the last stage passed (for example, blue
	// removed after a blue-green switch).
	Final Desired `json:"final"`
}

// Kind is what a stage does, whatever its steps or batch count: a
// handful of values, fit for a metric label.
type Kind string

// Stage kinds.
const (
	KindCanary   Kind = "canary"   // a canary step
	KindBatch    Kind = "batch"    // a rolling batch
	KindGreenUp  Kind = "green_up" // blue-green: green beside blue, no traffic
	KindSwitch   Kind = "switch"   // blue-green: all traffic to green
	KindRecreate Kind = "recreate" // recreate: stop all, start all
	KindOther    Kind = "other"    // a stage of a strategy this planner does not know
)

// KindOf is the kind of the plan's stage i, as Build laid it out: the
// strategy and the stage's place in it say it, so it needs no field of its
// own (the stage's JSON, recorded in every rollout's history, stays as it
// is).
func (p Plan) KindOf(i int) Kind {
	switch p.Strategy {
	case spec.Canary:
		return KindCanary
	case spec.Rolling:
		return KindBatch
	case spec.BlueGreen:
		if i == 0 {
			return KindGreenUp
		}
		return KindSwitch
	case spec.Recreate:
		return KindRecreate
	}
	return KindOther
}

// Build plans a rollout of s to total instances, replacing current running
// instances. s must be valid with defaults applied.
func Build(s spec.Spec, total, current int) (Plan, error) {
	if total < 1 {
		return Plan{}, fmt.Errorf("plan %s: total instances must be at least 1, got %d", s.Service, total)
	}
	if current < 0 {
		current = 0
	}
	p := Plan{Strategy: s.Strategy.Type, Total: total, Current: current,
		Final: Desired{New: total, Traffic: TrafficNew, Order: Surge}}
	bake := s.Strategy.Bake.D()
	switch s.Strategy.Type {
	case spec.Canary:
		for i, pct := range s.Strategy.Steps {
			n := CanaryCount(total, pct)
			p.Stages = append(p.Stages, Stage{Index: i, Name: fmt.Sprintf("canary %d%%", pct), Percent: pct,
				New: n, Old: oldBeside(total, current, n), Traffic: TrafficShared, Order: Surge, Bake: bake})
		}
	case spec.Rolling:
		batches := RollingBatches(total, s.Strategy.BatchSize)
		for i, n := range batches {
			p.Stages = append(p.Stages, Stage{Index: i, Name: fmt.Sprintf("batch %d/%d", i+1, len(batches)),
				Percent: n * 100 / total, New: n, Old: oldBeside(total, current, n), Traffic: TrafficShared, Order: Surge, Bake: bake})
		}
	case spec.BlueGreen:
		p.Stages = []Stage{
			{Index: 0, Name: "green up", Percent: 0, New: total, Old: current, Traffic: TrafficOld, Order: Surge,
				Bake: s.Strategy.BakeBeforeSwitch.D()},
			{Index: 1, Name: "switch", Percent: 100, New: total, Old: current, Traffic: TrafficNew, Order: Surge,
				Bake: s.Strategy.BakeAfterSwitch.D()},
		}
	case spec.Recreate:
		p.Stages = []Stage{{Index: 0, Name: "recreate", Percent: 100, New: total, Old: 0, Traffic: TrafficNew,
			Order: StopFirst, Bake: bake}}
		p.Final.Order = StopFirst
	default:
		return Plan{}, fmt.Errorf("plan %s: unknown strategy %q", s.Service, s.Strategy.Type)
	}
	return p, nil
}

// oldBeside is how many old instances serve beside n new ones: as many as
// the target still needs to reach total, never more than run now. Counting
// from total rather than current keeps old instances serving through the
// early stages of a scale-up, so a 25% step does not remove the old version.
func oldBeside(total, current, n int) int {
	return max(0, min(current, total-n))
}

// CanaryCount is the number of new instances for a canary percentage: rounded
// up, never 0 for a non-zero step, never more than total.
func CanaryCount(total, percent int) int {
	if percent <= 0 {
		return 0
	}
	n := (total*percent + 99) / 100
	return min(max(n, 1), total)
}

// RollingBatches returns the cumulative number of new instances after each
// batch of size batch.
func RollingBatches(total, batch int) []int {
	if batch < 1 {
		batch = 1
	}
	var out []int
	for n := batch; ; n += batch {
		if n >= total {
			return append(out, total)
		}
		out = append(out, n)
	}
}
