package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestSecretLabelsRoundTrip(t *testing.T) {
	refs := map[string]spec.SecretRef{
		"DB_PASSWORD": {FromEnv: "APP_DB_PASSWORD"},
		"API_TOKEN":   {FromFile: "/run/secrets/api:token"},
	}
	labels := secretLabels(refs)
	want := map[string]string{
		"stagecraft.secretenv.DB_PASSWORD": "fromEnv:APP_DB_PASSWORD",
		"stagecraft.secretenv.API_TOKEN":   "fromFile:/run/secrets/api:token",
	}
	if !reflect.DeepEqual(labels, want) {
		t.Fatalf("secretLabels = %v, want %v", labels, want)
	}
	for name, v := range labels {
		ref, ok := parseSecretLabel(v)
		if !ok || ref != refs[strings.TrimPrefix(name, labelSecretEnvPrefix)] {
			t.Errorf("parseSecretLabel(%q) = %+v, %v", v, ref, ok)
		}
	}
	for _, bad := range []string{"", "fromEnv:", "fromFile:", "value:x", "APP_DB_PASSWORD"} {
		if ref, ok := parseSecretLabel(bad); ok {
			t.Errorf("parseSecretLabel(%q) = %+v; want not a reference", bad, ref)
		}
	}
}

func TestSplitSecretEnv(t *testing.T) {
	labels := map[string]string{
		"stagecraft.secretenv.DB_PASSWORD": "fromEnv:APP_DB_PASSWORD",
		"stagecraft.secretenv.GONE":        "fromFile:/run/gone",
		"stagecraft.secretenv.ODD":         "not a reference",
	}
	tests := []struct {
		name      string
		env       []string
		labels    map[string]string
		wantPlain []string
		wantRefs  map[string]spec.SecretRef
	}{
		{"no labels", []string{"A=1", "DB_PASSWORD=s3cr3t"}, nil, []string{"A=1", "DB_PASSWORD=s3cr3t"}, nil},
		{"secret taken out", []string{"PATH=/bin", "DB_PASSWORD=s3cr3t", "ODD=x"}, labels,
			[]string{"PATH=/bin", "DB_PASSWORD", "ODD=x"}, map[string]spec.SecretRef{"DB_PASSWORD": {FromEnv: "APP_DB_PASSWORD"}}},
		{"value with equals", []string{"DB_PASSWORD=a=b"}, labels, []string{"DB_PASSWORD"}, map[string]spec.SecretRef{"DB_PASSWORD": {FromEnv: "APP_DB_PASSWORD"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, refs := splitSecretEnv(tt.env, tt.labels)
			if !slices.Equal(plain, tt.wantPlain) || !reflect.DeepEqual(refs, tt.wantRefs) {
				t.Errorf("splitSecretEnv = %q, %v; want %q, %v", plain, refs, tt.wantPlain, tt.wantRefs)
			}
			values := map[string]string{}
			for _, e := range tt.env {
				if name, v, _ := strings.Cut(e, "="); tt.wantRefs[name] != (spec.SecretRef{}) {
					values[name] = v
				}
			}
			if back := joinSecretEnv(plain, values); !slices.Equal(back, tt.env) {
				t.Errorf("joinSecretEnv = %q, want the original %q", back, tt.env)
			}
		})
	}
}

// TestRecordKeepsReferences: a snapshot of a container Stagecraft created
// with a secret holds the reference and not the value, anywhere in its JSON.
func TestRecordKeepsReferences(t *testing.T) {
	const value = "s3cr3t-record-test"
	refs := map[string]spec.SecretRef{"DB_PASSWORD": {FromEnv: "APP_DB_PASSWORD"}}
	labels := newLabels(nil, "hello", "img:v1", "r1", 0)
	for k, v := range secretLabels(refs) {
		labels[k] = v
	}
	in, err := record(container.InspectResponse{
		Name:       "/hello-r1-0",
		Config:     &container.Config{Image: "img:v1", Env: []string{"GREETING=hi", "DB_PASSWORD=" + value}, Labels: labels},
		HostConfig: &container.HostConfig{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in.Docker.Env, []string{"GREETING=hi", "DB_PASSWORD"}) || !reflect.DeepEqual(in.Docker.SecretEnv, refs) {
		t.Errorf("env %q secretEnv %v", in.Docker.Env, in.Docker.SecretEnv)
	}
	b, _ := json.Marshal(platform.Snapshot{Service: "hello", Instances: []platform.Instance{in}})
	if strings.Contains(string(b), value) {
		t.Errorf("snapshot holds the value: %s", b)
	}
	if !strings.Contains(string(b), `"secretEnv":{"DB_PASSWORD":{"fromEnv":"APP_DB_PASSWORD"}}`) {
		t.Errorf("snapshot lacks the reference: %s", b)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("tok-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STAGECRAFT_TEST_SECRET", "env-value")
	got, err := resolveAll(nil, map[string]spec.SecretRef{
		"A": {FromEnv: "STAGECRAFT_TEST_SECRET"},
		"B": {FromFile: file},
	}, specField)
	if err != nil || !reflect.DeepEqual(got, map[string]string{"A": "env-value", "B": "tok-value"}) {
		t.Fatalf("resolveAll = %v, %v", got, err)
	}

	_, err = resolveAll(nil, map[string]spec.SecretRef{
		"A": {FromEnv: "STAGECRAFT_TEST_UNSET"},
		"B": {FromFile: filepath.Join(dir, "missing")},
		"C": {FromFile: dir},
	}, specField)
	if err == nil {
		t.Fatal("unresolvable references resolved")
	}
	msg := err.Error()
	for _, want := range []string{
		`platform.docker.secretEnv.A: environment variable "STAGECRAFT_TEST_UNSET" not found on the worker`,
		`platform.docker.secretEnv.B: file "` + filepath.Join(dir, "missing") + `" not found on the worker: cannot read it: no such file or directory`,
		`platform.docker.secretEnv.C: file "` + dir + `" not found on the worker: cannot read it: is a directory`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	var tnf *platform.TargetNotFoundError
	if !errors.As(fmt.Errorf("snapshot docker:hello: %w", err), &tnf) {
		t.Errorf("error %v is not a TargetNotFoundError (non-retryable)", err)
	}
}

func TestRedact(t *testing.T) {
	base := errors.New("plain failure")
	if got := redact(base, []string{"s3cr3t"}); got != base {
		t.Errorf("an error without a value was replaced: %v", got)
	}
	err := fmt.Errorf("create container %q: %w", "x", errors.New("bad env DB=s3cr3t-long and s3cr3t"))
	got := redact(err, []string{"s3cr3t", "s3cr3t-long", ""})
	if want := `create container "x": bad env DB=[secret] and [secret]`; got.Error() != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
	if errors.Unwrap(got) != nil {
		t.Error("a redacted error keeps its chain, whose text holds the value")
	}
}

// TestContainersGetValues: a new instance gets the resolved values and the
// labels naming the references; a snapshot instance gets its plain env and
// its references resolved again.
func TestContainersGetValues(t *testing.T) {
	refs := map[string]spec.SecretRef{"DB_PASSWORD": {FromEnv: "APP_DB_PASSWORD"}}
	c := &convergence{
		spec:    spec.Spec{Service: "hello", Image: "img:v2"},
		docker:  spec.Docker{Network: "stagecraft", Env: map[string]string{"GREETING": "hi"}, SecretEnv: refs},
		rollout: "r1",
		secrets: map[string]string{"DB_PASSWORD": "s3cr3t"},
		oldSecrets: map[string]map[string]string{
			"hello-old": {"DB_PASSWORD": "old-s3cr3t"},
		},
	}
	opts := c.newContainer(want{name: "hello-r1-0", isNew: true})
	if !slices.Equal(opts.Config.Env, []string{"DB_PASSWORD=s3cr3t", "GREETING=hi"}) {
		t.Errorf("new env = %q", opts.Config.Env)
	}
	if got := opts.Config.Labels["stagecraft.secretenv.DB_PASSWORD"]; got != "fromEnv:APP_DB_PASSWORD" {
		t.Errorf("new label = %q", got)
	}
	old := &platform.Instance{Name: "hello-old", Image: "img:v1", Docker: &platform.DockerInstance{
		Env: []string{"DB_PASSWORD", "GREETING=hi"}, SecretEnv: refs, Labels: secretLabels(refs),
	}}
	opts, _, err := c.oldContainer(want{name: "hello-old", inst: old})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opts.Config.Env, []string{"DB_PASSWORD=old-s3cr3t", "GREETING=hi"}) {
		t.Errorf("recreated env = %q", opts.Config.Env)
	}
	if !slices.Equal(old.Docker.Env, []string{"DB_PASSWORD", "GREETING=hi"}) {
		t.Errorf("the snapshot record changed: %q", old.Docker.Env)
	}
}

func TestSecretValuesOfAContainer(t *testing.T) {
	env := []string{"PATH=/bin", "DB_PASSWORD=s3cret", "EMPTY=", "API=tok"}
	labels := map[string]string{labelSecretEnvPrefix + "DB_PASSWORD": "fromEnv:APP_DB", labelSecretEnvPrefix + "API": "fromFile:/run/a",
		labelSecretEnvPrefix + "EMPTY": "fromEnv:APP_E"}
	got := secretValues(env, labels)
	if !slices.Equal(got, []string{"s3cret", "tok"}) {
		t.Fatalf("secretValues = %v", got)
	}
}
