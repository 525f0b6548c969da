package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/platform/kubernetes"
)

func TestParseClusters(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := parseClusters([]string{"eu-west=" + kc + ":prod", "dev=" + kc})
	if err != nil {
		t.Fatal(err)
	}
	if got["eu-west"] != (kubernetes.Cluster{Kubeconfig: kc, Context: "prod"}) || got["dev"] != (kubernetes.Cluster{Kubeconfig: kc}) {
		t.Fatalf("clusters %+v", got)
	}
	for entry, want := range map[string]string{
		"eu-west":               "want NAME=KUBECONFIG",
		"EU=" + kc:              "not a valid cluster name",
		"x=" + dir:              "not a readable file",
		"x=" + dir + "/missing": "not a readable file",
	} {
		if _, err := parseClusters([]string{entry}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", entry, err, want)
		}
	}
	if _, err := parseClusters([]string{"a=" + kc, "a=" + kc}); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Errorf("twice: %v", err)
	}
}

// TestWorkerFilesDeniedToSpecs: every kubeconfig the worker may use (each
// --cluster file, each entry of $KUBECONFIG's list) is among the files no
// spec may reference.
func TestWorkerFilesDeniedToSpecs(t *testing.T) {
	t.Setenv("KUBECONFIG", "/etc/kube/a"+string(os.PathListSeparator)+"/etc/kube/b")
	files := workerFiles(config{clusters: []string{"eu=/etc/kube/eu:prod", "us=/etc/kube/us"}, signingKeys: []string{"/etc/hook.key"}})
	for _, want := range []string{"/etc/kube/a", "/etc/kube/b", "/etc/kube/eu", "/etc/kube/us", "/etc/hook.key"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s not denied: %v", want, files)
		}
	}
}
