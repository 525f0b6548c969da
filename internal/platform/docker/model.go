package docker

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// labelManaged marks networks this package created.
const labelManaged = "stagecraft.managed"

// instanceName names slot i of a rollout's new instances. The name is the
// idempotency key: a rerun finds the container by it instead of creating a
// second one.
func instanceName(service, rollout string, i int) string {
	return fmt.Sprintf("%s-%s-%d", service, rollout, i)
}

// renderEnv turns an env map into sorted KEY=VALUE entries, so the same spec
// always yields the same container config.
func renderEnv(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// newLabels are the labels of a new instance: the spec's, then ours, which
// win on a clash so the service can always find its containers.
func newLabels(extra map[string]string, service, image, rollout string, slot int) map[string]string {
	l := make(map[string]string, len(extra)+5)
	maps.Copy(l, extra)
	l[platform.LabelService] = service
	l[platform.LabelVersion] = image
	l[platform.LabelRole] = platform.RoleNew
	l[platform.LabelRollout] = rollout
	l[platform.LabelSlot] = strconv.Itoa(slot)
	return l
}

// isNewOf reports whether labels mark a new instance of the rollout.
func isNewOf(labels map[string]string, service, rollout string) bool {
	return labels[platform.LabelService] == service &&
		labels[platform.LabelRollout] == rollout &&
		labels[platform.LabelRole] == platform.RoleNew
}

// userAliases drops the aliases the engine adds by itself (the container's
// short ID, or any prefix of its ID) and sorts the rest: what remains is what
// someone configured.
func userAliases(aliases []string, id string) []string {
	var out []string
	for _, a := range aliases {
		if a == "" || (id != "" && len(a) >= 12 && strings.HasPrefix(id, a)) {
			continue
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// sameAliases compares two alias lists as sets.
func sameAliases(a, b []string) bool {
	x := slices.Compact(slices.Sorted(slices.Values(a)))
	y := slices.Compact(slices.Sorted(slices.Values(b)))
	return slices.Equal(x, y)
}

// withAlias returns aliases plus alias, sorted, without duplicates.
func withAlias(aliases []string, alias string) []string {
	out := append(slices.Clone(aliases), alias)
	slices.Sort(out)
	return slices.Compact(out)
}

// withoutAlias returns aliases minus alias, sorted.
func withoutAlias(aliases []string, alias string) []string {
	var out []string
	for _, a := range aliases {
		if a != alias {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// serves reports whether an instance of the given role takes traffic.
func serves(t plan.Traffic, isNew bool) bool {
	switch t {
	case plan.TrafficNew:
		return isNew
	case plan.TrafficOld:
		return !isNew
	default:
		return true
	}
}

// newAliases are a new instance's aliases on the service network.
func newAliases(t plan.Traffic, service string) []string {
	if serves(t, true) {
		return []string{service}
	}
	return nil
}

// oldAliases are a snapshot instance's aliases on the service network, and
// whether it should be attached at all. snap is the instance's snapshot
// aliases there and onNet whether it was attached in the snapshot. When old
// instances alone serve, they get the snapshot's aliases back exactly, so
// rolling back restores what was.
func oldAliases(t plan.Traffic, service string, snap []string, onNet bool) ([]string, bool) {
	switch t {
	case plan.TrafficOld:
		return userAliases(snap, ""), onNet
	case plan.TrafficNew:
		return withoutAlias(snap, service), onNet
	default:
		return withAlias(snap, service), true
	}
}

// snapshotAliases returns the instance's aliases on net in the snapshot.
func snapshotAliases(in platform.Instance, net string) ([]string, bool) {
	if in.Docker == nil {
		return nil, false
	}
	for _, n := range in.Docker.Networks {
		if n.Network == net {
			return n.Aliases, true
		}
	}
	return nil, false
}

// formatRestart renders a restart policy as "mode" or "on-failure:N".
func formatRestart(p container.RestartPolicy) string {
	if p.Name == "" {
		return ""
	}
	if p.MaximumRetryCount > 0 {
		return fmt.Sprintf("%s:%d", p.Name, p.MaximumRetryCount)
	}
	return string(p.Name)
}

// parseRestart is the inverse of formatRestart.
func parseRestart(s string) (container.RestartPolicy, error) {
	if s == "" {
		return container.RestartPolicy{}, nil
	}
	mode, count, ok := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(mode)}
	if ok {
		n, err := strconv.Atoi(count)
		if err != nil {
			return container.RestartPolicy{}, fmt.Errorf("restart policy %q: bad retry count: %w", s, err)
		}
		p.MaximumRetryCount = n
	}
	return p, nil
}

// recordPorts flattens configured port bindings into a stable list.
func recordPorts(pm network.PortMap) []platform.PortBinding {
	var out []platform.PortBinding
	for port, bindings := range pm {
		for _, b := range bindings {
			ip := ""
			if b.HostIP.IsValid() {
				ip = b.HostIP.String()
			}
			out = append(out, platform.PortBinding{ContainerPort: port.String(), HostIP: ip, HostPort: b.HostPort})
		}
	}
	slices.SortFunc(out, func(a, b platform.PortBinding) int {
		return cmp.Or(strings.Compare(a.ContainerPort, b.ContainerPort),
			strings.Compare(a.HostIP, b.HostIP), strings.Compare(a.HostPort, b.HostPort))
	})
	return out
}

// portConfig turns recorded bindings back into exposed ports and bindings.
func portConfig(ports []platform.PortBinding) (network.PortSet, network.PortMap, error) {
	if len(ports) == 0 {
		return nil, nil, nil
	}
	set := network.PortSet{}
	pm := network.PortMap{}
	for _, p := range ports {
		port, err := network.ParsePort(p.ContainerPort)
		if err != nil {
			return nil, nil, fmt.Errorf("port %q: %w", p.ContainerPort, err)
		}
		var ip netip.Addr
		if p.HostIP != "" {
			if ip, err = netip.ParseAddr(p.HostIP); err != nil {
				return nil, nil, fmt.Errorf("port %q host IP %q: %w", p.ContainerPort, p.HostIP, err)
			}
		}
		set[port] = struct{}{}
		pm[port] = append(pm[port], network.PortBinding{HostIP: ip, HostPort: p.HostPort})
	}
	return set, pm, nil
}

// recordNetworks lists a container's networks with their configured aliases,
// the primary network (the one it was created on) first so it is recreated
// on the same one.
func recordNetworks(nets map[string]*network.EndpointSettings, primary, id string) []platform.NetworkAttach {
	var out []platform.NetworkAttach
	for _, name := range slices.Sorted(maps.Keys(nets)) {
		var aliases []string
		if ep := nets[name]; ep != nil {
			aliases = userAliases(ep.Aliases, id)
		}
		out = append(out, platform.NetworkAttach{Network: name, Aliases: aliases})
	}
	slices.SortStableFunc(out, func(a, b platform.NetworkAttach) int {
		switch {
		case a.Network == primary && b.Network != primary:
			return -1
		case b.Network == primary && a.Network != primary:
			return 1
		}
		return 0
	})
	return out
}

// removalRank orders removals: this rollout's surplus from the highest slot
// down, then snapshot instances from the highest index down, then the rest by
// name. Removing from the top keeps the lower slots, which stay wanted the
// longest, untouched.
func removalRank(name string, labels map[string]string, rollout string, snapIndex map[string]int) (group, index int) {
	if labels[platform.LabelRollout] == rollout && rollout != "" {
		if n, err := strconv.Atoi(labels[platform.LabelSlot]); err == nil {
			return 0, n
		}
	}
	if i, ok := snapIndex[name]; ok {
		return 1, i
	}
	return 2, 0
}
