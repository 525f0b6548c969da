package docker

import (
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Describe says which containers a converge starts, keeps and removes,
// in the order it does it.
func TestDescribeSaysWhatEachConvergeDoes(t *testing.T) {
	s := spec.Spec{Service: "hello", Image: "demo:v2", Platform: spec.Platform{Docker: &spec.Docker{Replicas: 3}}}
	snap := platform.Snapshot{Service: "hello", Instances: []platform.Instance{{Name: "hello-0", Image: "demo:v1"}, {Name: "hello-1", Image: "demo:v1"}, {Name: "hello-2", Image: "demo:v1"}}}
	p := &Platform{}
	for _, tc := range []struct {
		name string
		d    plan.Desired
		want string
	}{
		{"canary", plan.Desired{New: 1, Old: 2, Order: plan.Surge},
			"1 container(s) of demo:v2 running (started as needed)\nsnapshot container(s) removed: hello-2\nsnapshot container(s) kept as they were: hello-0, hello-1"},
		{"recreate", plan.Desired{New: 3, Order: plan.StopFirst},
			"snapshot container(s) removed: hello-0, hello-1, hello-2\n3 container(s) of demo:v2 running (started as needed)\nthen only the new version runs"},
		{"rollback", plan.Desired{Old: 3, Order: plan.Surge},
			"snapshot container(s) kept as they were: hello-0, hello-1, hello-2\nevery container of the new version removed"},
	} {
		got, err := p.Describe(s, snap, tc.d)
		if err != nil {
			t.Fatal(err)
		}
		if all := strings.Join(got, "\n"); all != tc.want {
			t.Errorf("describe %s:\n%s\nwant:\n%s", tc.name, all, tc.want)
		}
	}
}
