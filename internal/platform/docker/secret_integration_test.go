//go:build integration

package docker

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSecretEnv: containers get the values of their secret references, the
// snapshot holds only the references, a rollback resolves them again, and
// no value reaches a log line, a result or an error.
func TestSecretEnv(t *testing.T) {
	e := newEnv(t)
	variable := "STAGECRAFT_ITEST_" + strings.ToUpper(strings.ReplaceAll(e.svc, "-", "_"))
	value := "s3cr3t-" + e.svc
	t.Setenv(variable, value)
	file := filepath.Join(t.TempDir(), "token")
	fileValue := "t0ken-" + e.svc
	if err := os.WriteFile(file, []byte(fileValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refs := map[string]spec.SecretRef{"DB_PASSWORD": {FromEnv: variable}, "API_TOKEN": {FromFile: file}}
	withSecrets := func(image string) spec.Spec {
		s := e.spec(image)
		s.Platform.Docker.Replicas = 2
		s.Platform.Docker.SecretEnv = refs
		return s
	}
	v1, v2 := withSecrets(imageV1), withSecrets(imageV2)
	values := []string{value, fileValue}

	res := e.converge(v1, "r1", platform.Snapshot{Service: e.svc}, plan.Desired{New: 2, Traffic: plan.TrafficNew})
	checkCounts(t, res, 2, 0, 2)
	e.wantEnv(names(e.svc, "r1", 2), "DB_PASSWORD="+value, "API_TOKEN="+fileValue, "GREETING=hi from "+e.svc)

	snap, err := e.p.Snapshot(e.ctx, v2)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	b, _ := json.Marshal(snap)
	for _, v := range values {
		if strings.Contains(string(b), v) {
			t.Fatalf("snapshot holds a secret value: %s", b)
		}
	}
	for _, in := range snap.Instances {
		if in.Docker.SecretEnv["DB_PASSWORD"] != refs["DB_PASSWORD"] || in.Docker.SecretEnv["API_TOKEN"] != refs["API_TOKEN"] {
			t.Errorf("%s secretEnv = %v, want %v", in.Name, in.Docker.SecretEnv, refs)
		}
		if !slices.Contains(in.Docker.Env, "GREETING=hi from "+e.svc) {
			t.Errorf("%s plain env %q lacks GREETING", in.Name, in.Docker.Env)
		}
	}

	res = e.converge(v2, "r2", snap, plan.Desired{New: 2, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
	checkCounts(t, res, 2, 0, 2)
	e.wantEnv(names(e.svc, "r2", 2), "DB_PASSWORD="+value)

	// The value changes on the worker; a rollback reads it again.
	rotated := value + "-rotated"
	t.Setenv(variable, rotated)
	values = append(values, rotated)
	res = e.converge(v2, "r2", snap, plan.Desired{New: 0, Old: 2, Traffic: plan.TrafficOld})
	checkCounts(t, res, 0, 2, 2)
	if want := names(e.svc, "r1", 2); !slices.Equal(res.Created, want) {
		t.Fatalf("rollback created %q, want %q", res.Created, want)
	}
	e.wantEnv(names(e.svc, "r1", 2), "DB_PASSWORD="+rotated, "API_TOKEN="+fileValue)
	again, err := e.p.Snapshot(e.ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	if b1, b2 := mustJSON(t, snap), mustJSON(t, again); b1 != b2 {
		t.Errorf("snapshot after rollback differs:\n got %s\nwant %s", b2, b1)
	}

	// An unresolvable reference fails the snapshot and a converge before
	// anything changes, naming the field and the variable, never a value.
	if err := os.Unsetenv(variable); err != nil {
		t.Fatal(err)
	}
	_, err = e.p.Snapshot(e.ctx, v2)
	var tnf *platform.TargetNotFoundError
	if err == nil || !errors.As(err, &tnf) ||
		!strings.Contains(err.Error(), `platform.docker.secretEnv.DB_PASSWORD: environment variable "`+variable+`" not found on the worker`) ||
		!strings.Contains(err.Error(), "a rollback could not recreate it") {
		t.Errorf("snapshot with the variable unset = %v", err)
	}
	_, err = e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: v2, Rollout: "r3", Snapshot: again,
		Desired: plan.Desired{New: 1, Old: 1, Traffic: plan.TrafficShared}})
	if err == nil || !errors.As(err, &tnf) || !strings.Contains(err.Error(), variable) {
		t.Errorf("converge with the variable unset = %v", err)
	}
	if _, err := e.cli.ContainerInspect(e.ctx, instanceName(e.svc, "r3", 0), client.ContainerInspectOptions{}); err == nil {
		t.Error("a converge that could not resolve its references created a container")
	}

	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, f := range entry.ContextMap() {
			line += " " + k + "=" + strings.TrimSpace(strings.ReplaceAll(jsonString(f), "\n", " "))
		}
		for _, v := range values {
			if strings.Contains(line, v) {
				t.Errorf("log line holds a secret value: %s", line)
			}
		}
	}
}

// wantEnv checks every named container's environment holds the entries.
func (e *env) wantEnv(names []string, entries ...string) {
	e.t.Helper()
	for _, n := range names {
		in, err := e.cli.ContainerInspect(e.ctx, n, client.ContainerInspectOptions{})
		if err != nil {
			e.t.Fatalf("inspect %s: %v", n, err)
		}
		for _, want := range entries {
			if !slices.Contains(in.Container.Config.Env, want) {
				e.t.Errorf("container %s env lacks %q", n, want)
			}
		}
		name, _, _ := strings.Cut(entries[0], "=")
		if in.Container.Config.Labels[labelSecretEnvPrefix+name] == "" {
			e.t.Errorf("container %s has no label naming the reference of %s", n, name)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
