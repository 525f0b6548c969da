//go:build integration

package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSpecsNameClustersTheWorkerKnows runs the worker binary with
// --cluster plane=KUBECONFIG on a real control plane (KWOK node) and dev
// server (review finding 20): a spec naming the cluster rolls out, under a
// workflow ID that carries the cluster; a spec naming a kubeconfig path of
// its own, or a cluster the worker does not know, is rejected before
// anything changes, naming the field.
func TestSpecsNameClustersTheWorkerKnows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := itest.Build(t.TempDir(), "worker")
	require.NoError(t, err)
	kubeconfig, stop, err := itest.KubePlane()
	require.NoError(t, err)
	defer stop()
	cs := itest.KubeClient(t, kubeconfig)
	ns := itest.KubeWeb(t, cs, "cluster", "demo:v1", 2, nil)

	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	defer func() { _ = server.Stop() }()
	tc := server.Client()

	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) }))
	defer health.Close()

	var logs bytes.Buffer
	w := exec.Command(bin, "--address", server.FrontendHostPort(), "--cluster", "plane="+kubeconfig)
	w.Stdout, w.Stderr = &logs, &logs
	require.NoError(t, w.Start())
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()

	run := func(s spec.Spec) (control.Started, api.Result) {
		t.Helper()
		started, err := control.Start(ctx, tc, s)
		require.NoError(t, err)
		res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
		require.NoError(t, err, "worker log:\n%s", logs.String())
		return started, res
	}
	image := func() string {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		return d.Spec.Template.Spec.Containers[0].Image
	}

	named := itest.KubeSpec(ns, "", spec.Recreate, "demo:v2", health.URL+"/healthz")
	named.Platform.Kubernetes.Cluster = "plane"
	started, res := run(named)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.Equal(t, "deploy:k8s:plane/"+ns+"/web", started.WorkflowID)
	require.Equal(t, "demo:v2", image())

	for _, tt := range []struct {
		mutate func(*spec.Kubernetes)
		want   string
	}{
		{func(k *spec.Kubernetes) { k.Kubeconfig = kubeconfig }, "platform.kubernetes.kubeconfig/context: this worker takes clusters by name"},
		{func(k *spec.Kubernetes) { k.Cluster = "elsewhere" }, `platform.kubernetes.cluster: "elsewhere" is not a cluster this worker knows (it knows plane`},
	} {
		s := itest.KubeSpec(ns, "", spec.Recreate, "demo:v1", health.URL+"/healthz")
		tt.mutate(s.Platform.Kubernetes)
		_, res := run(s)
		require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
		require.Contains(t, res.Error, tt.want)
		require.Equal(t, "demo:v2", image(), "a rejected rollout changed the Deployment")
	}
}
