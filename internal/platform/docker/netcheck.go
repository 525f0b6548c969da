package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// NetworkRefusedError says the spec's network is not one a rollout may
// use: another application made it, or another application's container
// already answers there under the service's name. It wraps
// platform.ErrForbidden, so activities fail it without retries, before any
// change.
type NetworkRefusedError struct {
	Network string
	Reason  string
}

func (e *NetworkRefusedError) Error() string {
	return fmt.Sprintf("platform.docker.network %q: %s", e.Network, e.Reason)
}

func (e *NetworkRefusedError) Unwrap() error { return platform.ErrForbidden }

// checkNetwork refuses the spec's network unless a rollout may put the
// service's containers there under the alias of the service name:
//
//   - a network of that name that does not exist is fine (ensureNetwork
//     creates it, labelled stagecraft.managed=true);
//   - an existing network must carry that label, so a spec cannot join
//     another compose project's or a user's network. The one exception is
//     an unlabelled network named spec.DefaultDockerNetwork whose every
//     container (running or not) is Stagecraft's (labelled
//     stagecraft.service): the default network made by hand for Stagecraft;
//   - no container other than the service's own (stagecraft.service =
//     the service) may answer on it under the service name (an alias, a
//     DNS name or its container name), or the rollout's containers would
//     take part of that container's traffic.
func (p *Platform) checkNetwork(ctx context.Context, s spec.Spec) error {
	d := s.Platform.Docker
	if d == nil || d.Network == "" {
		return nil
	}
	name := d.Network
	nets, err := p.networksNamed(ctx, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{
			All:     true,
			Filters: make(client.Filters).Add("network", n.ID),
		})
		if err != nil {
			return fmt.Errorf("list containers on network %q: %w", name, err)
		}
		if n.Labels[labelManaged] != "true" {
			if name != spec.DefaultDockerNetwork {
				errs = append(errs, &NetworkRefusedError{Network: name, Reason: fmt.Sprintf(
					"the network exists and Stagecraft did not create it (no label %s=true), so it may belong to another application; name a network Stagecraft creates (one that does not exist yet)", labelManaged)})
				continue
			}
			var foreign []string
			for _, c := range res.Items {
				if c.Labels[platform.LabelService] == "" {
					foreign = append(foreign, containerName(c))
				}
			}
			if len(foreign) > 0 {
				slices.Sort(foreign)
				errs = append(errs, &NetworkRefusedError{Network: name, Reason: fmt.Sprintf(
					"the network has no label %s=true and containers that are not Stagecraft's are on it (%s), so it may belong to another application",
					labelManaged, strings.Join(foreign, ", "))})
				continue
			}
		}
		for _, c := range res.Items {
			if c.Labels[platform.LabelService] == s.Service {
				continue
			}
			names, err := p.namesOn(ctx, c.ID, n)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(names, func(a string) bool { return strings.EqualFold(a, s.Service) }) {
				who := "another application's container"
				if o := c.Labels[platform.LabelService]; o != "" {
					who = fmt.Sprintf("service %q's container", o)
				}
				errs = append(errs, &NetworkRefusedError{Network: name, Reason: fmt.Sprintf(
					"%s %q already answers there as %q, the alias service %q's containers would get; rename the service or use another network",
					who, containerName(c), s.Service, s.Service)})
			}
		}
	}
	return errors.Join(errs...)
}

// namesOn returns the names a container answers to on network n: its
// container name, its aliases and the DNS names the engine gives it there.
func (p *Platform) namesOn(ctx context.Context, id string, n network.Summary) ([]string, error) {
	res, err := p.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, nil // removed since the listing
		}
		return nil, fmt.Errorf("inspect container %s on network %q: %w", id, n.Name, err)
	}
	out := []string{strings.TrimPrefix(res.Container.Name, "/")}
	if ns := res.Container.NetworkSettings; ns != nil {
		for key, ep := range ns.Networks {
			if ep == nil || (key != n.Name && key != n.ID && ep.NetworkID != n.ID) {
				continue
			}
			out = append(out, ep.Aliases...)
			out = append(out, ep.DNSNames...)
		}
	}
	return out, nil
}
