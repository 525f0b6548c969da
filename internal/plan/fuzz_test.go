package plan_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

var strategies = []string{spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate}

// FuzzBuild plans every valid spec it is given (any strategy, steps, batch
// size, replica count) over any total and current count within a platform's
// bounds, and holds the plan to what the rollout workflows and platforms
// rely on. Seeds: below and under testdata/fuzz/FuzzBuild. Run it with
//
//	go test -run '^$' -fuzz '^FuzzBuild$' -fuzztime 30s ./internal/plan
func FuzzBuild(f *testing.F) {
	// strategy, steps, end at 100, batch, total, current, kubernetes.
	f.Add(uint8(0), []byte{5, 25, 50, 100}, false, 0, 20, 20, false)
	f.Add(uint8(0), []byte{}, false, 0, 3, 3, false)
	f.Add(uint8(0), []byte{1, 2, 3}, true, 0, 1000, 7, true)
	f.Add(uint8(0), []byte{99}, true, 0, 1, 0, false)
	f.Add(uint8(1), []byte{}, false, 0, 4, 2, true)
	f.Add(uint8(2), []byte{}, false, 3, 10, 10, false)
	f.Add(uint8(2), []byte{}, false, 1000, 1000, 0, false)
	f.Add(uint8(2), []byte{}, false, 7, 5, 12, true)
	f.Add(uint8(3), []byte{}, false, 0, 2, 5, false)
	f.Add(uint8(3), []byte{}, false, 0, 0, 0, true)
	f.Fuzz(func(t *testing.T, strategy uint8, steps []byte, endAt100 bool, batch, total, current int, kubernetes bool) {
		s := spec.Spec{Service: "hello", Image: "hello:v2",
			Strategy: spec.Strategy{Type: strategies[int(strategy)%len(strategies)], BatchSize: batch}}
		for _, b := range steps {
			s.Strategy.Steps = append(s.Strategy.Steps, int(b))
		}
		if n := len(s.Strategy.Steps); endAt100 && n > 0 && s.Strategy.Steps[n-1] < 100 {
			s.Strategy.Steps = append(s.Strategy.Steps, 100)
		}
		// A platform's counts: total as the spec asks for it (Kubernetes may
		// keep the current count: 0), current as many as run now (a
		// platform may report more than a spec may ask for, never below 0).
		current = bounded(current, 3*spec.MaxReplicas)
		if kubernetes {
			s.Platform.Kubernetes = &spec.Kubernetes{Deployment: "hello", Service: "hello",
				Replicas: bounded(total, spec.MaxReplicas+1)}
		} else {
			s.Platform.Docker = &spec.Docker{Port: 8080, Replicas: total}
		}
		s = s.WithDefaults()
		if s.Validate() != nil {
			return // Build's callers plan only valid specs
		}
		total = s.Replicas()
		if total == 0 {
			total = current
		}

		peak := plan.PeakExtra(s, current)
		p, err := plan.Build(s, total, current)
		if total < 1 {
			if err == nil {
				t.Fatalf("Build(total %d) planned %+v, want an error", total, p)
			}
			if peak != 0 {
				t.Fatalf("PeakExtra %d with nothing to roll out", peak)
			}
			return
		}
		if err != nil {
			t.Fatalf("Build(%+v, %d, %d): %v", s.Strategy, total, current, err)
		}
		if again, _ := plan.Build(s, total, current); !reflect.DeepEqual(again, p) {
			t.Fatalf("Build is not deterministic:\n%+v\n%+v", p, again)
		}
		checkPlan(t, s, p, total, current)
		if peak < 0 || peak > total {
			t.Fatalf("PeakExtra %d, want 0..%d (at most a whole new set beside what runs)", peak, total)
		}
	})
}

// checkPlan holds p, planned for s from current to total instances, to
// the properties every plan has and those of its strategy.
func checkPlan(t *testing.T, s spec.Spec, p plan.Plan, total, current int) {
	t.Helper()
	st := s.Strategy
	if p.Strategy != st.Type || p.Total != total || p.Current != current {
		t.Fatalf("plan for %s %d→%d says %s %d→%d", st.Type, current, total, p.Strategy, p.Current, p.Total)
	}
	if len(p.Stages) == 0 {
		t.Fatalf("%s %d→%d: no stages", st.Type, current, total)
	}
	want := plan.Desired{New: total, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge}
	if st.Type == spec.Recreate {
		want.Order = plan.StopFirst
	}
	if p.Final != want {
		t.Fatalf("final state %+v, want %+v", p.Final, want)
	}
	for i, sg := range p.Stages {
		switch {
		case sg.Index != i || sg.Name == "":
			t.Fatalf("stage %d is indexed %d, named %q", i, sg.Index, sg.Name)
		case sg.New < 0 || sg.New > total:
			t.Fatalf("stage %q: %d new, want 0..%d", sg.Name, sg.New, total)
		case sg.Old < 0 || sg.Old > current:
			t.Fatalf("stage %q: %d old, want 0..%d (never more than run now)", sg.Name, sg.Old, current)
		case sg.New+sg.Old < 0:
			t.Fatalf("stage %q: %d instances", sg.Name, sg.New+sg.Old)
		case sg.Bake <= 0:
			t.Fatalf("stage %q: bake %v, want a positive one", sg.Name, sg.Bake)
		case !slices.Contains([]plan.Traffic{plan.TrafficShared, plan.TrafficOld, plan.TrafficNew}, sg.Traffic):
			t.Fatalf("stage %q: traffic %q", sg.Name, sg.Traffic)
		case sg.Order != plan.Surge && sg.Order != plan.StopFirst:
			t.Fatalf("stage %q: order %q", sg.Name, sg.Order)
		case sg.Percent < 0 || sg.Percent > 100:
			t.Fatalf("stage %q: %d%%", sg.Name, sg.Percent)
		}
		if sg.Traffic == plan.TrafficShared && sg.Old != min(current, total-sg.New) {
			t.Fatalf("stage %q: %d old beside %d new, want min(%d current, %d still needed)",
				sg.Name, sg.Old, sg.New, current, total-sg.New)
		}
	}
	last := p.Stages[len(p.Stages)-1]
	if last.New != total || last.Percent != 100 {
		t.Fatalf("last stage %q: %d new at %d%%, want all %d at 100%%", last.Name, last.New, last.Percent, total)
	}

	switch st.Type {
	case spec.Canary:
		if len(p.Stages) != len(st.Steps) {
			t.Fatalf("%d stages for the %d steps %v", len(p.Stages), len(st.Steps), st.Steps)
		}
		prev := plan.Stage{}
		for i, sg := range p.Stages {
			switch {
			case sg.Percent != st.Steps[i]:
				t.Fatalf("stage %d at %d%%, want step %d%%", i, sg.Percent, st.Steps[i])
			case i > 0 && sg.Percent <= prev.Percent:
				t.Fatalf("canary percentages do not increase: %d%% after %d%%", sg.Percent, prev.Percent)
			case sg.New < 1 || sg.New < prev.New:
				t.Fatalf("stage %q: %d new after %d, want at least 1 and never fewer", sg.Name, sg.New, prev.New)
			// Rounded up: at least the step's share, and one fewer would
			// fall short of it (unless the floor of one instance set it).
			case sg.New*100 < total*sg.Percent || sg.New > 1 && (sg.New-1)*100 >= total*sg.Percent:
				t.Fatalf("stage %q: %d of %d new is not %d%% rounded up", sg.Name, sg.New, total, sg.Percent)
			case sg.Traffic != plan.TrafficShared || sg.Order != plan.Surge || sg.Bake != st.Bake.D():
				t.Fatalf("stage %q: %+v", sg.Name, sg)
			}
			prev = sg
		}
	case spec.Rolling:
		if n := (total + st.BatchSize - 1) / st.BatchSize; len(p.Stages) != n {
			t.Fatalf("%d batches of %d for %d instances, want %d", len(p.Stages), st.BatchSize, total, n)
		}
		sum, prev := 0, plan.Stage{}
		for _, sg := range p.Stages {
			step := sg.New - prev.New
			switch {
			case step < 1 || step > st.BatchSize:
				t.Fatalf("stage %q replaces %d, want 1..%d", sg.Name, step, st.BatchSize)
			case sg.Percent < prev.Percent:
				t.Fatalf("stage %q: %d%% after %d%%", sg.Name, sg.Percent, prev.Percent)
			case sg.Traffic != plan.TrafficShared || sg.Order != plan.Surge || sg.Bake != st.Bake.D():
				t.Fatalf("stage %q: %+v", sg.Name, sg)
			}
			sum += step
			prev = sg
		}
		if sum != total {
			t.Fatalf("batches sum to %d, want %d", sum, total)
		}
	case spec.BlueGreen:
		want := []plan.Stage{
			{Index: 0, Name: p.Stages[0].Name, Percent: 0, New: total, Old: current, Traffic: plan.TrafficOld, Order: plan.Surge, Bake: st.BakeBeforeSwitch.D()},
			{Index: 1, Name: last.Name, Percent: 100, New: total, Old: current, Traffic: plan.TrafficNew, Order: plan.Surge, Bake: st.BakeAfterSwitch.D()},
		}
		if !reflect.DeepEqual(p.Stages, want) {
			t.Fatalf("blue-green stages %+v, want %+v", p.Stages, want)
		}
	case spec.Recreate:
		want := []plan.Stage{{Index: 0, Name: last.Name, Percent: 100, New: total, Old: 0,
			Traffic: plan.TrafficNew, Order: plan.StopFirst, Bake: st.Bake.D()}}
		if !reflect.DeepEqual(p.Stages, want) {
			t.Fatalf("recreate stages %+v, want %+v", p.Stages, want)
		}
	}
}

// bounded maps n into 0..limit-1.
func bounded(n, limit int) int {
	if n %= limit; n < 0 {
		return -n
	}
	return n
}
