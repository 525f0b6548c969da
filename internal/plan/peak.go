package plan

import "github.com/stagecraft/stagecraft/internal/spec"

// PeakExtra is how many instances beyond the current ones s's rollout runs
// at its busiest, never less than 0: what a platform must have room for
// before the rollout starts. The total is the spec's replica count, or the
// current count when the spec keeps it.
//
// The peak is not just the largest stage: platforms converge in the
// stage's order, so between two desired states both are partly up. Under
// surge order the new instances are added before the surplus old ones go,
// so moving from (new a, old b) to (new c, old d) briefly runs
// max(a,c)+max(b,d); stop-first removes first, so the peak is the target's
// own count. A canary of 4 replicas in steps 5/25/50/100 thus peaks at 6
// (4 new beside the 2 old of the 50% step), blue-green at the whole green
// set beside blue, recreate at what it scales up by.
func PeakExtra(s spec.Spec, current int) int {
	current = max(current, 0)
	total := s.Replicas()
	if total == 0 {
		total = current
	}
	p, err := Build(s, total, current)
	if err != nil {
		return 0
	}
	peak := current
	prev := Desired{New: 0, Old: current}
	for _, d := range append(stageStates(p.Stages), p.Final) {
		peak = max(peak, transitionPeak(prev, d))
		prev = d
	}
	return max(0, peak-current)
}

func stageStates(stages []Stage) []Desired {
	out := make([]Desired, len(stages))
	for i, st := range stages {
		out[i] = st.Desired()
	}
	return out
}

// transitionPeak is the most instances that run while converging from one
// desired state to the next.
func transitionPeak(from, to Desired) int {
	if to.Order == StopFirst {
		return max(from.New+from.Old, to.New+to.Old)
	}
	return max(from.New, to.New) + max(from.Old, to.Old)
}
