//go:build integration

package docker

import (
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestResourcesLimitContainers checks the spec's resources become the new
// containers' limits, and that a capacity report counts them as taken.
func TestResourcesLimitContainers(t *testing.T) {
	e := newEnv(t)
	s := e.spec(imageV1)
	s.Platform.Docker.Resources = &spec.Resources{CPU: "250m", Memory: "64Mi"}
	res := e.converge(s, "r1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew, Order: plan.Surge})
	checkCounts(t, res, 2, 0, 2)
	for _, name := range names(e.svc, "r1", 2) {
		in, err := e.cli.ContainerInspect(e.ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("inspect %s: %v", name, err)
		}
		hc := in.Container.HostConfig
		if hc.NanoCPUs != 250_000_000 || hc.Memory != 64<<20 {
			t.Errorf("%s: NanoCPUs %d, Memory %d; want 250000000, %d", name, hc.NanoCPUs, hc.Memory, 64<<20)
		}
	}
	e.checkVersions(s, "r1", platform.Snapshot{}, platform.WhichNew, 2, "v1")

	// The snapshot keeps the limits, so a rollback restores them: v2 without
	// limits replaces both, then the snapshot comes back with them.
	snap := e.snapshot()
	for _, in := range snap.Instances {
		if in.Docker.NanoCPUs != 250_000_000 || in.Docker.Memory != 64<<20 {
			t.Errorf("snapshot of %s: NanoCPUs %d, Memory %d", in.Name, in.Docker.NanoCPUs, in.Docker.Memory)
		}
	}
	v2 := e.spec(imageV2)
	e.converge(v2, "r2", snap, plan.Desired{New: 2, Old: 0, Traffic: plan.TrafficNew, Order: plan.Surge})
	e.converge(v2, "r2", snap, plan.Desired{New: 0, Old: 2, Traffic: plan.TrafficOld, Order: plan.Surge})
	restored := e.snapshot()
	if len(restored.Instances) != 2 {
		t.Fatalf("restored %d instances, want 2", len(restored.Instances))
	}
	for _, in := range restored.Instances {
		if in.Image != imageV1 || in.Docker.NanoCPUs != 250_000_000 || in.Docker.Memory != 64<<20 {
			t.Errorf("restored %s: %s, NanoCPUs %d, Memory %d; want v1 with its limits", in.Name, in.Image, in.Docker.NanoCPUs, in.Docker.Memory)
		}
	}

	info, err := e.cli.Info(e.ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.p.Capacity(e.ctx, s, 1)
	if err != nil {
		t.Fatalf("Capacity: %v", err)
	}
	t.Logf("engine %d CPUs, %d bytes; report %+v", info.Info.NCPU, info.Info.MemTotal, rep)
	// Other containers on the engine may hold limits too: free is at most
	// what is left beside this service's two.
	free := resource.MustParse(rep.Free[platform.ResourceMemory])
	if max := info.Info.MemTotal - 2*(64<<20); free.Value() > max {
		t.Errorf("free memory %s, want at most %d: the running containers' limits are not counted", rep.Free["memory"], max)
	}
	cpu := resource.MustParse(rep.Free[platform.ResourceCPU])
	if max := int64(info.Info.NCPU)*1000 - 500; cpu.MilliValue() > max {
		t.Errorf("free cpu %s, want at most %dm", rep.Free["cpu"], max)
	}
	if rep.PerInstance["cpu"] != "250m" || rep.PerInstance["memory"] != "64Mi" || rep.Need["memory"] != "64Mi" {
		t.Errorf("report %+v: want 250m, 64Mi per container and 64Mi needed", rep)
	}
}

// TestCapacityDocker checks reports against what the engine's host has.
func TestCapacityDocker(t *testing.T) {
	e := newEnv(t)
	info, err := e.cli.Info(e.ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	host := info.Info.MemTotal
	withResources := func(r *spec.Resources) spec.Spec {
		s := e.spec(imageV1)
		s.Platform.Docker.Resources = r
		return s
	}
	tests := []struct {
		name   string
		r      *spec.Resources
		extra  int
		fits   bool
		detail string
	}{
		{"small fits", &spec.Resources{CPU: "10m", Memory: "16Mi"}, 2, true, ""},
		{"nothing declared", nil, 100, true, "no resources declared"},
		{"memory beyond the host", &spec.Resources{Memory: resource.NewQuantity(2*host, resource.BinarySI).String()}, 1, false,
			"one container's memory limit"},
		{"too many halves", &spec.Resources{Memory: resource.NewQuantity(host/2, resource.BinarySI).String()}, 3, false,
			"needed"},
		{"more CPUs than the host", &spec.Resources{CPU: resource.NewQuantity(int64(info.Info.NCPU)+1, resource.DecimalSI).String()}, 1, false,
			"one container's cpu limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := e.p.Capacity(e.ctx, withResources(tt.r), tt.extra)
			if err != nil {
				t.Fatalf("Capacity: %v", err)
			}
			t.Logf("%+v", rep)
			if rep.Fits != tt.fits || !strings.Contains(rep.Detail, tt.detail) {
				t.Errorf("fits %v, detail %q; want %v, %q", rep.Fits, rep.Detail, tt.fits, tt.detail)
			}
		})
	}
}
