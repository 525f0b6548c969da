//go:build integration

package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// threeTierRelease is db-migrator → api → web on Docker, each installed at
// v1 first, moving to image (web and db-migrator to v2 always; api to
// apiImage).
func threeTierRelease(t *testing.T, apiImage string) (spec.Release, map[string][]instance) {
	t.Helper()
	name := itest.Name("rel")
	r := spec.Release{Name: name, Environment: "e2e"}
	before := map[string][]instance{}
	for _, svc := range []struct {
		name, image, strategy string
		deps                  []string
	}{
		{"db-migrator", "stagecraft-demo:v2", spec.Recreate, nil},
		{"api", apiImage, spec.Rolling, []string{"db-migrator"}},
		{"web", "stagecraft-demo:v2", spec.Canary, []string{"api"}},
	} {
		service := name + "-" + svc.name
		cleanup(t, service)
		before[svc.name] = installV1(t, service)
		d := demoSpec(service, svc.image, svc.strategy, 3)
		r.Services = append(r.Services, spec.ReleaseService{Name: svc.name, DependsOn: svc.deps, Deploy: d})
	}
	return r.WithDefaults(), before
}

func runRelease(t *testing.T, r spec.Release) workflows.ReleaseStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	started, err := control.StartRelease(ctx, tc, r)
	require.NoError(t, err)
	res, err := control.WaitRelease(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err)
	recordNamed(t, started.WorkflowID, started.RunID, "release-"+string(res.Outcome))
	return res
}

// TestReleaseOnDocker: db-migrator → api → web succeeds; with a failing api,
// web never starts and db-migrator is restored to v1.
func TestReleaseOnDocker(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	t.Run("succeeds", func(t *testing.T) {
		r, _ := threeTierRelease(t, "stagecraft-demo:v2")
		// Integration: a cross-service endpoint answers; readiness: the
		// monitoring criterion holds, the documentation one (a warning) not.
		flow, _ := sloServer(t, func(int64) bool { return false })
		docs, _ := sloServer(t, func(int64) bool { return true })
		r.Integration = &spec.Integration{Checks: []spec.Check{{Name: "checkout-flow", HTTP: &spec.HTTPCheck{URL: flow}}}}
		r.Readiness = []spec.Criterion{
			{Check: spec.Check{Name: "dashboards", HTTP: &spec.HTTPCheck{URL: flow}}, Category: "monitoring", Severity: spec.SeverityCritical},
			{Check: spec.Check{Name: "runbook", HTTP: &spec.HTTPCheck{URL: docs}}, Category: "documentation", Severity: spec.SeverityWarning},
		}
		r = r.WithDefaults()
		res := runRelease(t, r)
		require.Equal(t, workflows.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, workflows.ReadyWithWarnings, res.Readiness)
		require.NotNil(t, res.Integration)
		for _, s := range res.Services {
			require.Equal(t, workflows.ServiceSucceeded, s.State, s.Name)
			// Each child's history (held for the release, then committed) replays.
			recordNamed(t, s.WorkflowID, s.RunID, "release-child-"+s.Name+"-succeeded")
			for _, in := range instances(t, r.Name+"-"+s.Name) {
				require.Equal(t, "stagecraft-demo:v2", in.Image, s.Name)
			}
		}
	})
	t.Run("a failing api never starts web and restores db-migrator", func(t *testing.T) {
		r, before := threeTierRelease(t, "stagecraft-demo:v2-bad")
		res := runRelease(t, r)
		require.Equal(t, workflows.OutcomeRolledBack, res.Outcome, res.Error)
		require.Contains(t, res.Error, "service api")
		states := map[string]string{}
		for _, s := range res.Services {
			states[s.Name] = s.State
		}
		require.Equal(t, map[string]string{"db-migrator": workflows.ServiceRolledBack, "api": workflows.ServiceFailed, "web": workflows.ServiceNotStarted}, states)
		require.Equal(t, []string{"db-migrator"}, res.RollbackOrder)
		for _, s := range res.Services {
			if s.RunID != "" {
				recordNamed(t, s.WorkflowID, s.RunID, "release-child-"+s.Name+"-"+s.State)
			}
		}
		for _, name := range []string{"db-migrator", "api", "web"} {
			require.Equal(t, imagesOf(before[name]), imagesOf(instances(t, r.Name+"-"+name)), "%s back at v1", name)
		}
		// web was never touched: the same containers as before.
		require.Equal(t, before["web"], instances(t, r.Name+"-web"))
	})
	t.Run("a missing image is found before anything starts", func(t *testing.T) {
		r, before := threeTierRelease(t, "stagecraft-demo:v9-missing")
		res := runRelease(t, r)
		require.Equal(t, workflows.OutcomeRejected, res.Outcome)
		require.Len(t, res.Problems, 1)
		require.Contains(t, res.Problems[0], "service api:")
		require.Contains(t, res.Problems[0], "stagecraft-demo:v9-missing")
		for _, name := range []string{"db-migrator", "api", "web"} {
			require.Equal(t, before[name], instances(t, r.Name+"-"+name), "%s untouched", name)
		}
	})
	t.Run("a cyclic release is rejected with nothing started", func(t *testing.T) {
		name := itest.Name("rel")
		d := demoSpec(name+"-a", "stagecraft-demo:v2", spec.Recreate, 1)
		e := demoSpec(name+"-b", "stagecraft-demo:v2", spec.Recreate, 1)
		cleanup(t, d.Service)
		cleanup(t, e.Service)
		r := spec.Release{Name: name, Environment: "e2e", Services: []spec.ReleaseService{
			{Name: "a", DependsOn: []string{"b"}, Deploy: d}, {Name: "b", DependsOn: []string{"a"}, Deploy: e}}}
		_, err := control.StartRelease(context.Background(), tc, r)
		require.ErrorContains(t, err, "dependency cycle: a → b → a", "the client refuses it")
		// Started anyway (any Temporal client can), the workflow rejects it.
		ctx := context.Background()
		run, err := tc.ExecuteWorkflow(ctx, clientStart(r.WithDefaults().WorkflowID()), workflows.ReleaseWorkflow, r)
		require.NoError(t, err)
		var res workflows.ReleaseStatus
		require.NoError(t, run.Get(ctx, &res))
		require.Equal(t, workflows.OutcomeRejected, res.Outcome)
		require.Contains(t, res.Error, "dependency cycle")
		require.Empty(t, instances(t, d.Service))
		require.Empty(t, instances(t, e.Service))
	})
}

// TestReleaseAcrossDockerAndKubernetes: db-migrator on Docker, api and web
// on the real Kubernetes control plane. The release succeeds; with a bad api
// image, web's Deployment is never touched and db-migrator is restored.
func TestReleaseAcrossDockerAndKubernetes(t *testing.T) {
	itest.StartWorker(t, tc, dc)
	cs := kubeClient(t, kubeconfig)
	build := func(t *testing.T, apiImage string) (spec.Release, string, string, []instance) {
		name := itest.Name("relk")
		dbService := name + "-db-migrator"
		cleanup(t, dbService)
		dbBefore := installV1(t, dbService)
		apiNS, webNS := kubeTarget(t, cs), kubeTarget(t, cs)
		api := kubeSpec(apiNS, kubeconfig, spec.Canary, healthServer(t, cs, apiNS))
		api.Image = apiImage
		web := kubeSpec(webNS, kubeconfig, spec.Rolling, healthServer(t, cs, webNS))
		r := spec.Release{Name: name, Environment: "e2e", Services: []spec.ReleaseService{
			{Name: "db-migrator", Deploy: demoSpec(dbService, "stagecraft-demo:v2", spec.Recreate, 3)},
			{Name: "api", DependsOn: []string{"db-migrator"}, Deploy: api},
			{Name: "web", DependsOn: []string{"api"}, Deploy: web},
		}}
		return r.WithDefaults(), apiNS, webNS, dbBefore
	}
	t.Run("succeeds", func(t *testing.T) {
		r, apiNS, webNS, _ := build(t, "demo:v2")
		res := runRelease(t, r)
		require.Equal(t, workflows.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, cs, apiNS))
		require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, cs, webNS))
		for _, in := range instances(t, r.Name+"-db-migrator") {
			require.Equal(t, "stagecraft-demo:v2", in.Image)
		}
	})
	t.Run("a failing api rolls db-migrator back and never touches web", func(t *testing.T) {
		r, apiNS, webNS, dbBefore := build(t, badImage)
		webBefore, err := cs.AppsV1().Deployments(webNS).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		res := runRelease(t, r)
		require.Equal(t, workflows.OutcomeRolledBack, res.Outcome, res.Error)
		require.Equal(t, []string{"db-migrator"}, res.RollbackOrder)
		require.Equal(t, map[string]string{"web": "demo:v1 x4 ready 4"}, deployments(t, cs, apiNS), "api restored")
		webAfter, err := cs.AppsV1().Deployments(webNS).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, webBefore.Generation, webAfter.Generation, "web's Deployment never changed")
		require.Equal(t, imagesOf(dbBefore), imagesOf(instances(t, r.Name+"-db-migrator")), "db-migrator back at v1")
	})
}
