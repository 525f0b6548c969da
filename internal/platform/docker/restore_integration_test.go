//go:build integration

package docker

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// imageID returns the ID of the image a container runs.
func (e *env) imageID(name string) string {
	e.t.Helper()
	in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	return in.Container.Image
}

// tag points tag at the image source names, and removes the tag when the
// test ends.
func (e *env) tag(source, tag string) {
	e.t.Helper()
	if _, err := e.cli.ImageTag(e.ctx, client.ImageTagOptions{Source: source, Target: tag}); err != nil {
		e.t.Fatalf("tag %s as %s: %v", source, tag, err)
	}
	e.t.Cleanup(func() {
		_, err := e.cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			e.t.Errorf("cleanup: untag %s: %v", tag, err)
		}
	})
}

// TestRollbackRestoresImageID runs the old version from a tag, moves the tag
// to other bytes, rolls to a new version and back: the containers the
// rollback recreates run the very image the snapshot's ran, not what the tag
// names now, and the snapshot still shows the tag.
func TestRollbackRestoresImageID(t *testing.T) {
	e := newEnv(t)
	moving := e.svc + ":moving"
	e.tag(imageV1, moving)
	old := e.spec(moving)
	old.Platform.Docker.Replicas = 2
	e.converge(old, "r1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew, Order: plan.Surge})
	snap := e.snapshot()
	oldNames := names(e.svc, "r1", 2)
	var ran []string
	for _, n := range oldNames {
		ran = append(ran, e.imageID(n))
	}

	// The tag moves to v2's bytes; the rollout deploys v2 (under its own
	// name) in place of every old container.
	e.tag(imageV2, moving)
	e.converge(e.spec(imageV2), "r2", snap, plan.Desired{New: 2, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})

	res := e.converge(e.spec(imageV2), "r2", snap, plan.Desired{New: 0, Old: 2, Traffic: plan.TrafficOld, Order: plan.Surge})
	checkCounts(t, res, 0, 2, 2)
	for i, n := range oldNames {
		if got := e.imageID(n); got != ran[i] {
			t.Errorf("restored %s runs image %s, want %s (what it ran before; the tag %s now names other bytes)", n, got, ran[i], moving)
		}
	}
	e.checkVersions(e.spec(imageV2), "r2", snap, platform.WhichOld, 2, "v1")
	if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
		t.Errorf("after rollback snapshot differs:\n got %+v\nwant %+v", got, snap)
	}
}

// manual starts a container of the service by hand (the adoption path),
// configured by edit, and removes it and the volumes it used when the test
// ends.
func (e *env) manual(name string, edit func(*container.Config, *container.HostConfig)) {
	e.t.Helper()
	if err := e.p.ensureNetwork(e.ctx, e.net); err != nil {
		e.t.Fatal(err)
	}
	port := network.MustParsePort("8080/tcp")
	cfg := &container.Config{Image: imageV1, Labels: map[string]string{platform.LabelService: e.svc},
		ExposedPorts: network.PortSet{port: {}}}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(e.net),
		PortBindings: network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}}}
	edit(cfg, hc)
	_, err := e.cli.ContainerCreate(e.ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			e.net: {Aliases: []string{e.svc}}}}})
	if err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
	if _, err := e.cli.ContainerStart(e.ctx, name, client.ContainerStartOptions{}); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
}

// mountsOf returns a container's mounts by destination.
func (e *env) mountsOf(name string) map[string]container.MountPoint {
	e.t.Helper()
	in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	out := map[string]container.MountPoint{}
	for _, m := range in.Container.Mounts {
		out[m.Destination] = m
	}
	return out
}

// TestRollbackRestoresMounts starts a service container by hand with a named
// volume, a read-only bind mount, an anonymous volume and a tmpfs, rolls the
// service to v2 (which removes it) and back: the recreated container has the
// same mounts, the very same volumes included, so its data comes back.
func TestRollbackRestoresMounts(t *testing.T) {
	e := newEnv(t)
	vol := e.svc + "-data"
	if _, err := e.cli.VolumeCreate(e.ctx, client.VolumeCreateOptions{Name: vol}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := e.svc + "-manual"
	var anon string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := e.cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: remove %s: %v", name, err)
		}
		for _, v := range []string{vol, anon} {
			if v == "" {
				continue
			}
			if _, err := e.cli.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("cleanup: remove volume %s: %v", v, err)
			}
		}
	})
	e.manual(name, func(cfg *container.Config, hc *container.HostConfig) {
		cfg.Volumes = map[string]struct{}{"/anon": {}}
		hc.Binds = []string{vol + ":/data", dir + ":/host:ro"}
		hc.Tmpfs = map[string]string{"/scratch": "size=1m"}
	})
	before := e.mountsOf(name)
	anon = before["/anon"].Name
	if before["/data"].Name != vol || before["/host"].Source != dir || anon == "" {
		t.Fatalf("hand-made container's mounts = %+v", before)
	}

	snap := e.snapshot()
	e.converge(e.spec(imageV2), "r2", snap, plan.Desired{New: 1, Old: 0, Traffic: plan.TrafficShared, Order: plan.Surge})
	if _, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("%s still exists after the rollout: %v", name, err)
	}
	res := e.converge(e.spec(imageV2), "r2", snap, plan.Desired{New: 0, Old: 1, Traffic: plan.TrafficOld, Order: plan.Surge})
	checkCounts(t, res, 0, 1, 1)

	after := e.mountsOf(name)
	for _, dst := range slices.Sorted(maps.Keys(before)) {
		b, a := before[dst], after[dst]
		if a.Type != b.Type || a.Name != b.Name || a.Source != b.Source || a.RW != b.RW {
			t.Errorf("mount %s after rollback = %+v, want %+v", dst, a, b)
		}
	}
	in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Container.HostConfig.Tmpfs; !reflect.DeepEqual(got, map[string]string{"/scratch": "size=1m"}) {
		t.Errorf("tmpfs after rollback = %v", got)
	}
	e.checkVersions(e.spec(imageV2), "r2", snap, platform.WhichOld, 1, "v1")
}

// TestSnapshotRefusesUnrestorable checks that a service container using
// settings a recreate would drop fails the snapshot, before any change,
// with an error naming the container and each setting.
func TestSnapshotRefusesUnrestorable(t *testing.T) {
	e := newEnv(t)
	name := e.svc + "-manual"
	t.Cleanup(func() {
		_, _ = e.cli.ContainerRemove(context.Background(), name, client.ContainerRemoveOptions{Force: true})
	})
	e.manual(name, func(_ *container.Config, hc *container.HostConfig) {
		hc.CapAdd = []string{"NET_ADMIN"}
		hc.ExtraHosts = []string{"db.internal:127.0.0.1"}
	})
	_, err := e.p.Snapshot(e.ctx, e.spec(imageV1))
	if err == nil {
		t.Fatal("snapshot of a container with CapAdd and ExtraHosts succeeded; a rollback would recreate it without them")
	}
	for _, want := range []string{name, "HostConfig.CapAdd", "HostConfig.ExtraHosts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("snapshot error %q does not name %s", err, want)
		}
	}
	if !errors.Is(err, platform.ErrUnrestorable) {
		t.Errorf("snapshot error %v does not wrap platform.ErrUnrestorable", err)
	}
}
