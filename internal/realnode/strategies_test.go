//go:build integration

package realnode

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestRealNodeEveryStrategy: on pods that really run, blue-green, rolling
// and recreate each take v2 all the way (the user's own Deployment left
// running v2, every pod ready, nothing of the rollout's left), and each
// rolls v2-bad back from a failing per-pod check to v1, verified on the
// restored pods. (The canary's pair is TestRealNodeCanaryRolloutThroughPortForward.)
func TestRealNodeEveryStrategy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel) // the parallel subtests run after this function returns
	srv, err := itest.DevServer(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()
	itest.StartKubeWorker(t, c, forwardingPlatform(t))

	for _, strategy := range []string{spec.BlueGreen, spec.Rolling, spec.Recreate} {
		for _, image := range []string{"stagecraft-demo:v2", "stagecraft-demo:v2-bad"} {
			t.Run(strategy+"/"+image, func(t *testing.T) {
				t.Parallel()
				ns := webTarget(t, "strat", 2)
				s := webSpec(ns, kubeconfigPath, image)
				s.Strategy = spec.Strategy{Type: strategy, Bake: spec.Duration(5 * time.Second)}
				if strategy == spec.BlueGreen {
					s.Strategy = spec.Strategy{Type: strategy, BakeBeforeSwitch: spec.Duration(5 * time.Second), BakeAfterSwitch: spec.Duration(5 * time.Second)}
				}
				s = s.WithDefaults()
				start := time.Now()
				started, err := control.Start(ctx, c, s)
				require.NoError(t, err)
				res, err := control.Wait(ctx, c, started.WorkflowID, started.RunID, 200*time.Millisecond, nil)
				require.NoError(t, err)
				t.Logf("%s %s: %s in %s: %s", strategy, image, res.Outcome, time.Since(start).Round(time.Millisecond), res.Error)

				d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
				require.NoError(t, err)
				want := "stagecraft-demo:v2"
				if image == "stagecraft-demo:v2-bad" {
					require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
					require.Contains(t, res.Error, "healthz")
					require.True(t, res.Rollback.Verified, res.Rollback.Error)
					want = "stagecraft-demo:v1"
				} else {
					require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
				}
				require.Equal(t, want, d.Spec.Template.Spec.Containers[0].Image)
				itest.Eventually(t, time.Minute, "web runs "+want+" on every pod", func() bool {
					return rolledOut(ctx, ns, "web", 2) && len(readyPods(t, ctx, ns, want)) == 2
				})
				list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
				require.NoError(t, err)
				require.Len(t, list.Items, 1, "nothing of the rollout's is left")
				svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
				require.NoError(t, err)
				require.Equal(t, map[string]string{"app": "web"}, svc.Spec.Selector)
			})
		}
	}
}
