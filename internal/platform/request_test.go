package platform

import (
	"testing"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestConvergeRequestValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		rollout string
		desired plan.Desired
		want    string // "" when the request is valid
	}{
		{name: "nothing at all", desired: plan.Desired{}},
		{name: "rollback needs no token", desired: plan.Desired{Old: 3, Traffic: plan.TrafficOld}},
		{name: "new instances with a token", rollout: "r1", desired: plan.Desired{New: 1, Old: 3}},
		{name: "only new instances with a token", rollout: "r1", desired: plan.Desired{New: 4}},
		{name: "negative new", rollout: "r1", desired: plan.Desired{New: -1, Old: 3},
			want: `converge "web": negative desired counts new=-1 old=3`},
		{name: "negative old", rollout: "r1", desired: plan.Desired{New: 1, Old: -2},
			want: `converge "web": negative desired counts new=1 old=-2`},
		{name: "negative counts before a missing token", desired: plan.Desired{New: 1, Old: -1},
			want: `converge "web": negative desired counts new=1 old=-1`},
		{name: "new instances without a token", desired: plan.Desired{New: 1, Old: 3},
			want: `converge "web": new instances need a rollout token`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ConvergeRequest{Spec: spec.Spec{Service: "web"}, Rollout: tt.rollout, Desired: tt.desired}
			err := r.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
