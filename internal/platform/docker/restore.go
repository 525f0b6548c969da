package docker

import (
	"cmp"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// labelImage is put on a container recreated from an image ID: it keeps the
// name (tag) the instance was started from, which the engine no longer
// reports, so a snapshot taken after a rollback records the same instance.
const labelImage = "stagecraft.image"

// unrestorableError says a container uses settings a recreate would not
// reproduce; each is named as the engine's API names it.
type unrestorableError struct {
	Container string
	Fields    []string
}

func (e *unrestorableError) Error() string {
	return fmt.Sprintf("container %q %s: it uses %s, which a rollback would not recreate; "+
		"remove them from the container or take it out of the service (label %s)",
		e.Container, platform.ErrUnrestorable, strings.Join(e.Fields, ", "), platform.LabelService)
}

func (e *unrestorableError) Unwrap() error { return platform.ErrUnrestorable }

// unrestorable lists the settings of an inspected container that a recreate
// from its snapshot record would drop or change. What the record holds
// (image, env, command, labels, ports, networks and aliases, restart policy,
// CPU and memory limits and swap, mounts, tmpfs, shm size, runtime, log
// driver, tty) is not listed; neither are fields the engine fills with its
// own defaults when nothing is asked (IPC "private"/"shareable", cgroup
// namespace, masked and read-only paths, console size). img is the image's
// config, to tell a container's own healthcheck and stop signal from the
// image's (nil: not compared).
func unrestorable(c container.InspectResponse, img *container.Config) []string {
	var out []string
	add := func(set bool, field string) {
		if set {
			out = append(out, field)
		}
	}
	cfg, hc := c.Config, c.HostConfig
	// The engine names a container after its ID, or after the host on the
	// host's network.
	add(cfg.Hostname != "" && !strings.HasPrefix(c.ID, cfg.Hostname) && !hc.NetworkMode.IsHost(), "Config.Hostname")
	add(cfg.Domainname != "", "Config.Domainname")
	add(cfg.StopTimeout != nil, "Config.StopTimeout")
	add(cfg.NetworkDisabled, "Config.NetworkDisabled")
	if img != nil {
		add(cfg.Healthcheck != nil && !reflect.DeepEqual(cfg.Healthcheck, img.Healthcheck), "Config.Healthcheck")
		add(cfg.StopSignal != img.StopSignal, "Config.StopSignal")
	}

	add(len(hc.VolumesFrom) > 0, "HostConfig.VolumesFrom")
	add(hc.VolumeDriver != "", "HostConfig.VolumeDriver")
	add(hc.AutoRemove, "HostConfig.AutoRemove")
	add(len(hc.Annotations) > 0, "HostConfig.Annotations")
	add(hc.NetworkMode.IsContainer(), "HostConfig.NetworkMode")
	add(hc.Privileged, "HostConfig.Privileged")
	add(len(hc.CapAdd) > 0, "HostConfig.CapAdd")
	add(len(hc.CapDrop) > 0, "HostConfig.CapDrop")
	add(len(hc.SecurityOpt) > 0, "HostConfig.SecurityOpt")
	add(len(hc.DNS) > 0, "HostConfig.Dns")
	add(len(hc.DNSOptions) > 0, "HostConfig.DnsOptions")
	add(len(hc.DNSSearch) > 0, "HostConfig.DnsSearch")
	add(len(hc.ExtraHosts) > 0, "HostConfig.ExtraHosts")
	add(len(hc.GroupAdd) > 0, "HostConfig.GroupAdd")
	add(len(hc.Links) > 0, "HostConfig.Links")
	add(hc.IpcMode.IsHost() || hc.IpcMode.IsContainer(), "HostConfig.IpcMode")
	add(hc.PidMode != "", "HostConfig.PidMode")
	add(hc.UTSMode != "", "HostConfig.UTSMode")
	add(hc.UsernsMode != "", "HostConfig.UsernsMode")
	add(hc.Cgroup != "", "HostConfig.Cgroup")
	add(hc.OomScoreAdj != 0, "HostConfig.OomScoreAdj")
	add(hc.PublishAllPorts, "HostConfig.PublishAllPorts")
	add(hc.ReadonlyRootfs, "HostConfig.ReadonlyRootfs")
	add(len(hc.StorageOpt) > 0, "HostConfig.StorageOpt")
	add(len(hc.Sysctls) > 0, "HostConfig.Sysctls")
	add(hc.Umask != nil, "HostConfig.Umask")
	add(hc.Init != nil && *hc.Init, "HostConfig.Init")
	add(hc.Isolation != "" && !hc.Isolation.IsDefault(), "HostConfig.Isolation")

	r := hc.Resources
	add(r.CPUShares != 0, "HostConfig.CpuShares")
	add(r.CgroupParent != "", "HostConfig.CgroupParent")
	add(r.BlkioWeight != 0 || len(r.BlkioWeightDevice) > 0 || len(r.BlkioDeviceReadBps) > 0 ||
		len(r.BlkioDeviceWriteBps) > 0 || len(r.BlkioDeviceReadIOps) > 0 || len(r.BlkioDeviceWriteIOps) > 0,
		"HostConfig.Blkio*")
	add(r.CPUPeriod != 0 || r.CPUQuota != 0, "HostConfig.CpuPeriod/CpuQuota")
	add(r.CPURealtimePeriod != 0 || r.CPURealtimeRuntime != 0, "HostConfig.CpuRealtime*")
	add(r.CpusetCpus != "" || r.CpusetMems != "", "HostConfig.Cpuset*")
	add(len(r.Devices) > 0, "HostConfig.Devices")
	add(len(r.DeviceCgroupRules) > 0, "HostConfig.DeviceCgroupRules")
	add(len(r.DeviceRequests) > 0, "HostConfig.DeviceRequests")
	add(r.MemoryReservation != 0, "HostConfig.MemoryReservation")
	add(r.MemorySwappiness != nil && *r.MemorySwappiness >= 0, "HostConfig.MemorySwappiness")
	add(r.OomKillDisable != nil && *r.OomKillDisable, "HostConfig.OomKillDisable")
	add(r.PidsLimit != nil && *r.PidsLimit > 0, "HostConfig.PidsLimit")
	add(len(r.Ulimits) > 0, "HostConfig.Ulimits")

	for _, m := range hc.Mounts {
		where := "HostConfig.Mounts[" + m.Target + "]"
		if b := m.BindOptions; b != nil {
			add(b.NonRecursive || b.CreateMountpoint || b.ReadOnlyNonRecursive || b.ReadOnlyForceRecursive, where+".BindOptions")
		}
		if v := m.VolumeOptions; v != nil {
			add(v.Subpath != "", where+".VolumeOptions.Subpath")
		}
		add(m.TmpfsOptions != nil, where+".TmpfsOptions")
		add(m.ImageOptions != nil || m.Type == mount.TypeImage, where+".ImageOptions")
		add(m.ClusterOptions != nil || m.Type == mount.TypeCluster, where+".ClusterOptions")
	}
	for _, m := range c.Mounts {
		switch m.Type {
		case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs:
		default:
			add(true, fmt.Sprintf("Mounts[%s] of type %q", m.Destination, m.Type))
		}
	}
	if c.NetworkSettings != nil {
		for _, name := range slices.Sorted(maps.Keys(c.NetworkSettings.Networks)) {
			ep := c.NetworkSettings.Networks[name]
			if ep == nil {
				continue
			}
			where := "NetworkSettings.Networks[" + name + "]"
			if ip := ep.IPAMConfig; ip != nil {
				add(ip.IPv4Address.IsValid() || ip.IPv6Address.IsValid() || len(ip.LinkLocalIPs) > 0, where+".IPAMConfig")
			}
			add(len(ep.Links) > 0, where+".Links")
			add(len(ep.DriverOpts) > 0, where+".DriverOpts")
		}
	}
	return out
}

// recordMounts lists a container's mounts as they ran, sorted by target:
// binds by host path, volumes by name (an anonymous volume too, so its data
// comes back), tmpfs mounts of the --mount form (the --tmpfs form is
// recorded on its own, as HostConfig.Tmpfs).
func recordMounts(mps []container.MountPoint, tmpfs map[string]string) []platform.DockerMount {
	var out []platform.DockerMount
	for _, mp := range mps {
		m := platform.DockerMount{Type: string(mp.Type), Target: mp.Destination, ReadOnly: !mp.RW}
		switch mp.Type {
		case mount.TypeBind:
			m.Source = mp.Source
			if mp.Propagation != "" && mp.Propagation != mount.PropagationRPrivate {
				m.Propagation = string(mp.Propagation)
			}
		case mount.TypeVolume:
			m.Source = mp.Name
		case mount.TypeTmpfs:
			if _, ok := tmpfs[mp.Destination]; ok {
				continue // the --tmpfs form, recorded apart
			}
		default:
			continue // refused by unrestorable
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b platform.DockerMount) int {
		return cmp.Or(strings.Compare(a.Target, b.Target), strings.Compare(a.Type, b.Type))
	})
	return out
}

// mountConfig turns recorded mounts back into the engine's mount specs.
func mountConfig(ms []platform.DockerMount) ([]mount.Mount, error) {
	var out []mount.Mount
	for _, m := range ms {
		mm := mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		switch mm.Type {
		case mount.TypeBind:
			if m.Propagation != "" {
				mm.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(m.Propagation)}
			}
		case mount.TypeVolume, mount.TypeTmpfs:
		default:
			return nil, fmt.Errorf("mount %q: type %q cannot be recreated", m.Target, m.Type)
		}
		out = append(out, mm)
	}
	return out, nil
}

// imageRef is what a recreate starts a snapshot instance from when nothing
// was looked up (see recreateImage): the image ID it ran when the snapshot
// has one, else (older snapshots) the name.
func imageRef(in platform.Instance) string {
	return cmp.Or(in.ImageID, in.Image)
}

// recreateLabels are a snapshot instance's labels for its recreate from
// image: when that is the image ID, labelImage keeps the name it was started
// from.
func recreateLabels(in platform.Instance, image string, labels map[string]string) map[string]string {
	if image != in.ImageID || in.Image == "" || in.Image == in.ImageID {
		return labels
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[labelImage] = in.Image
	return out
}

// recordedImage returns the name an inspected container was started from
// and the labels to record: a container recreated from an image ID carries
// its name in labelImage, which is dropped from the record again.
func recordedImage(c container.InspectResponse) (string, map[string]string) {
	name, ok := c.Config.Labels[labelImage]
	if !ok || c.Config.Image != c.Image {
		return c.Config.Image, c.Config.Labels
	}
	labels := maps.Clone(c.Config.Labels)
	delete(labels, labelImage)
	return name, labels
}
