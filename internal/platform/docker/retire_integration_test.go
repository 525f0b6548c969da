//go:build integration

package docker

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// all lists every container of the service, in any state, by name.
func (e *env) all() []string {
	e.t.Helper()
	items, err := e.p.list(e.ctx, e.svc, true)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, containerName(it))
	}
	return out
}

// retired lists the service's containers that carry a retired name.
func (e *env) retired() []container.Summary {
	e.t.Helper()
	items, err := e.p.list(e.ctx, e.svc, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.DeleteFunc(items, func(it container.Summary) bool { return !isRetired(containerName(it), it.ID) })
}

// exists reports whether a container answers to name.
func (e *env) exists(name string) bool {
	e.t.Helper()
	_, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		e.t.Fatal(err)
	}
	return err == nil
}

// idOf returns the ID of the container named name.
func (e *env) idOf(name string) string {
	e.t.Helper()
	in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	return in.Container.ID
}

// snapNames are the names of a snapshot's instances.
func snapNames(s platform.Snapshot) []string {
	var out []string
	for _, in := range s.Instances {
		out = append(out, in.Name)
	}
	return out
}

// canary4 installs 4 instances of v1 (rollout r1) and returns the snapshot
// and the specs of v1 and v2, with a health check, as a rollout's stages
// see them.
func canary4(e *env) (platform.Snapshot, spec.Spec, spec.Spec) {
	e.t.Helper()
	v1, v2 := checked(e.spec(imageV1)), checked(e.spec(imageV2))
	v1.Platform.Docker.Replicas, v2.Platform.Docker.Replicas = 4, 4
	e.converge(v1, "r1", platform.Snapshot{}, plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.Surge})
	return e.snapshot(), v1, v2
}

var (
	stage25  = plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge}
	stage50  = plan.Desired{New: 2, Old: 2, Traffic: plan.TrafficShared, Order: plan.Surge}
	stage100 = plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge}
	final4   = plan.Desired{New: 4, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge}
	back4    = plan.Desired{New: 0, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge}
)

// TestRetiredOldContainersGo checks a canary's stages: each retires the old
// containers it no longer wants, and when it returns none of them answers
// to its name, serves under the alias, counts or is snapshotted; their
// removal finishes after the converge, so the next stage finds none left,
// and the final converge leaves exactly the new instances.
func TestRetiredOldContainersGo(t *testing.T) {
	e := newEnv(t)
	snap, _, v2 := canary4(e)
	old := names(e.svc, "r1", 4)

	res := e.converge(v2, "r2", snap, stage25)
	checkCounts(t, res, 1, 3, 4)
	if want := old[3:]; !reflect.DeepEqual(res.Removed, want) {
		t.Errorf("stage 25%% removed %q, want %q", res.Removed, want)
	}
	if e.exists(old[3]) {
		t.Errorf("%s still answers to its name after the stage that retired it", old[3])
	}
	serving := append(slices.Clone(old[:3]), names(e.svc, "r2", 1)...)
	if got := snapNames(e.snapshot()); !reflect.DeepEqual(got, serving) {
		t.Errorf("snapshot after stage 25%% = %q, want %q (a retired container is nobody's instance)", got, serving)
	}
	t.Logf("right after the stage: %d retired container(s) still being removed", len(e.retired()))
	e.p.waitRetired()
	if left := e.retired(); len(left) > 0 {
		t.Errorf("retired containers left once their removal finished: %v", left)
	}

	res = e.converge(v2, "r2", snap, stage50)
	checkCounts(t, res, 2, 2, 4)
	if want := old[2:3]; !reflect.DeepEqual(res.Removed, want) {
		t.Errorf("stage 50%% removed %q, want %q", res.Removed, want)
	}
	res = e.converge(v2, "r2", snap, stage100)
	checkCounts(t, res, 4, 0, 4)
	if want := old[:2]; !reflect.DeepEqual(sortedCopy(res.Removed), want) {
		t.Errorf("stage 100%% removed %q, want %q", res.Removed, want)
	}
	// The final converge does not leave its work to anyone: right after it
	// returns the service is exactly its new instances, in any state.
	e.converge(v2, "r2", snap, final4)
	if got, want := e.all(), names(e.svc, "r2", 4); !reflect.DeepEqual(got, want) {
		t.Errorf("containers after the final converge = %q, want %q", got, want)
	}
	e.checkVersions(v2, "r2", snap, platform.WhichNew, 4, "v2")
}

// TestRetiredLeftByACrash checks what a worker that died right after a
// stage returned leaves (a retired container, signalled, not removed): the
// next stage removes it before it changes anything else, the final
// converge leaves none, and a rollback restores the snapshot exactly.
func TestRetiredLeftByACrash(t *testing.T) {
	t.Run("next stage and final", func(t *testing.T) {
		e := newEnv(t)
		snap, _, v2 := canary4(e)
		e.p.noBackground = true
		e.converge(v2, "r2", snap, stage25)
		if n := len(e.retired()); n != 1 {
			t.Fatalf("%d retired containers after the stage, want 1 (its removal was not started)", n)
		}
		first := e.retired()[0].ID
		res := e.converge(v2, "r2", snap, stage50)
		checkCounts(t, res, 2, 2, 4)
		for _, it := range e.retired() {
			if it.ID == first {
				t.Errorf("the next stage left %s, retired by the stage before", containerName(it))
			}
		}
		e.converge(v2, "r2", snap, final4)
		if got, want := e.all(), names(e.svc, "r2", 4); !reflect.DeepEqual(got, want) {
			t.Errorf("containers after the final converge = %q, want %q", got, want)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		e := newEnv(t)
		snap, _, v2 := canary4(e)
		e.p.noBackground = true
		e.converge(v2, "r2", snap, stage25)
		e.converge(v2, "r2", snap, stage50)
		// The second stage removed what the first retired, and retired one
		// more.
		if n := len(e.retired()); n != 1 {
			t.Fatalf("%d retired containers, want 1", n)
		}
		res := e.converge(v2, "r2", snap, back4)
		checkCounts(t, res, 0, 4, 4)
		if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
			t.Errorf("after rollback snapshot differs:\n got %+v\nwant %+v", got, snap)
		}
		if got, want := e.all(), names(e.svc, "r1", 4); !reflect.DeepEqual(got, want) {
			t.Errorf("containers after the rollback = %q, want %q", got, want)
		}
		e.checkVersions(v2, "r2", snap, platform.WhichOld, 4, "v1")
	})
}

// TestRollbackRightAfterRetire rolls back at once after a stage retired old
// containers, while their removal may still be going on: the snapshot comes
// back exactly, and nothing retired is left.
func TestRollbackRightAfterRetire(t *testing.T) {
	e := newEnv(t)
	snap, _, v2 := canary4(e)
	for round := range 3 {
		e.converge(v2, "r2", snap, stage50)
		e.converge(v2, "r2", snap, back4)
		if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
			t.Fatalf("round %d: after rollback snapshot differs:\n got %+v\nwant %+v", round, got, snap)
		}
		if got, want := e.all(), names(e.svc, "r1", 4); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: containers after the rollback = %q, want %q", round, got, want)
		}
	}
	e.checkVersions(v2, "r2", snap, platform.WhichOld, 4, "v1")
}

// TestRetiredNeverSignalled checks a crash between a retire's rename and
// its stop signal: the container runs on under its retired name, and the
// rollback waits out the stop timeout for it, removes it and recreates the
// snapshot's container exactly.
func TestRetiredNeverSignalled(t *testing.T) {
	e := newEnv(t)
	snap, _, v2 := canary4(e)
	old := names(e.svc, "r1", 4)
	e.converge(v2, "r2", snap, plan.Desired{New: 1, Old: 4, Traffic: plan.TrafficShared, Order: plan.Surge})
	id := e.idOf(old[3])
	if _, err := e.cli.ContainerRename(e.ctx, id, client.ContainerRenameOptions{NewName: retiredName(old[3], id)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := e.converge(v2, "r2", snap, back4)
	t.Logf("the rollback took %v", time.Since(start).Round(time.Millisecond))
	checkCounts(t, res, 0, 4, 4)
	if e.idOf(old[3]) == id {
		t.Errorf("%s is still the retired container", old[3])
	}
	if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
		t.Errorf("after rollback snapshot differs:\n got %+v\nwant %+v", got, snap)
	}
	if got, want := e.all(), old; !reflect.DeepEqual(got, want) {
		t.Errorf("containers after the rollback = %q, want %q", got, want)
	}
}

// waitStopped waits until the container named name no longer runs.
func (e *env) waitStopped(name string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		if !in.Container.State.Running {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s still runs", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestRetiredThatWillNotStop checks an old container that ignores its stop
// signal (and publishes a fixed host port): retired, it is killed once the
// stop timeout has passed and removed; left running by a crash, the
// rollback removes it before it recreates the snapshot's container on the
// same port.
func TestRetiredThatWillNotStop(t *testing.T) {
	stubborn := func(e *env, port string) platform.Snapshot {
		e.t.Helper()
		buildExiter(e.t, e.cli)
		e.manual(e.svc+"-stubborn", func(cfg *container.Config, hc *container.HostConfig) {
			cfg.Image = imageExiter
			cfg.Env = []string{"EXIT_AFTER=1h", "EXIT_CODE=0", "IGNORE_TERM=1"}
			hc.PortBindings = network.PortMap{network.MustParsePort("8080/tcp"): {{
				HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: port}}}
		})
		return e.snapshot()
	}
	t.Run("killed after the stop timeout", func(t *testing.T) {
		e := newEnv(t)
		snap := stubborn(e, freePort(t))
		start := time.Now()
		e.converge(checked(e.spec(imageV2)), "r2", snap, plan.Desired{New: 1, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
		t.Logf("the stage returned in %v", time.Since(start).Round(time.Millisecond))
		e.p.waitRetired()
		t.Logf("its retired container was gone %v after the stage began", time.Since(start).Round(time.Millisecond))
		if left := e.retired(); len(left) > 0 {
			t.Errorf("a retired container that ignores its stop signal was left: %v", left)
		}
	})
	t.Run("rollback after a crash", func(t *testing.T) {
		e := newEnv(t)
		port := freePort(t)
		snap := stubborn(e, port)
		e.p.noBackground = true
		v2 := checked(e.spec(imageV2))
		e.converge(v2, "r2", snap, plan.Desired{New: 1, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
		if n := len(e.retired()); n != 1 {
			t.Fatalf("%d retired containers, want 1", n)
		}
		res := e.converge(v2, "r2", snap, plan.Desired{New: 0, Old: 1, Traffic: plan.TrafficOld, Order: plan.Surge})
		checkCounts(t, res, 0, 1, 1)
		if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
			t.Errorf("after rollback snapshot differs:\n got %+v\nwant %+v", got, snap)
		}
		if got, want := e.all(), []string{e.svc + "-stubborn"}; !reflect.DeepEqual(got, want) {
			t.Errorf("containers after the rollback = %q, want %q", got, want)
		}
	})
}
