package spec

import (
	"strings"
	"testing"
)

func kubeSpec(cluster, kubeconfig string) Spec {
	return Spec{Service: "payment", Image: "shop/payment:v2", Strategy: Strategy{Type: Canary},
		Platform: Platform{Kubernetes: &Kubernetes{Namespace: "prod", Deployment: "payment", Cluster: cluster, Kubeconfig: kubeconfig}}}.WithDefaults()
}

// TestClusterIsPartOfTheTarget: one Deployment name in two clusters is two
// targets (two workflow IDs); without a cluster the key is as it always was.
func TestClusterIsPartOfTheTarget(t *testing.T) {
	if got := kubeSpec("", "").WorkflowID(); got != "deploy:k8s:prod/payment" {
		t.Errorf("no cluster: %s", got)
	}
	if got := kubeSpec("eu-west", "").WorkflowID(); got != "deploy:k8s:eu-west/prod/payment" {
		t.Errorf("cluster eu-west: %s", got)
	}
	if err := kubeSpec("eu-west", "").Validate(); err != nil {
		t.Errorf("a named cluster: %v", err)
	}
	for _, tt := range []struct {
		s    Spec
		want string
	}{
		{kubeSpec("EU/West", ""), `platform.kubernetes.cluster: "EU/West" is not a valid cluster name`},
		{kubeSpec("eu-west", "/etc/kube/admin.conf"), "platform.kubernetes.cluster: a cluster is named"},
	} {
		err := tt.s.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.s.Platform.Kubernetes, err, tt.want)
		}
	}
	// Under the rules before the boundaries the field is not judged.
	if err := kubeSpec("EU/West", "").ValidateUnder(RulesBounded); err != nil {
		t.Errorf("older rules: %v", err)
	}
}
