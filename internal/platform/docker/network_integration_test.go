//go:build integration

package docker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// createdContainers counts the containers of the env's service, running or not.
func (e *env) createdContainers() int {
	e.t.Helper()
	items, err := e.p.list(e.ctx, e.svc, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(items)
}

// wantRefused checks that the rollout's preparation (Snapshot) and a
// converge are both refused with an error naming platform.docker.network
// and every one of names, and that no container of the service was made.
func (e *env) wantRefused(s spec.Spec, names ...string) {
	e.t.Helper()
	_, err := e.p.Snapshot(e.ctx, s)
	if err == nil {
		e.t.Fatalf("snapshot on network %q succeeded; want it refused before any change", s.Platform.Docker.Network)
	}
	for _, want := range append([]string{"platform.docker.network"}, names...) {
		if !strings.Contains(err.Error(), want) {
			e.t.Errorf("snapshot error %q does not name %s", err, want)
		}
	}
	if !errors.Is(err, platform.ErrForbidden) {
		e.t.Errorf("snapshot error %v does not wrap platform.ErrForbidden (non-retryable)", err)
	}
	_, err = e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: "r1",
		Desired: plan.Desired{New: 1, Traffic: plan.TrafficNew, Order: plan.Surge}})
	if err == nil || !strings.Contains(err.Error(), "platform.docker.network") {
		e.t.Errorf("converge on network %q = %v, want it refused", s.Platform.Docker.Network, err)
	}
	if n := e.createdContainers(); n != 0 {
		e.t.Errorf("%d containers of %s were created on a refused network", n, e.svc)
	}
}

// TestNetworkNotOursRefused checks that a spec cannot join a network that
// Stagecraft did not create (another compose project's, a user's): the
// rollout's snapshot refuses it, naming the field and the network, and no
// container is created.
func TestNetworkNotOursRefused(t *testing.T) {
	e := newEnv(t)
	// Made the way compose or a user makes it: no stagecraft.managed label.
	if _, err := e.cli.NetworkCreate(e.ctx, e.net, client.NetworkCreateOptions{Driver: "bridge",
		Labels: map[string]string{"com.docker.compose.project": "shop"}}); err != nil {
		t.Fatal(err)
	}
	e.wantRefused(e.spec(imageV1), e.net)
}

// TestNetworkAliasClashRefused checks that on a network Stagecraft made,
// a container of another application that already answers under the
// service's name (its alias) makes the rollout refuse, naming both.
func TestNetworkAliasClashRefused(t *testing.T) {
	e := newEnv(t)
	if err := e.p.ensureNetwork(e.ctx, e.net); err != nil {
		t.Fatal(err)
	}
	foreign := e.svc + "-other-app"
	cfg := &container.Config{Image: imageV1, Labels: map[string]string{"com.docker.compose.service": "db"}}
	_, err := e.cli.ContainerCreate(e.ctx, client.ContainerCreateOptions{Name: foreign, Config: cfg,
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(e.net)},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			e.net: {Aliases: []string{e.svc}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = e.cli.ContainerRemove(context.Background(), foreign, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := e.cli.ContainerStart(e.ctx, foreign, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	e.wantRefused(e.spec(imageV1), e.net, foreign, e.svc)
}

// TestDefaultNetworkAccepted checks that the default network keeps
// working: a rollout there snapshots and converges.
func TestDefaultNetworkAccepted(t *testing.T) {
	e := newEnv(t)
	s := e.spec(imageV1)
	s.Platform.Docker.Network = spec.DefaultDockerNetwork
	s.Platform.Docker.Replicas = 1
	snap, err := e.p.Snapshot(e.ctx, s)
	if err != nil {
		t.Fatalf("snapshot on the default network: %v", err)
	}
	if _, err := e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: s, Rollout: "r1", Snapshot: snap,
		Desired: plan.Desired{New: 1, Traffic: plan.TrafficNew, Order: plan.Surge}}); err != nil {
		t.Fatalf("converge on the default network: %v", err)
	}
	if _, err := e.p.Snapshot(e.ctx, s); err != nil {
		t.Fatalf("snapshot on the default network with the service running there: %v", err)
	}
}
