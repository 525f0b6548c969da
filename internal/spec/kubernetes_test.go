package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestKubernetesSpec(t *testing.T) {
	const base = `
service: payment
image: registry.local/payment:v2
platform:
  kubernetes:
    namespace: prod
    deployment: payment
    service: payment
strategy:
  type: canary
`
	s, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.WorkflowID(); got != "deploy:k8s:prod/payment" {
		t.Errorf("WorkflowID = %q", got)
	}
	if s.PlatformName() != PlatformKubernetes || s.Replicas() != 0 {
		t.Errorf("platform %q replicas %d", s.PlatformName(), s.Replicas())
	}
	if s.Platform.Kubernetes.ProgressDeadline.D() != DefaultProgressDeadline {
		t.Errorf("progressDeadline default = %s", s.Platform.Kubernetes.ProgressDeadline.D())
	}

	cases := []struct {
		name, replace, with, field string
	}{
		{"no deployment", "deployment: payment", "deployment: ''", "platform.kubernetes.deployment"},
		{"bad namespace", "namespace: prod", "namespace: Prod_1", "platform.kubernetes.namespace"},
		{"bad service", "service: payment\nstrategy", "service: Pay_ment\nstrategy", "platform.kubernetes.service"},
		{"negative replicas", "service: payment\nstrategy", "service: payment\n    replicas: -2\nstrategy", "platform.kubernetes.replicas"},
		{"blue-green needs service", "    service: payment\nstrategy:\n  type: canary", "strategy:\n  type: blue-green", "platform.kubernetes.service"},
		{"two platforms", "platform:\n", "platform:\n  docker: {replicas: 1, port: 80}\n", "platform"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(base, c.replace, c.with, 1)
			if doc == base {
				t.Fatalf("replacement %q not found", c.replace)
			}
			_, err := Parse([]byte(doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			for _, p := range ve.Problems {
				if p.Field == c.field {
					return
				}
			}
			t.Fatalf("no problem for %s in %v", c.field, err)
		})
	}
}
