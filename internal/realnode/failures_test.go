//go:build integration

package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// nodeImage makes image (a new tag, removed from the Docker engine at the
// test's end) from base with env added to its configuration, and imports
// it into the real node's containerd, as scripts/kube/node.sh imports the
// demo images: nothing is pulled. The demo app reads its failure knobs
// from the environment, so a version that crashes or never turns ready is
// the demo binary with a variable set.
func nodeImage(t *testing.T, image, base string, env ...string) {
	t.Helper()
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		require.NoError(t, err, "%s %s: %s", name, strings.Join(args, " "), out)
		return strings.TrimSpace(string(out))
	}
	id := run("docker", "create", base)
	defer run("docker", "rm", id)
	args := []string{"commit"}
	for _, e := range env {
		args = append(args, "--change", "ENV "+e)
	}
	run("docker", append(args, id, image)...)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", image).Run() })
	sock := filepath.Join(filepath.Dir(kubeconfigPath), "node", "containerd.sock")
	run("bash", "-c", fmt.Sprintf("set -o pipefail; docker save %q | ctr -a %q -n k8s.io images import -", image, sock))
}

// hooks receives a rollout's notifications (webhook JSON), by workflow ID.
type hooks struct {
	mu     sync.Mutex
	events map[string][]notify.Event
}

func newHooks(t *testing.T) (*hooks, string) {
	h := &hooks{events: map[string][]notify.Event{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e notify.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err == nil {
			h.mu.Lock()
			h.events[e.WorkflowID] = append(h.events[e.WorkflowID], e)
			h.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL + "/stagecraft"
}

// event is workflowID's notification of kind, once it has come.
func (h *hooks) event(t *testing.T, workflowID, kind string) notify.Event {
	t.Helper()
	var found notify.Event
	itest.Eventually(t, 30*time.Second, kind+" notification", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events[workflowID] {
			if e.Kind == kind {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// TestRealNodeFailuresAreNamedFast runs canaries, through the real workflow
// and activities, of versions that cannot run on the real node, each with
// the spec's progress deadline at 10 min, and requires each to end
// rolled_back within 3 min (so a wait that sat out the deadline fails the
// test), the stable Deployment back on v1, with the cause named in the
// status, in the failed stage's record (what the audit trail writes) and
// in the failed and rolled_back notifications:
//   - a missing image (registry.invalid/…): ErrImagePull, at once;
//   - a crash loop (the demo app exits on an invalid ERROR_RATE): after 3
//     restarts, with the exit code and the app's last words (the template's
//     terminationMessagePolicy is FallbackToLogsOnError);
//   - pods that do not fit (each pod requests 40% of the node's CPU, so the
//     canary's third does not): Unschedulable for 30 s, with the scheduler's
//     message;
//   - readiness never reached (the app's /healthz answers 500 from the
//     start): here the progress deadline is the verdict, so the spec's is
//     20 s, and the error carries the readiness probe's last message.
func TestRealNodeFailuresAreNamedFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel) // the parallel subtests run after this function returns
	srv, err := itest.DevServer(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()
	itest.StartKubeWorker(t, c, forwardingPlatform(t))
	hk, hook := newHooks(t)

	suffix := fmt.Sprintf("-%d", os.Getpid())
	crash, unready := "stagecraft-demo:v2-crash"+suffix, "stagecraft-demo:v2-unready"+suffix
	nodeImage(t, crash, "stagecraft-demo:v2", "ERROR_RATE=oops")
	nodeImage(t, unready, "stagecraft-demo:v2", "FAIL_AFTER=0")

	node, err := cs.CoreV1().Nodes().Get(ctx, "localhost", metav1.GetOptions{})
	require.NoError(t, err)
	cpu := node.Status.Allocatable[corev1.ResourceCPU]

	cases := []struct {
		name     string
		image    string
		deadline time.Duration
		mutate   func(*appsv1.Deployment)
		want     []string
	}{
		{"missing image", "registry.invalid/stagecraft-demo:v2", 10 * time.Minute, nil,
			[]string{`cannot pull image "registry.invalid/stagecraft-demo:v2": ErrImagePull`}},
		{"crash loop", crash, 10 * time.Minute, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
		}, []string{"is crash-looping: container \"app\" restarted 3 times", "last exit code 1 (Error)", `ERROR_RATE: want a number from 0 to 1, got "oops"`}},
		{"unschedulable", "stagecraft-demo:v2", 10 * time.Minute, func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{
				corev1.ResourceCPU: *resource.NewMilliQuantity(cpu.MilliValue()*2/5, resource.DecimalSI)}
		}, []string{"cannot be scheduled (Unschedulable for 30s)", "Insufficient cpu"}},
		{"readiness never reached", unready, 20 * time.Second, nil,
			[]string{"ProgressDeadlineExceeded", "is not ready: Readiness probe failed: probe http://127.0.0.1:8080/healthz: 500 Internal Server Error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mutate []func(*appsv1.Deployment)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			ns := webTarget(t, "fail", 2, mutate...)
			s := webSpec(ns, kubeconfigPath, tc.image)
			s.Platform.Kubernetes.ProgressDeadline = spec.Duration(tc.deadline)
			s.Notifications = []spec.Notification{{Name: "ops", Webhook: hook, Events: []string{spec.EventFailed, spec.EventRolledBack}}}
			start := time.Now()
			started, err := control.Start(ctx, c, s)
			require.NoError(t, err)
			// Bounded well below the 10 min deadline: a wait that sits it
			// out fails here.
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
			defer wcancel()
			res, err := control.Wait(wctx, c, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
			require.NoError(t, err, "no outcome within 3 min: the failure was not detected")
			took := time.Since(start)
			require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)

			var failed *api.StageRecord
			for i := range res.Stages {
				if res.Stages[i].Error != "" {
					failed = &res.Stages[i]
				}
			}
			require.NotNil(t, failed, "a stage records the failure")
			require.NotNil(t, failed.StartedAt)
			require.NotNil(t, failed.CompletedAt)
			stageTook := failed.CompletedAt.Sub(*failed.StartedAt)
			failedNote := hk.event(t, started.WorkflowID, spec.EventFailed)
			rolledBackNote := hk.event(t, started.WorkflowID, spec.EventRolledBack)
			for _, w := range tc.want {
				require.Contains(t, res.Error, w, "status")
				require.Contains(t, failed.Error, w, "stage record (audit trail)")
				require.Contains(t, failedNote.Reason, w, "failed notification")
				require.Contains(t, rolledBackNote.Reason, w, "rolled_back notification")
			}
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, "stagecraft-demo:v1", d.Spec.Template.Spec.Containers[0].Image)
			t.Logf("%s: %s, stage %d failed %s after it started (spec deadline %s), outcome in %s: %s",
				tc.name, res.Outcome, failed.Index, stageTook.Round(100*time.Millisecond), tc.deadline, took.Round(100*time.Millisecond), res.Error)
		})
	}
}
