//go:build integration

// These tests run against the real Docker engine named by the environment
// (DOCKER_HOST, default /var/run/docker.sock) and need the demo images from
// scripts/build-demo.sh.
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

const (
	imageV1 = "stagecraft-demo:v1"
	imageV2 = "stagecraft-demo:v2"
)

// env is one test's engine client, platform, service and network, all
// removed when the test ends.
type env struct {
	t    *testing.T
	ctx  context.Context
	cli  *client.Client
	p    *Platform
	logs *observer.ObservedLogs
	svc  string
	net  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx := t.Context()
	for _, img := range []string{imageV1, imageV2} {
		if _, err := cli.ImageInspect(ctx, img); err != nil {
			t.Fatalf("image %s missing (run scripts/build-demo.sh): %v", img, err)
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	e := &env{t: t, ctx: ctx, cli: cli, p: New(cli, log), logs: logs,
		svc: "itest-" + id, net: "itest-net-" + id}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", platform.LabelService+"="+e.svc)})
		if err != nil {
			t.Errorf("cleanup: list containers: %v", err)
		}
		for _, c := range res.Items {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("cleanup: remove %v: %v", c.Names, err)
			}
		}
		if _, err := cli.NetworkRemove(ctx, e.net, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: remove network %s: %v", e.net, err)
		}
		_ = cli.Close()
	})
	return e
}

func (e *env) spec(image string) spec.Spec {
	return spec.Spec{
		Service: e.svc,
		Image:   image,
		Platform: spec.Platform{Docker: &spec.Docker{
			Replicas: 3,
			Port:     8080,
			Env:      map[string]string{"GREETING": "hi from " + e.svc},
			Labels:   map[string]string{"team": "itest"},
			Network:  e.net,
		}},
	}
}

func (e *env) converge(s spec.Spec, rollout string, snap platform.Snapshot, d plan.Desired) platform.ConvergeResult {
	e.t.Helper()
	res, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: rollout, Snapshot: snap, Desired: d})
	if err != nil {
		e.t.Fatalf("converge %+v: %v", d, err)
	}
	return res
}

func (e *env) snapshot() platform.Snapshot {
	e.t.Helper()
	snap, err := e.p.Snapshot(e.ctx, e.spec(imageV1))
	if err != nil {
		e.t.Fatalf("snapshot: %v", err)
	}
	return snap
}

// checkCounts compares a result's counts.
func checkCounts(t *testing.T, res platform.ConvergeResult, newCount, oldCount, total int) {
	t.Helper()
	if res.NewCount != newCount || res.OldCount != oldCount || res.Total != total {
		t.Fatalf("counts new=%d old=%d total=%d, want %d %d %d (result %+v)",
			res.NewCount, res.OldCount, res.Total, newCount, oldCount, total, res)
	}
}

// checkVersions GETs /healthz on every endpoint of the selection and expects
// count endpoints all reporting version.
func (e *env) checkVersions(s spec.Spec, rollout string, snap platform.Snapshot, which platform.Which, count int, version string) []string {
	e.t.Helper()
	eps, err := e.p.Endpoints(e.ctx, s, rollout, snap, which)
	if err != nil {
		e.t.Fatalf("endpoints %s: %v", which, err)
	}
	if len(eps) != count {
		e.t.Fatalf("endpoints %s = %v, want %d", which, eps, count)
	}
	if !slices.IsSorted(eps) {
		e.t.Errorf("endpoints %s not sorted: %v", which, eps)
	}
	for _, ep := range eps {
		if !strings.HasPrefix(ep, "127.0.0.1:") {
			e.t.Fatalf("endpoint %q is not on 127.0.0.1", ep)
		}
		if got := healthVersion(e.t, ep); got != version {
			e.t.Errorf("endpoint %s (%s) reports version %q, want %q", ep, which, got, version)
		}
	}
	return eps
}

func healthVersion(t *testing.T, ep string) string {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	// The server may need a moment after the container starts to listen.
	for range 50 {
		resp, err := hc.Get("http://" + ep + "/healthz")
		if err == nil {
			var body struct{ Status, Version string }
			err = json.NewDecoder(resp.Body).Decode(&body)
			_ = resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return body.Version
			}
			if err == nil {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/healthz: %v", ep, lastErr)
	return ""
}

// aliases returns a container's configured aliases on the test network, and
// whether it is attached.
func (e *env) aliases(name string) ([]string, bool) {
	e.t.Helper()
	in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	ep, ok := in.Container.NetworkSettings.Networks[e.net]
	if !ok {
		return nil, false
	}
	return userAliases(ep.Aliases, in.Container.ID), true
}

func (e *env) wantAliases(names []string, want []string) {
	e.t.Helper()
	for _, n := range names {
		got, ok := e.aliases(n)
		if !ok {
			e.t.Errorf("container %s is not on network %s", n, e.net)
			continue
		}
		if !sameAliases(got, want) {
			e.t.Errorf("container %s aliases = %q, want %q", n, got, want)
		}
	}
}

func names(svc, rollout string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, instanceName(svc, rollout, i))
	}
	return out
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestCanaryRolloutAndRollback installs v1 fresh, canaries v2 through shared
// traffic stages, checks reruns change nothing, and rolls back to the
// snapshot exactly.
func TestCanaryRolloutAndRollback(t *testing.T) {
	e := newEnv(t)
	v1, v2 := e.spec(imageV1), e.spec(imageV2)

	if snap := e.snapshot(); !snap.Empty() {
		t.Fatalf("fresh service has a snapshot: %+v", snap)
	}
	// Fresh install.
	res := e.converge(v1, "r1", platform.Snapshot{Service: e.svc}, plan.Desired{New: 3, Traffic: plan.TrafficNew, Order: plan.Surge})
	if !reflect.DeepEqual(res.Created, names(e.svc, "r1", 3)) || len(res.Removed) != 0 {
		t.Fatalf("fresh install result %+v", res)
	}
	checkCounts(t, res, 3, 0, 3)

	snap := e.snapshot()
	if len(snap.Instances) != 3 || snap.Service != e.svc {
		t.Fatalf("snapshot = %+v, want 3 instances", snap)
	}
	for i, in := range snap.Instances {
		d := in.Docker
		if in.Name != instanceName(e.svc, "r1", i) || in.Image != imageV1 || d == nil {
			t.Fatalf("snapshot instance %d = %+v", i, in)
		}
		if !slices.Contains(d.Env, "GREETING=hi from "+e.svc) {
			t.Errorf("%s env %q lacks GREETING", in.Name, d.Env)
		}
		if !reflect.DeepEqual(d.Entrypoint, []string{"/demo-app"}) {
			t.Errorf("%s entrypoint = %q", in.Name, d.Entrypoint)
		}
		wantLabels := map[string]string{"team": "itest", platform.LabelService: e.svc, platform.LabelVersion: imageV1,
			platform.LabelRole: platform.RoleNew, platform.LabelRollout: "r1", platform.LabelSlot: fmt.Sprint(i)}
		for k, v := range wantLabels {
			if d.Labels[k] != v {
				t.Errorf("%s label %s = %q, want %q", in.Name, k, d.Labels[k], v)
			}
		}
		if want := []platform.PortBinding{{ContainerPort: "8080/tcp", HostIP: "127.0.0.1"}}; !reflect.DeepEqual(d.Ports, want) {
			t.Errorf("%s ports = %+v, want %+v", in.Name, d.Ports, want)
		}
		if want := []platform.NetworkAttach{{Network: e.net, Aliases: []string{e.svc}}}; !reflect.DeepEqual(d.Networks, want) {
			t.Errorf("%s networks = %+v, want %+v", in.Name, d.Networks, want)
		}
		if d.RestartPolicy != "unless-stopped" {
			t.Errorf("%s restart policy = %q", in.Name, d.RestartPolicy)
		}
	}
	e.checkVersions(v1, "r1", snap, platform.WhichNew, 3, "v1")

	// A stale container of an abandoned rollout attempt must go.
	e.converge(v2, "stale", snap, plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge})

	// Canary 1 of 3.
	stage1 := plan.Desired{New: 1, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge}
	res = e.converge(v2, "r2", snap, stage1)
	checkCounts(t, res, 1, 2, 3)
	if !reflect.DeepEqual(res.Created, []string{e.svc + "-r2-0"}) {
		t.Errorf("stage 1 created %q", res.Created)
	}
	if want := []string{e.svc + "-r1-2", e.svc + "-stale-0"}; !reflect.DeepEqual(sortedCopy(res.Removed), want) {
		t.Errorf("stage 1 removed %q, want %q", res.Removed, want)
	}
	e.wantAliases(append(names(e.svc, "r2", 1), names(e.svc, "r1", 2)...), []string{e.svc})
	e.checkVersions(v2, "r2", snap, platform.WhichNew, 1, "v2")
	e.checkVersions(v2, "r2", snap, platform.WhichOld, 2, "v1")

	// A rerun finds everything in place.
	res = e.converge(v2, "r2", snap, stage1)
	if res.Changed() {
		t.Errorf("rerun of stage 1 changed %+v", res)
	}
	checkCounts(t, res, 1, 2, 3)

	// A crash that lost a container: the rerun recreates just that one.
	if _, err := e.cli.ContainerRemove(e.ctx, e.svc+"-r1-1", client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	res = e.converge(v2, "r2", snap, stage1)
	if !reflect.DeepEqual(res.Created, []string{e.svc + "-r1-1"}) || len(res.Removed) != 0 {
		t.Errorf("rerun after loss = %+v, want only %s-r1-1 created", res, e.svc)
	}
	checkCounts(t, res, 1, 2, 3)

	// Canary 100%.
	res = e.converge(v2, "r2", snap, plan.Desired{New: 3, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
	checkCounts(t, res, 3, 0, 3)
	if want := names(e.svc, "r2", 3)[1:]; !reflect.DeepEqual(res.Created, want) {
		t.Errorf("stage 2 created %q, want %q", res.Created, want)
	}
	if want := names(e.svc, "r1", 2); !reflect.DeepEqual(sortedCopy(res.Removed), want) {
		t.Errorf("stage 2 removed %q, want %q", res.Removed, want)
	}
	e.wantAliases(names(e.svc, "r2", 3), []string{e.svc})
	e.checkVersions(v2, "r2", snap, platform.WhichNew, 3, "v2")
	e.checkVersions(v2, "r2", snap, platform.WhichOld, 0, "")
	now := e.snapshot()
	for i, in := range now.Instances {
		if in.Image != imageV2 || in.Docker.Labels[platform.LabelVersion] != imageV2 ||
			in.Docker.Labels[platform.LabelRollout] != "r2" || in.Docker.Labels[platform.LabelSlot] != fmt.Sprint(i) {
			t.Errorf("instance %d after stage 2 = %+v", i, in)
		}
	}

	// Roll back: converge to the snapshot.
	rollback := plan.Desired{New: 0, Old: len(snap.Instances), Traffic: plan.TrafficOld, Order: plan.Surge}
	res = e.converge(v2, "r2", snap, rollback)
	checkCounts(t, res, 0, 3, 3)
	if want := names(e.svc, "r1", 3); !reflect.DeepEqual(res.Created, want) {
		t.Errorf("rollback created %q, want %q", res.Created, want)
	}
	if want := names(e.svc, "r2", 3); !reflect.DeepEqual(sortedCopy(res.Removed), want) {
		t.Errorf("rollback removed %q, want %q", res.Removed, want)
	}
	if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
		t.Errorf("after rollback snapshot differs:\n got %+v\nwant %+v", got, snap)
	}
	e.checkVersions(v2, "r2", snap, platform.WhichOld, 3, "v1")
	if res = e.converge(v2, "r2", snap, rollback); res.Changed() {
		t.Errorf("rerun of rollback changed %+v", res)
	}
}

// TestBlueGreenRewire brings green up unexposed, switches the alias to it,
// then rolls back the switch.
func TestBlueGreenRewire(t *testing.T) {
	e := newEnv(t)
	v1, v2 := e.spec(imageV1), e.spec(imageV2)
	e.converge(v1, "blue", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew, Order: plan.Surge})
	snap := e.snapshot()
	blue, green := names(e.svc, "blue", 2), names(e.svc, "green", 2)

	// Green up, traffic stays on blue.
	up := plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficOld, Order: plan.Surge}
	res := e.converge(v2, "green", snap, up)
	checkCounts(t, res, 2, 2, 4)
	if len(res.Rewired) != 0 {
		t.Errorf("green up rewired %q", res.Rewired)
	}
	e.wantAliases(blue, []string{e.svc})
	e.wantAliases(green, nil)
	e.checkVersions(v2, "green", snap, platform.WhichNew, 2, "v2")

	// Switch.
	sw := plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficNew, Order: plan.Surge}
	res = e.converge(v2, "green", snap, sw)
	if want := append(slices.Clone(green), blue...); !reflect.DeepEqual(sortedCopy(res.Rewired), sortedCopy(want)) {
		t.Errorf("switch rewired %q, want %q", res.Rewired, want)
	}
	if len(res.Created)+len(res.Removed) != 0 {
		t.Errorf("switch created or removed: %+v", res)
	}
	e.wantAliases(blue, nil)
	e.wantAliases(green, []string{e.svc})
	// Reconnecting may move an engine-chosen host port: endpoints are asked
	// for again after every converge.
	e.checkVersions(v2, "green", snap, platform.WhichNew, 2, "v2")
	e.checkVersions(v2, "green", snap, platform.WhichOld, 2, "v1")
	if res = e.converge(v2, "green", snap, sw); res.Changed() {
		t.Errorf("rerun of switch changed %+v", res)
	}

	// Switch back (rollback while green is still up), then drop green.
	res = e.converge(v2, "green", snap, up)
	if !reflect.DeepEqual(sortedCopy(res.Rewired), sortedCopy(append(slices.Clone(green), blue...))) {
		t.Errorf("switch back rewired %q", res.Rewired)
	}
	e.wantAliases(blue, []string{e.svc})
	e.wantAliases(green, nil)
	res = e.converge(v2, "green", snap, plan.Desired{New: 0, Old: 2, Traffic: plan.TrafficOld, Order: plan.Surge})
	checkCounts(t, res, 0, 2, 2)
	if got := e.snapshot(); !reflect.DeepEqual(got.Instances, snap.Instances) {
		t.Errorf("after rollback snapshot differs:\n got %+v\nwant %+v", got, snap)
	}
}

// TestOrder checks that stop-first removes before it creates and surge the
// other way round.
func TestOrder(t *testing.T) {
	for _, order := range []plan.Order{plan.StopFirst, plan.Surge} {
		t.Run(string(order), func(t *testing.T) {
			e := newEnv(t)
			e.converge(e.spec(imageV1), "r1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew, Order: plan.Surge})
			snap := e.snapshot()
			before := e.logs.Len()
			res := e.converge(e.spec(imageV2), "r2", snap, plan.Desired{New: 2, Old: 0, Traffic: plan.TrafficNew, Order: order})
			checkCounts(t, res, 2, 0, 2)
			var seq []string
			for _, entry := range e.logs.All()[before:] {
				switch entry.Message {
				case "created container":
					seq = append(seq, "create")
				case "removed container":
					seq = append(seq, "remove")
				}
			}
			want := []string{"create", "create", "remove", "remove"}
			if order == plan.StopFirst {
				want = []string{"remove", "remove", "create", "create"}
			}
			if !reflect.DeepEqual(seq, want) {
				t.Errorf("%s sequence = %q, want %q", order, seq, want)
			}
			e.checkVersions(e.spec(imageV2), "r2", snap, platform.WhichNew, 2, "v2")
		})
	}
}

// TestImageNotFound checks a missing image is refused before any change.
func TestImageNotFound(t *testing.T) {
	e := newEnv(t)
	const missing = "stagecraft-demo:does-not-exist"
	err := e.p.CheckImage(e.ctx, missing)
	if !platform.IsImageNotFound(err) {
		t.Fatalf("CheckImage(%s) = %v, want ImageNotFoundError", missing, err)
	}
	if err := e.p.CheckImage(e.ctx, imageV1); err != nil {
		t.Fatalf("CheckImage(%s) = %v", imageV1, err)
	}
	e.converge(e.spec(imageV1), "r1", platform.Snapshot{}, plan.Desired{New: 1, Traffic: plan.TrafficNew})
	snap := e.snapshot()
	_, err = e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec(missing), Rollout: "r2", Snapshot: snap,
		Desired: plan.Desired{New: 1, Old: 0, Traffic: plan.TrafficNew, Order: plan.StopFirst}})
	if !platform.IsImageNotFound(err) {
		t.Fatalf("Converge with a missing image = %v, want ImageNotFoundError", err)
	}
	if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
		t.Errorf("a refused converge changed the service: %+v", got)
	}
}

// TestCrashingContainer checks a container that exits at once fails the
// converge with its name, while its output goes to the worker's log only:
// the error reaches history, and a container may print what it was given.
func TestCrashingContainer(t *testing.T) {
	e := newEnv(t)
	s := e.spec(imageV1)
	s.Platform.Docker.Env = map[string]string{"SLOW_BY": "bogus"}
	_, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: "r1",
		Desired: plan.Desired{New: 1, Traffic: plan.TrafficNew, Order: plan.Surge}})
	if err == nil {
		t.Fatal("converge of a crashing container succeeded")
	}
	name := instanceName(e.svc, "r1", 0)
	if !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "SLOW_BY") || !strings.Contains(err.Error(), "worker's log") {
		t.Errorf("error %q should name %s and point to the worker's log, without its output", err, name)
	}
	logged := false
	for _, l := range e.logs.FilterMessage("container not running: its last output").All() {
		logged = logged || strings.Contains(l.ContextMap()["output"].(string), "SLOW_BY")
	}
	if !logged {
		t.Error("the container's output is not in the worker's log")
	}
}

// TestForeignContainerName checks that a container squatting on a wanted
// name without our labels is refused, not adopted.
func TestForeignContainerName(t *testing.T) {
	e := newEnv(t)
	name := instanceName(e.svc, "r1", 0)
	c, err := e.cli.ContainerCreate(e.ctx, client.ContainerCreateOptions{Name: name, Image: imageV1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	})
	_, err = e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec(imageV1), Rollout: "r1",
		Desired: plan.Desired{New: 1, Traffic: plan.TrafficNew, Order: plan.Surge}})
	if err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("converge over a foreign %s = %v, want an error naming it", name, err)
	}
}
