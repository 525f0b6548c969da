//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSecretReferencesStayInTheWorkersScope runs the worker binary with
// --secret-env-prefix APP_ and --secret-dir on a real dev server and Docker
// engine (review finding 5): a spec reading an allowed variable and file
// rolls out with them; specs reading the worker's own Temporal setting,
// its environment through /proc, or a variable outside the prefix are
// rejected before anything changes, naming the field; and a container
// that prints what it was given and exits leaves that output in the
// worker's log, not in the rollout's error.
func TestSecretReferencesStayInTheWorkersScope(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := itest.Build(dir, "worker")
	require.NoError(t, err)
	secretDir := filepath.Join(dir, "secrets")
	require.NoError(t, os.Mkdir(secretDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, "api"), []byte("api-token-planted\n"), 0o600))

	out, err := exec.Command(bin, "--address", "127.0.0.1:1", "--secret-env-prefix", "TEMPORAL_").CombinedOutput()
	require.Error(t, err, "a worker letting specs read TEMPORAL_* starts:\n%s", out)
	require.Contains(t, string(out), `--secret-env-prefix "TEMPORAL_": would let specs read the worker's own settings`)

	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	defer func() { _ = server.Stop() }()
	tc := server.Client()
	dc, err := itest.Docker()
	require.NoError(t, err)

	var logs bytes.Buffer
	w := exec.Command(bin, "--address", server.FrontendHostPort(), "--secret-env-prefix", "APP_", "--secret-dir", secretDir)
	w.Env = append(os.Environ(), "APP_DB_PASSWORD=db-pass-planted", "PGPASSWORD=worker-key-planted", "OTHER_TOKEN=other-planted")
	w.Stdout, w.Stderr = &logs, &logs
	require.NoError(t, w.Start())
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()

	containers := func(service string) []string {
		list, err := dc.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
		require.NoError(t, err)
		var ids []string
		for _, c := range list.Items {
			ids = append(ids, c.ID)
		}
		return ids
	}
	run := func(s spec.Spec) api.Result {
		t.Helper()
		itest.RemoveService(t, dc, s.Service)
		started, err := control.Start(ctx, tc, s)
		require.NoError(t, err)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(t, err, "worker log:\n%s", logs.String())
		return res
	}

	good := itest.DemoSpec(itest.Name("scoped"), "stagecraft-demo:v1", spec.Recreate, 1)
	good.Platform.Docker.SecretEnv = map[string]spec.SecretRef{
		"DB_PASSWORD": {FromEnv: "APP_DB_PASSWORD"}, "API_TOKEN": {FromFile: filepath.Join(secretDir, "api")}}
	res := run(good)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	ids := containers(good.Service)
	require.Len(t, ids, 1)
	in, err := dc.ContainerInspect(ctx, ids[0], client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.Contains(t, in.Container.Config.Env, "DB_PASSWORD=db-pass-planted")
	require.Contains(t, in.Container.Config.Env, "API_TOKEN=api-token-planted")

	for ref, field := range map[spec.SecretRef]string{
		{FromEnv: "TEMPORAL_API_KEY"}:    "the worker's own settings",
		{FromFile: "/proc/self/environ"}: "/proc is never readable",
		{FromEnv: "OTHER_TOKEN"}:         "allowed prefixes are APP_",
	} {
		bad := itest.DemoSpec(itest.Name("unscoped"), "stagecraft-demo:v1", spec.Recreate, 1)
		bad.Platform.Docker.SecretEnv = map[string]spec.SecretRef{"LEAK": ref}
		res := run(bad)
		require.NotEqual(t, api.OutcomeSucceeded, res.Outcome, "%s", ref)
		require.Contains(t, res.Error, "platform.docker.secretEnv.LEAK", "%s", ref)
		require.Contains(t, res.Error, field, "%s", ref)
		require.Empty(t, containers(bad.Service), "%s: nothing was created", ref)
		for _, v := range []string{"worker-key-planted", "other-planted", "db-pass-planted"} {
			require.NotContains(t, res.Error, v)
		}
	}

	// A container that prints what it was given and exits (the demo app
	// stops on a SLOW_BY that is no duration, quoting it): the rollout
	// fails, and the output is in the worker's log, not in its error.
	leaky := itest.DemoSpec(itest.Name("leaky"), "stagecraft-demo:v1", spec.Recreate, 1)
	leaky.Platform.Docker.SecretEnv = map[string]spec.SecretRef{"SLOW_BY": {FromEnv: "APP_DB_PASSWORD"}}
	res = run(leaky)
	require.NotEqual(t, api.OutcomeSucceeded, res.Outcome)
	require.NotContains(t, res.Error, "invalid duration", "the container's output reached the rollout's error")
	require.NotContains(t, res.Error, "db-pass-planted")
	require.Contains(t, res.Error, "its last output is in the worker's log")
	require.Contains(t, logs.String(), "invalid duration", "the worker's log keeps the output")
	require.NotContains(t, logs.String(), "db-pass-planted", "the worker's log has the value cut out")
}
