package spec

import (
	"strings"
	"testing"
)

// TestKubernetesCheckVia: platform.kubernetes.checkVia takes podIP or
// portForward, or is left out; anything else is refused naming the field.
// Under the rules before RulesBoundaries (a run started earlier, on replay)
// a value is not refused.
func TestKubernetesCheckVia(t *testing.T) {
	const base = `
service: web
image: web:v2
platform:
  kubernetes:
    deployment: web
    CHECKVIA
strategy: {type: rolling}
`
	yaml := func(line string) []byte { return []byte(strings.Replace(base, "CHECKVIA", line, 1)) }
	for _, tc := range []struct{ line, want string }{
		{"", ""},
		{"checkVia: podIP", "podIP"},
		{"checkVia: portForward", "portForward"},
	} {
		s, err := Parse(yaml(tc.line))
		if err != nil {
			t.Errorf("%q refused: %v", tc.line, err)
			continue
		}
		if got := s.Platform.Kubernetes.CheckVia; got != tc.want {
			t.Errorf("%q: checkVia = %q; want %q", tc.line, got, tc.want)
		}
	}
	for _, v := range []string{"auto", "portforward", "clusterIP", "PodIP"} {
		_, err := Parse(yaml("checkVia: " + v))
		if err == nil || !strings.Contains(err.Error(), "platform.kubernetes.checkVia: ") || !strings.Contains(err.Error(), v) {
			t.Errorf("checkVia %q: %v; want refused, naming platform.kubernetes.checkVia and the value", v, err)
		}
	}
	s, err := Parse(yaml(""))
	if err != nil {
		t.Fatal(err)
	}
	s.Platform.Kubernetes.CheckVia = "clusterIP"
	for _, r := range []Rules{RulesUnbounded, RulesBounded} {
		if err := s.ValidateUnder(r); err != nil {
			t.Errorf("rules %d refuse a checkVia they never checked: %v", r, err)
		}
	}
	if err := s.ValidateUnder(RulesCurrent); err == nil {
		t.Error("the current rules accept checkVia clusterIP")
	}
}
