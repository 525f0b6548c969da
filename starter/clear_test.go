package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClearTarget(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "hello.yaml")
	if err := os.WriteFile(specFile, []byte("service: hello\nimage: stagecraft-demo:v2\nplatform:\n  kubernetes:\n    namespace: prod\n    deployment: payment\n    context: east\nstrategy:\n  type: recreate\nhealth:\n  checks:\n    - name: healthz\n      http:\n        url: http://{{.Address}}/healthz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arg, target, err string
	}{
		{"docker:hello", "docker:hello", ""},
		{"deploy:docker:hello", "docker:hello", ""},
		{"k8s:prod/payment", "k8s:prod/payment", ""},
		{"deploy:k8s:prod/payment", "k8s:prod/payment", ""},
		{"deploy:k8s:eu-west/prod/payment", "k8s:eu-west/prod/payment", ""},
		{"k8s:eu-west/prod/payment", "k8s:eu-west/prod/payment", ""},
		{"k8s:/prod/payment", "", "neither a spec file nor a target"},
		{"k8s:a/b/c/d", "", "neither a spec file nor a target"},
		{specFile, "k8s:prod/payment", ""},
		{"hello", "", "neither a spec file nor a target"},
		{"docker:", "", "neither a spec file nor a target"},
		{"k8s:payment", "", "neither a spec file nor a target"},
		{"nomad:hello", "", "neither a spec file nor a target"},
		{filepath.Join(dir, "missing.yaml"), "", "read spec"},
	} {
		s, err := clearTarget(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v; want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || s.TargetKey() != tc.target || s.WorkflowID() != "deploy:"+tc.target {
			t.Errorf("%q: target %q, err %v; want %q", tc.arg, s.TargetKey(), err, tc.target)
		}
	}
	if s, _ := clearTarget(specFile); s.Platform.Kubernetes.Context != "east" {
		t.Errorf("a spec file keeps its cluster context: %+v", s.Platform.Kubernetes)
	}
}

// TestClearNeedsReason: clear without --reason is invalid input (exit 2)
// before anything is dialled.
func TestClearNeedsReason(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"clear", "docker:hello", "--address", "127.0.0.1:1"}, &out, &errb)
	if code != exitInvalid || !strings.Contains(errb.String(), "reason") {
		t.Fatalf("exit %d, stderr %q; want %d naming --reason", code, errb.String(), exitInvalid)
	}
}
