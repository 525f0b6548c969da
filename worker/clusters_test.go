package main

import (
	"os"
	"path/filepath"
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
