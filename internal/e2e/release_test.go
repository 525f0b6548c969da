//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
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

func runRelease(t *testing.T, r spec.Release) api.ReleaseStatus {
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
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, api.ReadyWithWarnings, res.Readiness)
		require.NotNil(t, res.Integration)
		for _, s := range res.Services {
			require.Equal(t, api.ServiceSucceeded, s.State, s.Name)
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
		require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.Contains(t, res.Error, "service api")
		states := map[string]string{}
		for _, s := range res.Services {
			states[s.Name] = s.State
		}
		require.Equal(t, map[string]string{"db-migrator": api.ServiceRolledBack, "api": api.ServiceFailed, "web": api.ServiceNotStarted}, states)
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
		require.Equal(t, api.OutcomeRejected, res.Outcome)
		require.Len(t, res.Problems, 1)
		require.Contains(t, res.Problems[0], "service api:")
		require.Contains(t, res.Problems[0], "stagecraft-demo:v9-missing")
		for _, name := range []string{"db-migrator", "api", "web"} {
			require.Equal(t, before[name], instances(t, r.Name+"-"+name), "%s untouched", name)
		}
	})
	t.Run("an old running dependency and a service that does not fit are found before anything starts", func(t *testing.T) {
		r, before := threeTierRelease(t, "stagecraft-demo:v2")
		// api requires a service outside the release, running v1.
		external := itest.Name("rel-ext")
		cleanup(t, external)
		installV1(t, external)
		r.Services[1].Requires = []spec.Requirement{{Service: external, Version: ">= 2", Platform: &spec.Platform{Docker: &spec.Docker{}}}}
		// web's containers would each take more memory than the engine has.
		r.Services[2].Deploy.Platform.Docker.Resources = &spec.Resources{Memory: "4Ti"}
		res := runRelease(t, r)
		require.Equal(t, api.OutcomeRejected, res.Outcome)
		require.Len(t, res.Problems, 2, "%q", res.Problems)
		require.Contains(t, res.Problems[0], "service api: ")
		require.Contains(t, res.Problems[0], `does not satisfy ">= 2"`)
		require.Contains(t, res.Problems[1], "service web: ")
		require.Contains(t, res.Problems[1], "memory")
		t.Logf("problems: %q", res.Problems)
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
		run, err := tc.ExecuteWorkflow(ctx, clientStart(r.WithDefaults().WorkflowID()), api.ReleaseWorkflow, r)
		require.NoError(t, err)
		var res api.ReleaseStatus
		require.NoError(t, control.Result(ctx, run, &res))
		require.Equal(t, api.OutcomeRejected, res.Outcome)
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
		},
			Config:   map[string]string{"GREETING": "hello", "LOG_LEVEL": "info"},
			Profiles: map[string]spec.Profile{"e2e": {Services: map[string]map[string]string{"web": {"LOG_LEVEL": "debug"}}}},
		}
		return r.WithDefaults(), apiNS, webNS, dbBefore
	}
	configMaps := func(t *testing.T, ns string) map[string]map[string]string {
		list, err := cs.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
		require.NoError(t, err)
		out := map[string]map[string]string{}
		for _, cm := range list.Items {
			if strings.HasPrefix(cm.Name, "web-config-") {
				out[cm.Name] = cm.Data
			}
		}
		return out
	}
	envFrom := func(t *testing.T, ns string) []string {
		d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		var out []string
		for _, e := range d.Spec.Template.Spec.Containers[0].EnvFrom {
			out = append(out, e.ConfigMapRef.Name)
		}
		return out
	}
	t.Run("succeeds", func(t *testing.T) {
		r, apiNS, webNS, _ := build(t, "demo:v2")
		apiConfig := map[string]string{"GREETING": "hello", "LOG_LEVEL": "info"}
		webConfig := map[string]string{"GREETING": "hello", "LOG_LEVEL": "debug"}
		res := runRelease(t, r)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, cs, apiNS))
		require.Equal(t, map[string]string{"web": "demo:v2 x4 ready 4"}, deployments(t, cs, webNS))
		for _, in := range instances(t, r.Name+"-db-migrator") {
			require.Equal(t, "stagecraft-demo:v2", in.Image)
		}
		// Preparation wrote each Kubernetes service's configuration as an
		// immutable ConfigMap, and the new version's pods take it.
		apiCM, webCM := spec.ConfigMapName("web", apiConfig), spec.ConfigMapName("web", webConfig)
		require.Equal(t, map[string]map[string]string{apiCM: apiConfig}, configMaps(t, apiNS))
		require.Equal(t, map[string]map[string]string{webCM: webConfig}, configMaps(t, webNS))
		require.Equal(t, []string{apiCM}, envFrom(t, apiNS))
		require.Equal(t, []string{webCM}, envFrom(t, webNS))
		cm, err := cs.CoreV1().ConfigMaps(webNS).Get(context.Background(), webCM, metav1.GetOptions{})
		require.NoError(t, err)
		require.True(t, *cm.Immutable)
		require.Equal(t, r.WorkflowID(), cm.Annotations["stagecraft.io/release"])
		require.Len(t, res.Config, 2)
		require.True(t, res.Config[0].Created)
		require.Empty(t, res.Config[0].Previous, "the pods used no release configuration before")
	})
	t.Run("a failed preparation removes what it wrote and starts nothing", func(t *testing.T) {
		r, apiNS, webNS, dbBefore := build(t, "demo:v2")
		// A hand-made object holds web's ConfigMap name with other data.
		webCM := spec.ConfigMapName("web", map[string]string{"GREETING": "hello", "LOG_LEVEL": "debug"})
		_, err := cs.CoreV1().ConfigMaps(webNS).Create(context.Background(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: webCM}, Data: map[string]string{"SOMETHING": "else"}}, metav1.CreateOptions{})
		require.NoError(t, err)
		apiBefore, err := cs.AppsV1().Deployments(apiNS).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		res := runRelease(t, r)
		require.Equal(t, api.OutcomeRolledBack, res.Outcome)
		require.Contains(t, res.Error, "preparation: ")
		require.Contains(t, res.Error, "exists with other data")
		require.Empty(t, configMaps(t, apiNS), "api's ConfigMap, written first, is removed again")
		require.Equal(t, map[string]map[string]string{webCM: {"SOMETHING": "else"}}, configMaps(t, webNS), "the hand-made one is left alone")
		apiAfter, err := cs.AppsV1().Deployments(apiNS).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, apiBefore.Generation, apiAfter.Generation, "no service started")
		require.Equal(t, dbBefore, instances(t, r.Name+"-db-migrator"))
	})
	t.Run("a failing api rolls db-migrator back and never touches web", func(t *testing.T) {
		r, apiNS, webNS, dbBefore := build(t, badImage)
		webBefore, err := cs.AppsV1().Deployments(webNS).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		res := runRelease(t, r)
		require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
		require.Equal(t, []string{"db-migrator"}, res.RollbackOrder)
		require.Equal(t, map[string]string{"web": "demo:v1 x4 ready 4"}, deployments(t, cs, apiNS), "api restored")
		webAfter, err := cs.AppsV1().Deployments(webNS).Get(context.Background(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, webBefore.Generation, webAfter.Generation, "web's Deployment never changed")
		require.Equal(t, imagesOf(dbBefore), imagesOf(instances(t, r.Name+"-db-migrator")), "db-migrator back at v1")
		// The configuration the release prepared is gone, after the services.
		require.Empty(t, configMaps(t, apiNS))
		require.Empty(t, configMaps(t, webNS))
		require.Empty(t, envFrom(t, apiNS), "api's pods are back on their old environment")
		for _, c := range res.Config {
			require.True(t, c.Removed, c.Service)
		}
	})
}

// TestReleaseAuditedAndNotified: a release whose api fails, on a worker
// with a real PostgreSQL audit store, tells a webhook receiver on 127.0.0.1
// exactly once per event and leaves its own trail beside its rollouts'.
func TestReleaseAuditedAndNotified(t *testing.T) {
	_, st := auditStore(t)
	itest.StartWorkerWith(t, tc, dc, itest.WorkerConfig{Store: st})
	var mu sync.Mutex
	var got []notify.Event
	keys := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev notify.Event
		if err := json.NewDecoder(req.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
		keys[req.Header.Get("Idempotency-Key")]++
	}))
	t.Cleanup(hook.Close)

	r, before := threeTierRelease(t, "stagecraft-demo:v2-bad")
	r.Notifications = []spec.Notification{{Name: "ops", Webhook: hook.URL + "/stagecraft"}}
	res := runRelease(t, r)
	require.Equal(t, api.OutcomeRolledBack, res.Outcome, res.Error)
	require.Equal(t, imagesOf(before["db-migrator"]), imagesOf(instances(t, r.Name+"-db-migrator")))

	mu.Lock()
	var kinds []string
	for _, ev := range got {
		kinds = append(kinds, ev.Kind)
	}
	require.Equal(t, []string{spec.EventStarted, spec.EventRolledBack}, kinds, "one message per event, none per check round")
	for k, n := range keys {
		require.Equal(t, 1, n, k)
	}
	last := got[len(got)-1]
	mu.Unlock()
	require.Equal(t, r.WorkflowID(), last.WorkflowID)
	require.Equal(t, res.Error, last.Reason)
	require.Len(t, last.Services, 3)
	require.Equal(t, notify.ServiceOutcome{Name: "web", State: api.ServiceNotStarted}, last.Services[2])

	tr, err := st.Trail(context.Background(), res.WorkflowID, res.RunID)
	require.NoError(t, err)
	require.Equal(t, "release", tr.Plan.Strategy)
	require.Equal(t, "rolled_back", tr.Plan.Status)
	require.Equal(t, control.Identity(), tr.Plan.StartedBy, "who started the release (StartRelease names the caller's user@host)")
	require.Equal(t, control.Identity(), res.StartedBy)
	require.True(t, tr.Plan.RolledBack)
	require.Len(t, tr.Stages, 3)
	var trail []string
	for i, e := range tr.Events {
		require.Equal(t, int64(i+1), e.Seq, "events are numbered without gaps")
		switch e.Kind {
		case audit.KindService:
			trail = append(trail, e.Action+" "+e.From+"→"+e.To)
		case audit.KindPhase, audit.KindOutcome:
			trail = append(trail, e.Kind+" "+e.To)
		}
	}
	t.Logf("release trail: %d events, %d stages", len(tr.Events), len(tr.Stages))
	joined := strings.Join(trail, "\n")
	for _, want := range []string{"phase prerequisites", "phase activating", "db-migrator running→ready", "api running→failed",
		"phase rolling_back", "db-migrator ready→rolled_back", "web pending→not_started", "outcome rolled_back"} {
		require.Contains(t, joined, want)
	}
	// Each service's rollout keeps its own trail too.
	for _, s := range res.Services {
		if s.RunID == "" {
			continue
		}
		child, err := st.Trail(context.Background(), s.WorkflowID, s.RunID)
		require.NoError(t, err, s.Name)
		require.NotEmpty(t, child.Events, s.Name)
		require.Equal(t, control.Identity()+" ("+res.WorkflowID+")", child.Plan.StartedBy, "%s's rollout: started by who started the release, through it", s.Name)
	}
}
