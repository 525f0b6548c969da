package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Capacity reports whether extraContainers more containers with the spec's
// resource limits fit in what the engine's host has left: its CPUs and
// memory, as the engine reports them, minus the limits of every running
// container on it. Docker limits are caps, not reservations, and the
// engine starts a container whatever the others' limits add up to: the
// check keeps the declared limits within the host, it does not measure
// use. A running container without limits counts for nothing; a spec that
// declares no resources fits without asking the engine.
func (p *Platform) Capacity(ctx context.Context, s spec.Spec, extraContainers int) (platform.CapacityReport, error) {
	d := s.Platform.Docker
	if d == nil {
		return platform.CapacityReport{}, fmt.Errorf("capacity for %q: spec has no docker platform", s.Service)
	}
	perCPU, perMem, err := d.Resources.Limits()
	if err != nil {
		return platform.CapacityReport{}, fmt.Errorf("capacity for %q: platform.docker.resources: %w", s.Service, err)
	}
	if perCPU == 0 && perMem == 0 {
		return platform.CapacityReport{Instances: extraContainers, Fits: true,
			Detail: "no resources declared: the containers are not limited"}, nil
	}
	info, err := p.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return platform.CapacityReport{}, fmt.Errorf("engine info: %w", err)
	}
	usedCPU, usedMem, n, err := p.limitsInUse(ctx)
	if err != nil {
		return platform.CapacityReport{}, err
	}
	h := host{cpu: int64(info.Info.NCPU) * 1e9, memory: info.Info.MemTotal, usedCPU: usedCPU, usedMemory: usedMem, running: n}
	return h.fit(perCPU, perMem, extraContainers), nil
}

// limitsInUse adds up the CPU (in billionths) and memory limits of the
// engine's running containers, and counts them.
func (p *Platform) limitsInUse(ctx context.Context) (cpu, memory int64, n int, err error) {
	res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("list running containers: %w", err)
	}
	for _, c := range res.Items {
		in, err := p.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // gone since the listing
		}
		if err != nil {
			return 0, 0, 0, fmt.Errorf("inspect container %q: %w", containerName(c), err)
		}
		if hc := in.Container.HostConfig; hc != nil {
			cpu += cpuLimit(hc.Resources)
			memory += hc.Memory
		}
		n++
	}
	return cpu, memory, n, nil
}

// cpuLimit is a container's CPU limit in billionths of a CPU, set as
// --cpus (NanoCPUs) or as a CFS quota and period; 0 when unlimited.
func cpuLimit(r container.Resources) int64 {
	switch {
	case r.NanoCPUs > 0:
		return r.NanoCPUs
	case r.CPUQuota > 0:
		period := r.CPUPeriod
		if period <= 0 {
			period = 100_000 // the kernel's default, in microseconds
		}
		return r.CPUQuota * 1e9 / period
	}
	return 0
}

// host is an engine's host: its CPUs (in billionths) and memory (bytes),
// and the limits its running containers hold.
type host struct {
	cpu, memory         int64
	usedCPU, usedMemory int64
	running             int
}

// fit compares extra containers of the given limits (0: unlimited) with
// what the host has left.
func (h host) fit(perCPU, perMem int64, extra int) platform.CapacityReport {
	rep := platform.CapacityReport{Instances: extra, PerInstance: map[string]string{}, Need: map[string]string{}, Free: map[string]string{}}
	var short []string
	check := func(name string, per, total, used int64, format func(int64) string) {
		if per == 0 {
			return
		}
		need, free := per*int64(max(extra, 0)), max(total-used, 0)
		rep.PerInstance[name], rep.Need[name], rep.Free[name] = format(per), format(need), format(free)
		switch {
		case per > total:
			short = append(short, fmt.Sprintf("one container's %s limit %s exceeds the host's %s", name, format(per), format(total)))
		case need > free:
			short = append(short, fmt.Sprintf("%s %s needed, %s free of %s once the limits of %d running container(s) are counted",
				name, format(need), format(free), format(total), h.running))
		}
	}
	check(platform.ResourceCPU, perCPU, h.cpu, h.usedCPU, formatCPU)
	check(platform.ResourceMemory, perMem, h.memory, h.usedMemory, formatMemory)
	rep.Fits = extra <= 0 || len(short) == 0
	if !rep.Fits {
		rep.Detail = strings.Join(short, "; ")
	}
	return rep
}

// formatCPU writes billionths of a CPU as a quantity: "1500m", "4".
func formatCPU(n int64) string { return resource.NewScaledQuantity(n, resource.Nano).String() }

// formatMemory writes bytes as a quantity, in whole MiB when not exact in
// a larger unit: "512Mi", "7850Mi".
func formatMemory(n int64) string {
	if n%(1<<20) != 0 && n > 1<<30 {
		n -= n % (1 << 20)
	}
	return resource.NewQuantity(n, resource.BinarySI).String()
}
