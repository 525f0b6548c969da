package plan

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// strat returns a valid spec for the strategy with defaults applied, after edit.
func strat(typ string, edit func(*spec.Strategy)) spec.Spec {
	s := spec.Spec{Service: "hello", Strategy: spec.Strategy{Type: typ}}
	if edit != nil {
		edit(&s.Strategy)
	}
	return s.WithDefaults()
}

func TestBuild(t *testing.T) {
	const bake = 20 * time.Second
	canary := strat(spec.Canary, func(st *spec.Strategy) { st.Bake = spec.Duration(bake) })
	tests := []struct {
		name           string
		spec           spec.Spec
		total, current int
		wantNew        []int
		wantOld        []int
		wantPercent    []int
		wantTraffic    []Traffic
		wantOrder      Order
		wantBake       []time.Duration
		wantNames      []string
		wantFinal      Desired
	}{
		{
			name: "canary seed", spec: canary, total: 20, current: 20,
			wantNew:     []int{1, 5, 10, 20},
			wantOld:     []int{19, 15, 10, 0},
			wantPercent: []int{5, 25, 50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{bake, bake, bake, bake},
			wantNames:   []string{"canary 5%", "canary 25%", "canary 50%", "canary 100%"},
			wantFinal:   Desired{New: 20, Old: 0, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "canary small never zero", spec: canary, total: 3, current: 3,
			wantNew:     []int{1, 1, 2, 3},
			wantOld:     []int{2, 2, 1, 0},
			wantPercent: []int{5, 25, 50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{bake, bake, bake, bake},
			wantFinal:   Desired{New: 3, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "canary seed steps fresh install", total: 4, current: 0,
			spec:        strat(spec.Canary, func(st *spec.Strategy) { st.Steps = []int{25, 50, 100} }),
			wantNew:     []int{1, 2, 4},
			wantOld:     []int{0, 0, 0},
			wantPercent: []int{25, 50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultCanaryBake, spec.DefaultCanaryBake, spec.DefaultCanaryBake},
			wantFinal:   Desired{New: 4, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "canary scale down", spec: canary, total: 2, current: 6,
			wantNew:     []int{1, 1, 1, 2},
			wantOld:     []int{1, 1, 1, 0},
			wantPercent: []int{5, 25, 50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{bake, bake, bake, bake},
			wantFinal:   Desired{New: 2, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "canary scale up keeps old until the last step", spec: canary, total: 10, current: 2,
			wantNew:     []int{1, 3, 5, 10},
			wantOld:     []int{2, 2, 2, 0},
			wantPercent: []int{5, 25, 50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{bake, bake, bake, bake},
			wantFinal:   Desired{New: 10, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "canary negative current is fresh", spec: canary, total: 1, current: -3,
			wantNew:     []int{1, 1, 1, 1},
			wantOld:     []int{0, 0, 0, 0},
			wantPercent: []int{5, 25, 50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{bake, bake, bake, bake},
			wantFinal:   Desired{New: 1, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "rolling batch 2 of 5", total: 5, current: 5,
			spec:        strat(spec.Rolling, func(st *spec.Strategy) { st.BatchSize = 2; st.Bake = spec.Duration(bake) }),
			wantNew:     []int{2, 4, 5},
			wantOld:     []int{3, 1, 0},
			wantPercent: []int{40, 80, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{bake, bake, bake},
			wantNames:   []string{"batch 1/3", "batch 2/3", "batch 3/3"},
			wantFinal:   Desired{New: 5, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "rolling default batch", total: 3, current: 3,
			spec:        strat(spec.Rolling, nil),
			wantNew:     []int{1, 2, 3},
			wantOld:     []int{2, 1, 0},
			wantPercent: []int{33, 66, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultRollingBake, spec.DefaultRollingBake, spec.DefaultRollingBake},
			wantFinal:   Desired{New: 3, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "rolling batch larger than total", total: 3, current: 3,
			spec:        strat(spec.Rolling, func(st *spec.Strategy) { st.BatchSize = 10 }),
			wantNew:     []int{3},
			wantOld:     []int{0},
			wantPercent: []int{100},
			wantTraffic: []Traffic{TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultRollingBake},
			wantNames:   []string{"batch 1/1"},
			wantFinal:   Desired{New: 3, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "rolling scale up", total: 4, current: 2,
			spec:        strat(spec.Rolling, nil),
			wantNew:     []int{1, 2, 3, 4},
			wantOld:     []int{2, 2, 1, 0},
			wantPercent: []int{25, 50, 75, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared, TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultRollingBake, spec.DefaultRollingBake, spec.DefaultRollingBake, spec.DefaultRollingBake},
			wantFinal:   Desired{New: 4, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "rolling scale down", total: 2, current: 5,
			spec:        strat(spec.Rolling, nil),
			wantNew:     []int{1, 2},
			wantOld:     []int{1, 0},
			wantPercent: []int{50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultRollingBake, spec.DefaultRollingBake},
			wantFinal:   Desired{New: 2, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "rolling fresh install", total: 2, current: 0,
			spec:        strat(spec.Rolling, nil),
			wantNew:     []int{1, 2},
			wantOld:     []int{0, 0},
			wantPercent: []int{50, 100},
			wantTraffic: []Traffic{TrafficShared, TrafficShared},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultRollingBake, spec.DefaultRollingBake},
			wantFinal:   Desired{New: 2, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "blue-green", total: 4, current: 3,
			spec: strat(spec.BlueGreen, func(st *spec.Strategy) {
				st.BakeBeforeSwitch = spec.Duration(time.Minute)
				st.BakeAfterSwitch = spec.Duration(2 * time.Minute)
			}),
			wantNew:     []int{4, 4},
			wantOld:     []int{3, 3},
			wantPercent: []int{0, 100},
			wantTraffic: []Traffic{TrafficOld, TrafficNew},
			wantOrder:   Surge,
			wantBake:    []time.Duration{time.Minute, 2 * time.Minute},
			wantNames:   []string{"green up", "switch"},
			wantFinal:   Desired{New: 4, Old: 0, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "blue-green fresh install", total: 2, current: 0,
			spec:        strat(spec.BlueGreen, nil),
			wantNew:     []int{2, 2},
			wantOld:     []int{0, 0},
			wantPercent: []int{0, 100},
			wantTraffic: []Traffic{TrafficOld, TrafficNew},
			wantOrder:   Surge,
			wantBake:    []time.Duration{spec.DefaultBlueGreenBake, spec.DefaultBlueGreenBake},
			wantFinal:   Desired{New: 2, Traffic: TrafficNew, Order: Surge},
		},
		{
			name: "recreate", total: 3, current: 5,
			spec:        strat(spec.Recreate, func(st *spec.Strategy) { st.Bake = spec.Duration(bake) }),
			wantNew:     []int{3},
			wantOld:     []int{0},
			wantPercent: []int{100},
			wantTraffic: []Traffic{TrafficNew},
			wantOrder:   StopFirst,
			wantBake:    []time.Duration{bake},
			wantNames:   []string{"recreate"},
			wantFinal:   Desired{New: 3, Old: 0, Traffic: TrafficNew, Order: StopFirst},
		},
		{
			name: "recreate fresh install", total: 1, current: 0,
			spec:        strat(spec.Recreate, nil),
			wantNew:     []int{1},
			wantOld:     []int{0},
			wantPercent: []int{100},
			wantTraffic: []Traffic{TrafficNew},
			wantOrder:   StopFirst,
			wantBake:    []time.Duration{spec.DefaultRecreateBake},
			wantFinal:   Desired{New: 1, Traffic: TrafficNew, Order: StopFirst},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(tt.spec, tt.total, tt.current)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			wantCurrent := max(tt.current, 0)
			if p.Strategy != tt.spec.Strategy.Type || p.Total != tt.total || p.Current != wantCurrent {
				t.Errorf("plan header = {%q %d %d}, want {%q %d %d}",
					p.Strategy, p.Total, p.Current, tt.spec.Strategy.Type, tt.total, wantCurrent)
			}
			var gotNew, gotOld, gotPercent []int
			var gotTraffic []Traffic
			var gotBake []time.Duration
			var gotNames []string
			for i, st := range p.Stages {
				if st.Index != i {
					t.Errorf("stage %d has Index %d", i, st.Index)
				}
				if st.Order != tt.wantOrder {
					t.Errorf("stage %d Order = %q, want %q", i, st.Order, tt.wantOrder)
				}
				if d := st.Desired(); d != (Desired{New: st.New, Old: st.Old, Traffic: st.Traffic, Order: st.Order}) {
					t.Errorf("stage %d Desired() = %+v, does not match the stage", i, d)
				}
				if st.New < 1 || st.New > tt.total {
					t.Errorf("stage %d New = %d, want within [1, %d]", i, st.New, tt.total)
				}
				gotNew = append(gotNew, st.New)
				gotOld = append(gotOld, st.Old)
				gotPercent = append(gotPercent, st.Percent)
				gotTraffic = append(gotTraffic, st.Traffic)
				gotBake = append(gotBake, st.Bake)
				gotNames = append(gotNames, st.Name)
			}
			check(t, "New", gotNew, tt.wantNew)
			check(t, "Old", gotOld, tt.wantOld)
			check(t, "Percent", gotPercent, tt.wantPercent)
			check(t, "Traffic", gotTraffic, tt.wantTraffic)
			check(t, "Bake", gotBake, tt.wantBake)
			if tt.wantNames != nil {
				check(t, "Name", gotNames, tt.wantNames)
			}
			if p.Final != tt.wantFinal {
				t.Errorf("Final = %+v, want %+v", p.Final, tt.wantFinal)
			}
			if last := p.Stages[len(p.Stages)-1]; last.New != tt.total {
				t.Errorf("last stage New = %d, want total %d", last.New, tt.total)
			}
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	for _, typ := range []string{spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate} {
		t.Run(typ, func(t *testing.T) {
			s := strat(typ, nil)
			a, errA := Build(s, 7, 5)
			b, errB := Build(s, 7, 5)
			if errA != nil || errB != nil {
				t.Fatalf("Build: %v, %v", errA, errB)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("Build is not deterministic:\n%+v\n%+v", a, b)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name   string
		spec   spec.Spec
		total  int
		substr string
	}{
		{name: "zero total", spec: strat(spec.Canary, nil), total: 0, substr: "at least 1, got 0"},
		{name: "negative total", spec: strat(spec.Rolling, nil), total: -2, substr: "at least 1, got -2"},
		{name: "unknown strategy", spec: strat("big-bang", nil), total: 3, substr: `unknown strategy "big-bang"`},
		{name: "missing strategy", spec: strat("", nil), total: 3, substr: "unknown strategy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(tt.spec, tt.total, 1)
			if err == nil {
				t.Fatalf("Build = %+v, want error", p)
			}
			if !strings.Contains(err.Error(), tt.substr) || !strings.Contains(err.Error(), "hello") {
				t.Errorf("error %q, want it to contain %q and the service name", err, tt.substr)
			}
			if !reflect.DeepEqual(p, Plan{}) {
				t.Errorf("Build returned a partial plan %+v with its error", p)
			}
		})
	}
}

func TestCanaryCount(t *testing.T) {
	tests := []struct {
		total, percent, want int
	}{
		{20, 5, 1},
		{20, 25, 5},
		{20, 50, 10},
		{20, 100, 20},
		{3, 5, 1},  // rounds up, never 0 for a non-zero step
		{3, 34, 2}, // 1.02 rounds up
		{3, 33, 1}, // 0.99 rounds up
		{1, 1, 1},
		{1000, 1, 10},
		{1000, 100, 1000},
		{10, 0, 0},
		{10, -5, 0},
		{10, 150, 10}, // never more than total
		{7, 50, 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d@%d%%", tt.total, tt.percent), func(t *testing.T) {
			if got := CanaryCount(tt.total, tt.percent); got != tt.want {
				t.Errorf("CanaryCount(%d, %d) = %d, want %d", tt.total, tt.percent, got, tt.want)
			}
		})
	}
}

func TestRollingBatches(t *testing.T) {
	tests := []struct {
		name         string
		total, batch int
		want         []int
	}{
		{name: "5 by 2", total: 5, batch: 2, want: []int{2, 4, 5}},
		{name: "even split", total: 6, batch: 2, want: []int{2, 4, 6}},
		{name: "one by one", total: 3, batch: 1, want: []int{1, 2, 3}},
		{name: "batch equals total", total: 4, batch: 4, want: []int{4}},
		{name: "batch larger than total", total: 3, batch: 10, want: []int{3}},
		{name: "single instance", total: 1, batch: 1, want: []int{1}},
		{name: "zero batch means 1", total: 2, batch: 0, want: []int{1, 2}},
		{name: "negative batch means 1", total: 2, batch: -3, want: []int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RollingBatches(tt.total, tt.batch); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("RollingBatches(%d, %d) = %v, want %v", tt.total, tt.batch, got, tt.want)
			}
		})
	}
}

func check[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
