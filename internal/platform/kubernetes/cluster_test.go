package kubernetes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

const kubeconfigYAML = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: a
  context: {cluster: a, user: u}
current-context: a
users:
- name: u
  user: {token: t}
`

// TestNamedClusters: a spec names a cluster the worker knows and gets that
// cluster's client; a cluster it does not know, and (on a worker that
// takes clusters by name) a kubeconfig path or context of the spec's own,
// are refused naming the field, before any client is built.
func TestNamedClusters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfigYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	p := New(nil)
	p.Clusters, p.SpecPaths = map[string]Cluster{"eu-west": {Kubeconfig: path, Context: "a"}}, false

	if _, cfg, err := p.cluster(&spec.Kubernetes{Cluster: "eu-west"}); err != nil || cfg.Host != "https://127.0.0.1:1" {
		t.Fatalf("named cluster: %v, %+v", err, cfg)
	}
	for _, tt := range []struct {
		k    spec.Kubernetes
		want string
	}{
		{spec.Kubernetes{Cluster: "us-east"}, `platform.kubernetes.cluster: "us-east" is not a cluster this worker knows (it knows eu-west`},
		{spec.Kubernetes{Kubeconfig: "/etc/kubernetes/admin.conf"}, "platform.kubernetes.kubeconfig/context: this worker takes clusters by name"},
		{spec.Kubernetes{Context: "admin"}, "platform.kubernetes.kubeconfig/context"},
	} {
		_, _, err := p.cluster(&tt.k)
		if !errors.Is(err, platform.ErrSpecRefused) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.k, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "passwd") {
			t.Errorf("the error says something of the file: %v", err)
		}
	}
	// A worker that allows paths (local development; the library's default).
	dev := New(nil)
	if _, cfg, err := dev.cluster(&spec.Kubernetes{Kubeconfig: path}); err != nil || cfg.Host != "https://127.0.0.1:1" {
		t.Fatalf("a spec's own kubeconfig on a worker that allows it: %v", err)
	}
}
