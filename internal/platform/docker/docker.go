// Package docker converges a service made of containers on one Docker engine.
//
// A service is the set of containers labelled stagecraft.service=<service>.
// Each publishes its container port on 127.0.0.1 with a host port chosen by
// the engine and joins a user-defined bridge network; the containers that
// serve traffic carry the service name as their network alias there.
package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/secrets"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// loopback is where every published port is bound and dialled.
var loopback = netip.MustParseAddr("127.0.0.1")

// Platform converges a service made of containers on one Docker engine.
type Platform struct {
	cli *client.Client
	log *zap.Logger
	// Secrets resolves secretEnv references within the worker's scope
	// (secrets.Scope); nil reads any variable or file (tests, library use).
	Secrets secrets.Resolver
	// retiring counts the removals of retired containers still going on
	// beside (or after) the converge that retired them (retire.go).
	retiring sync.WaitGroup
	// noBackground leaves retired containers where a worker that died
	// right after the converge would leave them (tests).
	noBackground bool
}

// New returns a Platform on the engine cli talks to. A nil log discards logs.
func New(cli *client.Client, log *zap.Logger) *Platform {
	if log == nil {
		log = zap.NewNop()
	}
	return &Platform{cli: cli, log: log}
}

// CheckImage returns nil when image is present locally or can be pulled; a
// *platform.ImageNotFoundError when its registry says it cannot be had, a
// *platform.RegistryUnavailableError when the registry could not be asked
// (registryAnswer).
func (p *Platform) CheckImage(ctx context.Context, image string) error {
	if image == "" {
		return &platform.ImageNotFoundError{Image: image}
	}
	_, err := p.cli.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %q: %w", image, err)
	}
	pull, err := p.cli.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = pull.Wait(ctx)
		_ = pull.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull image %q: %w", image, ctx.Err())
		}
		if client.IsErrConnectionFailed(err) {
			return fmt.Errorf("pull image %q: the engine: %w", image, err) // not the registry's
		}
		err = registryAnswer(image, err)
		p.log.Info("image absent and not pullable", zap.String("image", image), zap.Error(err))
		return err
	}
	if _, err := p.cli.ImageInspect(ctx, image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return &platform.ImageNotFoundError{Image: image}
		}
		return fmt.Errorf("inspect image %q after pull: %w", image, err)
	}
	return nil
}

// Snapshot returns the service's running containers, sorted by name, each
// recorded completely enough to be recreated exactly: from the image ID it
// ran, with its mounts. A container using a setting a recreate would not
// reproduce (privileges, devices, extra hosts, DNS, ...: see unrestorable)
// fails the snapshot with an error naming the container and the settings
// that wraps platform.ErrUnrestorable, before anything changes. A variable set from a
// secret reference is recorded as its reference, never its value. Every
// reference the rollout may resolve (the spec's, and the snapshot's for a
// rollback) must resolve on this worker, or the snapshot fails before
// anything changes; the values read are dropped.
//
// The spec's network must be one the rollout may join (checkNetwork): one
// Stagecraft created, where no other application's container answers under
// the service name; if not, the snapshot fails with a *NetworkRefusedError
// (platform.ErrForbidden) before anything changes.
func (p *Platform) Snapshot(ctx context.Context, s spec.Spec) (platform.Snapshot, error) {
	snap := platform.Snapshot{Service: s.Service}
	items, err := p.list(ctx, s.Service, false)
	if err != nil {
		return snap, err
	}
	images := map[string]*container.Config{}
	var unrestorableErrs []error
	for _, c := range items {
		name := containerName(c)
		if isRetired(name, c.ID) {
			continue // on its way out (retire.go)
		}
		res, err := p.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue // removed since the listing
			}
			return snap, fmt.Errorf("inspect container %q: %w", name, err)
		}
		in, err := record(res.Container)
		if err != nil {
			return snap, fmt.Errorf("snapshot container %q: %w", name, err)
		}
		img, err := p.imageConfig(ctx, res.Container.Image, images)
		if err != nil {
			return snap, fmt.Errorf("snapshot container %q: %w", name, err)
		}
		if fields := unrestorable(res.Container, img); len(fields) > 0 {
			unrestorableErrs = append(unrestorableErrs, &unrestorableError{Container: name, Fields: fields})
		}
		snap.Instances = append(snap.Instances, in)
	}
	errs := unrestorableErrs
	if err := p.checkNetwork(ctx, s); err != nil {
		var refused *NetworkRefusedError
		if !errors.As(err, &refused) {
			return snap, err
		}
		errs = append(errs, err)
	}
	if d := s.Platform.Docker; d != nil {
		if _, err := resolveAll(p.Secrets, d.SecretEnv, specField); err != nil {
			errs = append(errs, err)
		}
	}
	for _, in := range snap.Instances {
		if _, err := resolveAll(p.Secrets, in.Docker.SecretEnv, snapshotField(in.Name)); err != nil {
			errs = append(errs, fmt.Errorf("a rollback could not recreate it: %w", err))
		}
	}
	if len(errs) > 0 {
		return snap, errors.Join(errs...)
	}
	return snap, nil
}

// record turns an inspected container into a snapshot instance.
func record(c container.InspectResponse) (platform.Instance, error) {
	if c.Config == nil || c.HostConfig == nil {
		return platform.Instance{}, errors.New("engine returned no config")
	}
	image, labels := recordedImage(c)
	env, secretEnv := splitSecretEnv(c.Config.Env, labels)
	hc := c.HostConfig
	in := platform.Instance{
		Name:    strings.TrimPrefix(c.Name, "/"),
		Image:   image,
		ImageID: c.Image,
		Docker: &platform.DockerInstance{
			Env:           env,
			SecretEnv:     secretEnv,
			Cmd:           slices.Clone(c.Config.Cmd),
			Entrypoint:    slices.Clone(c.Config.Entrypoint),
			Labels:        labels,
			WorkingDir:    c.Config.WorkingDir,
			User:          c.Config.User,
			Ports:         recordPorts(hc.PortBindings),
			RestartPolicy: formatRestart(hc.RestartPolicy),
			NanoCPUs:      hc.NanoCPUs,
			Memory:        hc.Memory,
			Mounts:        recordMounts(c.Mounts, hc.Tmpfs),
			Tmpfs:         maps.Clone(hc.Tmpfs),
			MemorySwap:    hc.MemorySwap,
			ShmSize:       hc.ShmSize,
			Runtime:       hc.Runtime,
			LogDriver:     hc.LogConfig.Type,
			LogOptions:    maps.Clone(hc.LogConfig.Config),
			TTY:           c.Config.Tty,
			OpenStdin:     c.Config.OpenStdin,
		},
	}
	if len(in.Docker.Tmpfs) == 0 {
		in.Docker.Tmpfs = nil
	}
	if len(in.Docker.LogOptions) == 0 {
		in.Docker.LogOptions = nil
	}
	if c.NetworkSettings != nil {
		in.Docker.Networks = recordNetworks(c.NetworkSettings.Networks, string(c.HostConfig.NetworkMode), c.ID)
	}
	return in, nil
}

// imageConfig returns the config of the image with the given ID, once per
// ID (cache), or nil when the image is gone (nothing to compare with; the
// recreate will then refuse the missing image).
func (p *Platform) imageConfig(ctx context.Context, id string, cache map[string]*container.Config) (*container.Config, error) {
	if cfg, ok := cache[id]; ok {
		return cfg, nil
	}
	res, err := p.cli.ImageInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		cache[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", id, err)
	}
	cfg := &container.Config{}
	if ic := res.Config; ic != nil {
		cfg.Healthcheck = ic.Healthcheck
		cfg.StopSignal = ic.StopSignal
	}
	cache[id] = cfg
	return cfg, nil
}

// Endpoints returns "127.0.0.1:<port>" for every running instance selected by
// which, sorted: the new instances of rollout, or the snapshot's instances
// still running. An old instance that does not publish the spec's port is
// reached on its first published TCP port.
func (p *Platform) Endpoints(ctx context.Context, s spec.Spec, rollout string, snap platform.Snapshot, which platform.Which) ([]string, error) {
	if s.Platform.Docker == nil {
		return nil, fmt.Errorf("endpoints of %q: spec has no docker platform", s.Service)
	}
	items, err := p.list(ctx, s.Service, false)
	if err != nil {
		return nil, err
	}
	inSnap := map[string]bool{}
	for _, in := range snap.Instances {
		inSnap[in.Name] = true
	}
	var out []string
	for _, c := range items {
		name := containerName(c)
		if isRetired(name, c.ID) {
			continue
		}
		switch which {
		case platform.WhichNew:
			if !isNewOf(c.Labels, s.Service, rollout) {
				continue
			}
		case platform.WhichOld:
			if !inSnap[name] {
				continue
			}
		default:
			return nil, fmt.Errorf("endpoints of %q: unknown selection %q", s.Service, which)
		}
		port, ok := publishedPort(c.Ports, s.Platform.Docker.Port, which == platform.WhichOld)
		if !ok {
			return nil, fmt.Errorf("endpoints of %q: container %q publishes no port for %d/tcp", s.Service, name, s.Platform.Docker.Port)
		}
		out = append(out, netip.AddrPortFrom(loopback, port).String())
	}
	slices.Sort(out)
	return out, nil
}

// publishedPort finds the host port of want/tcp, or, with anyTCP, of the
// lowest published TCP port when want is not published.
func publishedPort(ports []container.PortSummary, want int, anyTCP bool) (uint16, bool) {
	var first container.PortSummary
	for _, ps := range ports {
		if ps.Type != "tcp" || ps.PublicPort == 0 {
			continue
		}
		if int(ps.PrivatePort) == want {
			return ps.PublicPort, true
		}
		if first.PublicPort == 0 || ps.PrivatePort < first.PrivatePort {
			first = ps
		}
	}
	if anyTCP && first.PublicPort != 0 {
		return first.PublicPort, true
	}
	return 0, false
}

// list returns the service's containers (all, or only running), sorted by name.
func (p *Platform) list(ctx context.Context, service string, all bool) ([]container.Summary, error) {
	res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     all,
		Filters: make(client.Filters).Add("label", platform.LabelService+"="+service),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of %q: %w", service, err)
	}
	items := res.Items
	slices.SortFunc(items, func(a, b container.Summary) int { return strings.Compare(containerName(a), containerName(b)) })
	return items, nil
}

// containerName is a listed container's name without the leading slash.
func containerName(c container.Summary) string {
	if len(c.Names) == 0 {
		return c.ID
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// lastLogs returns up to n last lines of a container's output, best effort.
func (p *Platform) lastLogs(ctx context.Context, name string, n int) string {
	rc, err := p.cli.ContainerLogs(ctx, name, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n),
	})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil && buf.Len() == 0 {
		return ""
	}
	return strings.TrimSpace(buf.String())
}
