package plan

import (
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestPeakExtra(t *testing.T) {
	docker := func(typ string, replicas int, edit func(*spec.Strategy)) spec.Spec {
		s := strat(typ, edit)
		s.Platform.Docker = &spec.Docker{Replicas: replicas, Port: 8080}
		return s
	}
	kube := func(typ string, replicas int) spec.Spec {
		s := strat(typ, nil)
		s.Platform.Kubernetes = &spec.Kubernetes{Deployment: "web", Replicas: replicas}
		return s
	}
	batch := func(n int) func(*spec.Strategy) { return func(st *spec.Strategy) { st.BatchSize = n } }
	tests := []struct {
		name    string
		spec    spec.Spec
		current int
		want    int
	}{
		// (1,3) (1,3) (2,2) (4,0): the 4 new beside the 2 old of the 50% step.
		{"canary seed steps", docker(spec.Canary, 4, nil), 4, 2},
		{"canary seed steps 20", docker(spec.Canary, 20, nil), 20, 10},
		{"canary one step", docker(spec.Canary, 4, func(st *spec.Strategy) { st.Steps = []int{100} }), 4, 4},
		{"canary fresh install", docker(spec.Canary, 3, nil), 0, 3},
		// The first step adds 1 before 7 of the 10 old go.
		{"canary scale down", docker(spec.Canary, 4, nil), 10, 1},
		{"rolling batch 1", docker(spec.Rolling, 4, batch(1)), 4, 1},
		{"rolling batch 2", docker(spec.Rolling, 4, batch(2)), 4, 2},
		{"rolling batch larger than total", docker(spec.Rolling, 3, batch(5)), 3, 3},
		{"blue-green whole green set", docker(spec.BlueGreen, 4, nil), 4, 4},
		{"blue-green scale down", docker(spec.BlueGreen, 3, nil), 5, 3},
		{"blue-green fresh install", docker(spec.BlueGreen, 2, nil), 0, 2},
		{"recreate same size", docker(spec.Recreate, 4, nil), 4, 0},
		{"recreate scale up", docker(spec.Recreate, 5, nil), 2, 3},
		{"recreate scale down", docker(spec.Recreate, 2, nil), 5, 0},
		// Replicas unset: the current count is the total.
		{"kubernetes keeps count canary", kube(spec.Canary, 0), 6, 3},
		{"kubernetes keeps count blue-green", kube(spec.BlueGreen, 0), 6, 6},
		{"kubernetes keeps count nothing runs", kube(spec.Canary, 0), 0, 0},
		{"kubernetes scale up rolling", kube(spec.Rolling, 6), 4, 3},
		{"negative current", docker(spec.Recreate, 2, nil), -1, 2},
		{"no strategy", spec.Spec{Platform: spec.Platform{Docker: &spec.Docker{Replicas: 2}}}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PeakExtra(tt.spec, tt.current); got != tt.want {
				t.Errorf("PeakExtra(current %d) = %d, want %d", tt.current, got, tt.want)
			}
		})
	}
}
