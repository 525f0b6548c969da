//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/internal/store"
	"github.com/stagecraft/stagecraft/workflows"
)

// platRig is a dev server of one platform test's own with the worker processes
// it starts. The shared server's task queue is polled by other tests'
// workers (some with failpoints); here only this test's workers run these
// rollouts, so an audited rollout's writes all go to its database.
type platRig struct {
	srv *testsuite.DevServer
	c   tclient.Client
}

func newPlatRig(t *testing.T) *platRig {
	t.Helper()
	srv, err := itest.DevServer(context.Background())
	require.NoError(t, err, "dev server")
	t.Cleanup(func() { _ = srv.Stop() })
	return &platRig{srv: srv, c: srv.Client()}
}

// worker starts a worker process on this platRig's server.
func (r *platRig) worker(t *testing.T, flags ...string) *workerProc {
	return startWorker(t, r.srv.FrontendHostPort(), nil, flags...)
}

func (r *platRig) start(t *testing.T, s spec.Spec) control.Started {
	t.Helper()
	started, err := control.Start(context.Background(), r.c, s)
	require.NoError(t, err)
	return started
}

// wait waits (up to limit) for the run to close and returns its result.
func (r *platRig) wait(t *testing.T, started control.Started, limit time.Duration) api.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	res, err := control.Wait(ctx, r.c, started.WorkflowID, started.RunID, 500*time.Millisecond, nil)
	require.NoError(t, err, "waiting for %s", started.WorkflowID)
	return res
}

func (r *platRig) run(t *testing.T, s spec.Spec) (control.Started, api.Result) {
	t.Helper()
	started := r.start(t, s)
	return started, r.wait(t, started, 4*time.Minute)
}

// waitStage waits until stage is in one of the statuses.
func (r *platRig) waitStage(t *testing.T, workflowID string, stage int, statuses ...api.StageStatus) api.Status {
	t.Helper()
	var st api.Status
	itest.Eventually(t, 2*time.Minute, fmt.Sprintf("%s: stage %d %v", workflowID, stage, statuses), func() bool {
		var err error
		st, err = control.Status(context.Background(), r.c, workflowID)
		return err == nil && len(st.Stages) > stage && slices.Contains(statuses, st.Stages[stage].Status)
	})
	return st
}

// auditBatches decodes the input of every Audit activity the run's history
// scheduled: what the workflow asked the store to keep.
func (r *platRig) auditBatches(t *testing.T, started control.Started) []audit.Batch {
	t.Helper()
	var out []audit.Batch
	it := r.c.GetWorkflowHistory(context.Background(), started.WorkflowID, started.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		attrs := ev.GetActivityTaskScheduledEventAttributes()
		if ev.GetEventType() != enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED || attrs.GetActivityType().GetName() != "Audit" {
			continue
		}
		var b audit.Batch
		require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &b))
		out = append(out, b)
	}
	return out
}

// checkTrail compares the store's rows for a finished run with its history
// and result: one plan row, one row per stage with its final status, one
// event per event the workflow recorded (numbered 1..n, ending with the
// outcome), every health round once. It returns the row counts.
func (r *platRig) checkTrail(t *testing.T, st *store.Store, started control.Started, res api.Result) store.Counts {
	t.Helper()
	ctx := context.Background()
	// A run decided while the store was down handed the rest of its trail
	// to an AuditTrail workflow: its events are in that one's history too.
	handed := waitTrail(t, r.c, started.WorkflowID, started.RunID)
	sources := []control.Started{started}
	if handed {
		sources = append(sources, control.Started{WorkflowID: workflows.TrailID(started.WorkflowID, started.RunID)})
	}
	seqs := map[int64]bool{}
	for _, src := range sources {
		for _, b := range r.auditBatches(t, src) {
			for _, e := range b.Events {
				seqs[e.Seq] = true
			}
		}
	}
	events := len(seqs)
	counts, err := st.Counts(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	rounds := 0
	for _, s := range res.Stages {
		rounds += s.Rounds.Healthy + s.Rounds.Degraded + s.Rounds.Failed + s.Rounds.NoData
	}
	if res.Rollback != nil && res.Rollback.Verify != nil {
		rounds += res.Rollback.Verify.Rounds
	}
	require.Equal(t, 1, counts.Plans, "%s: plan row", res.Service)
	require.Equal(t, len(res.Stages), counts.Stages, "%s: stage rows", res.Service)
	require.Equal(t, events, counts.Events, "%s: one row per event the history recorded", res.Service)
	require.Equal(t, rounds, counts.Rounds, "%s: every round the watchers ran, once", res.Service)

	tr, err := st.Trail(ctx, started.WorkflowID, started.RunID)
	require.NoError(t, err)
	require.Equal(t, string(res.Outcome), tr.Plan.Status)
	require.Equal(t, res.Outcome == api.OutcomeSucceeded, tr.Plan.Success)
	for i, s := range tr.Stages {
		require.Equal(t, string(res.Stages[i].Status), s.Status, "stage %d", i)
		require.Equal(t, res.Stages[i].ChecksPassed, s.ChecksPassed, "stage %d", i)
	}
	for i, e := range tr.Events {
		require.Equal(t, int64(i+1), e.Seq, "events numbered without gap or repeat")
	}
	require.NotEmpty(t, tr.Events)
	last := tr.Events[len(tr.Events)-1]
	if handed {
		require.Equal(t, api.KindHandoff, last.Kind, "the trail says it was handed off")
		last = tr.Events[len(tr.Events)-2]
	}
	require.Equal(t, audit.KindOutcome, last.Kind)
	return counts
}

// platBox is what the engine says about one container, read independently of
// the platform code under test.
type platBox struct {
	ID, Name, Image string
	Env             []string
	Aliases         []string
	Running         bool
	StartedAt       string
	Addr            string
}

func platBoxes(t *testing.T, service string) []platBox {
	t.Helper()
	var out []platBox
	for _, in := range itest.ServiceContainers(t, dc, service) {
		b := platBox{ID: in.ID, Name: strings.TrimPrefix(in.Name, "/"), Image: in.Config.Image, Env: in.Config.Env,
			Running: in.State.Running, StartedAt: in.State.StartedAt}
		for _, n := range in.NetworkSettings.Networks {
			for _, a := range n.Aliases {
				if a == service {
					b.Aliases = append(b.Aliases, a)
				}
			}
		}
		for _, pb := range in.NetworkSettings.Ports {
			for _, p := range pb {
				b.Addr = "127.0.0.1:" + p.HostPort
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// restorable drops what legitimately changes when a container is
// recreated or the engine restarts it.
func platRestorable(in []platBox) []platBox {
	out := slices.Clone(in)
	for i := range out {
		out[i].ID, out[i].StartedAt, out[i].Addr = "", "", ""
	}
	return out
}

// removeService removes the service's containers when the test ends.
func platRemoveService(t *testing.T, service string) {
	t.Cleanup(func() {
		for _, b := range platBoxes(t, service) {
			_, _ = dc.ContainerRemove(context.Background(), b.ID, client.ContainerRemoveOptions{Force: true})
		}
		// A rollout that ended rollback_failed left its target held.
		_, _ = dc.VolumeRemove(context.Background(), "stagecraft-hold-"+service, client.VolumeRemoveOptions{Force: true})
		itest.RemoveMarkers(context.Background(), dc, service)
	})
}

func platHealthz(addr string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// requireServing checks the service is exactly n running containers of
// image, each answering /healthz with version, and returns how many
// containers are beyond that (orphans), which must be none.
func platRequireServing(t *testing.T, service, image, version string, n int) int {
	t.Helper()
	got := platBoxes(t, service)
	orphans := 0
	for _, b := range got {
		if b.Image != image || !b.Running {
			orphans++
		}
	}
	orphans += max(len(got)-n, 0)
	require.Len(t, got, n, "%s: exactly %d containers: %+v", service, n, got)
	for _, b := range got {
		require.Equal(t, image, b.Image, b.Name)
		require.True(t, b.Running, b.Name)
		require.Equal(t, []string{service}, b.Aliases, "serves traffic: %s", b.Name)
		var code int
		var body string
		// Just restarted by the engine, the app may take a moment to listen.
		itest.Eventually(t, 20*time.Second, b.Name+" answers /healthz", func() bool {
			code, body = platHealthz(b.Addr)
			return code != 0
		})
		require.Equal(t, 200, code, body)
		require.Contains(t, body, `"version":"`+version+`"`)
	}
	return orphans
}

const (
	platV1  = "stagecraft-demo:v1"
	platV2  = "stagecraft-demo:v2"
	platBad = "stagecraft-demo:v2-bad"
)

// run is one rollout started and its result.
type platRun struct {
	started control.Started
	res     api.Result
}

// installV1 puts 3 containers of image (a v1) in place with a recreate
// rollout and returns it and the containers.
func (r *platRig) installV1(t *testing.T, service, image string) (platRun, []platBox) {
	t.Helper()
	s := itest.DemoSpec(service, image, spec.Recreate, 3)
	s.Strategy.Bake = spec.Duration(time.Second)
	started, res := r.run(t, s)
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
	require.True(t, res.FreshInstall)
	v1 := platBoxes(t, service)
	require.Len(t, v1, 3)
	return platRun{started, res}, v1
}

// platHooks is a webhook receiver on 127.0.0.1 that keeps what it was sent.
type platHooks struct {
	mu     sync.Mutex
	events []notify.Event
	keys   map[string]int
	url    string
}

func newPlatHooks(t *testing.T) *platHooks {
	h := &platHooks{keys: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev notify.Event
		if err := json.NewDecoder(req.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, ev)
		h.keys[req.Header.Get("Idempotency-Key")]++
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/hook"
	return h
}

// of returns the events received about the run, checking each
// idempotency key arrived once.
func (h *platHooks) of(t *testing.T, run control.Started) []notify.Event {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []notify.Event
	for _, e := range h.events {
		if e.WorkflowID == run.WorkflowID && e.RunID == run.RunID {
			out = append(out, e)
		}
	}
	for k, n := range h.keys {
		require.Equal(t, 1, n, "delivered once: %s", k)
	}
	return out
}

func platKinds(evs []notify.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}
