//go:build integration

package docker

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// fenceBox is what a fenced converge must leave exactly as it was.
type fenceBox struct {
	ID, Name, Image string
	Running         bool
	Aliases         []string
}

func (e *env) boxes() []fenceBox {
	e.t.Helper()
	res, err := e.cli.ContainerList(e.ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", platform.LabelService+"="+e.svc)})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []fenceBox
	for _, it := range res.Items {
		in, err := e.cli.ContainerInspect(e.ctx, it.ID, client.ContainerInspectOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		c := in.Container
		b := fenceBox{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Image: c.Config.Image, Running: c.State.Running}
		if ep := c.NetworkSettings.Networks[e.net]; ep != nil {
			b.Aliases = userAliases(ep.Aliases, c.ID)
		}
		out = append(out, b)
	}
	return out
}

// fenceMarkers lists the service's fence volumes and removes them when the
// test ends.
func (e *env) fenceMarkers() []marker {
	e.t.Helper()
	ms, err := e.p.fences(e.ctx, e.svc)
	if err != nil {
		e.t.Fatal(err)
	}
	return ms
}

func (e *env) removeFencesAtEnd() {
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ms, _ := e.p.fences(ctx, e.svc)
		for _, m := range ms {
			_, _ = e.cli.VolumeRemove(ctx, m.name, client.VolumeRemoveOptions{Force: true})
		}
	})
}

func (e *env) fencedConverge(s spec.Spec, rollout string, snap platform.Snapshot, d plan.Desired, f platform.Fence) (platform.ConvergeResult, error) {
	return e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: rollout, Snapshot: snap, Desired: d, Fence: f})
}

// TestFenceRefusesAZombie: on a real engine, once a rollback (step 2) has
// converged a service, a converge attempt of the same rollout that started
// before it (step 1: an attempt that timed out on the server and comes
// back, a zombie) is refused with platform.ErrFenced, names the step that
// fenced it, and changes nothing: the same containers, by ID, image, state
// and aliases. Before, it removed by name a container the rollback had
// recreated and created its canary again.
func TestFenceRefusesAZombie(t *testing.T) {
	e := newEnv(t)
	e.removeFencesAtEnd()
	v1 := e.spec(imageV1)
	e.converge(v1, "r1", platform.Snapshot{}, plan.Desired{New: 3, Traffic: plan.TrafficNew})
	snap := e.snapshot()
	v2 := e.spec(imageV2)
	owner := "default/" + v2.WorkflowID()
	now := time.Now()

	rollback := platform.Fence{Owner: owner, Step: 2, Until: now.Add(time.Minute)}
	if _, err := e.fencedConverge(v2, "r2", snap, plan.Desired{Old: 3, Traffic: plan.TrafficOld}, rollback); err != nil {
		t.Fatalf("rollback (step 2): %v", err)
	}
	before := e.boxes()
	if len(before) != 3 {
		t.Fatalf("after the rollback: %+v; want the 3 v1 containers", before)
	}

	zombie := platform.Fence{Owner: owner, Step: 1, Until: now.Add(time.Minute)}
	res, err := e.fencedConverge(v2, "r2", snap, plan.Desired{New: 1, Old: 2, Traffic: plan.TrafficShared}, zombie)
	if !errors.Is(err, platform.ErrFenced) {
		t.Fatalf("zombie converge (step 1) after the rollback (step 2): err %v, result %+v; want it refused with ErrFenced", err, res)
	}
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Step != 2 || fe.Mine.Step != 1 || fe.Target != v2.TargetKey() {
		t.Fatalf("fenced error %#v; want step 1 refused by step 2 on %s", err, v2.TargetKey())
	}
	if res.Changed() {
		t.Fatalf("the fenced converge reports changes: %+v", res)
	}
	if after := e.boxes(); !reflect.DeepEqual(after, before) {
		t.Fatalf("the fenced converge changed the target:\nbefore %+v\nafter  %+v", before, after)
	}
	for _, m := range e.fenceMarkers() {
		if m.fence.Step == 1 {
			t.Fatalf("the refused attempt left a marker: %+v", m)
		}
	}

	// The same attempt again (a retry of the rollback's call) and a later
	// one are admitted.
	if _, err := e.fencedConverge(v2, "r2", snap, plan.Desired{Old: 3, Traffic: plan.TrafficOld}, rollback); err != nil {
		t.Fatalf("the rollback's attempt again: %v", err)
	}
	if after := e.boxes(); !reflect.DeepEqual(after, before) {
		t.Fatalf("converging to the same state changed it:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestFenceLease: a rollout of another owner (another Temporal namespace,
// or a workflow ID that is not the target's) may not converge the service
// while the holder's lease (its attempt's deadline) holds, and changes
// nothing; once the lease has ended it is admitted, and then holds the
// service against the first owner in turn. Old markers are pruned.
func TestFenceLease(t *testing.T) {
	e := newEnv(t)
	e.removeFencesAtEnd()
	v1 := e.spec(imageV1)
	owner := "default/" + v1.WorkflowID()
	other := "elsewhere/" + v1.WorkflowID()
	// Installed unfenced first, so the holder's converge changes nothing
	// and its short lease is not spent waiting for containers.
	e.converge(v1, "r1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew})
	const lease = 8 * time.Second
	holder := platform.Fence{Owner: owner, Step: 10, Until: time.Now().Add(lease)}
	if res, err := e.fencedConverge(v1, "r1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew}, holder); err != nil || res.Changed() {
		t.Fatalf("holder: %+v, %v; want it admitted, with nothing to change", res, err)
	}
	before := e.boxes()
	if time.Now().After(holder.Until) {
		t.Fatalf("the holder's converge outlasted its %s lease: nothing left to test", lease)
	}

	intruder := platform.Fence{Owner: other, Step: 20, Until: time.Now().Add(time.Minute)}
	v2 := e.spec(imageV2)
	_, err := e.fencedConverge(v2, "x1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew}, intruder)
	var fe *platform.FencedError
	if !errors.As(err, &fe) || fe.Held.Owner != owner {
		t.Fatalf("another owner during the lease: %v; want refused, held by %s", err, owner)
	}
	if after := e.boxes(); !reflect.DeepEqual(after, before) {
		t.Fatalf("the refused owner changed the target:\nbefore %+v\nafter  %+v", before, after)
	}

	time.Sleep(time.Until(holder.Until) + 100*time.Millisecond)
	res, err := e.fencedConverge(v2, "x1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew}, intruder)
	if err != nil {
		t.Fatalf("another owner after the lease ended: %v", err)
	}
	if len(res.Created) != 2 || len(res.Removed) != 2 {
		t.Fatalf("another owner after the lease: %+v; want 2 created and 2 removed", res)
	}
	// Now the first owner, even at a later step, waits for the new lease.
	later := platform.Fence{Owner: owner, Step: 30, Until: time.Now().Add(time.Minute)}
	if _, err := e.fencedConverge(v1, "r3", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew}, later); !errors.As(err, &fe) || fe.Held.Owner != other {
		t.Fatalf("the first owner during the other's lease: %v; want refused, held by %s", err, other)
	}

	// Many attempts of one owner leave a bounded set of markers: each
	// owner's latest and longest, and the newest few.
	for step := int64(40); step < 50; step++ {
		f := platform.Fence{Owner: other, Step: step, Until: time.Now().Add(time.Minute)}
		if _, err := e.fencedConverge(v2, "x1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew}, f); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	ms := e.fenceMarkers()
	if len(ms) > keepFences+2 {
		t.Fatalf("%d fence markers left after 12 attempts; want at most %d: %+v", len(ms), keepFences+2, ms)
	}
	var steps []int64
	for _, m := range ms {
		steps = append(steps, m.fence.Step)
	}
	t.Logf("markers kept: steps %v", steps)
}
