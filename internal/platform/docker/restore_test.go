package docker

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// inspected is a container as the engine reports one Stagecraft created,
// defaults filled in.
func inspected() container.InspectResponse {
	f := false
	return container.InspectResponse{
		ID:    "0123456789abcdef0123",
		Name:  "/svc-r1-0",
		Image: "sha256:aaaa",
		Config: &container.Config{Hostname: "0123456789ab", Image: "demo:v1",
			Labels: map[string]string{platform.LabelService: "svc"}},
		HostConfig: &container.HostConfig{
			NetworkMode: "net", IpcMode: "private", CgroupnsMode: "host", ShmSize: 64 << 20, Runtime: "runc",
			LogConfig:   container.LogConfig{Type: "json-file", Config: map[string]string{}},
			MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{"/proc/sys"},
			Resources: container.Resources{Memory: 64 << 20, MemorySwap: 128 << 20, OomKillDisable: &f},
		},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"net": {Aliases: []string{"svc"}}}},
	}
}

func TestUnrestorable(t *testing.T) {
	tru, n := true, int64(100)
	cases := []struct {
		name string
		edit func(*container.InspectResponse)
		want []string
	}{
		{"as Stagecraft creates it", func(*container.InspectResponse) {}, nil},
		{"mounts and tmpfs are recorded", func(c *container.InspectResponse) {
			c.HostConfig.Binds = []string{"vol:/data"}
			c.HostConfig.Tmpfs = map[string]string{"/t": ""}
			c.Mounts = []container.MountPoint{{Type: mount.TypeVolume, Name: "vol", Destination: "/data", RW: true}}
		}, nil},
		{"on the host's network, named after it", func(c *container.InspectResponse) {
			c.HostConfig.NetworkMode = "host"
			c.Config.Hostname = "worker-7"
		}, nil},
		{"privileges", func(c *container.InspectResponse) {
			c.HostConfig.Privileged = true
			c.HostConfig.CapAdd = []string{"NET_ADMIN"}
			c.HostConfig.SecurityOpt = []string{"seccomp=unconfined"}
		}, []string{"HostConfig.Privileged", "HostConfig.CapAdd", "HostConfig.SecurityOpt"}},
		{"name resolution", func(c *container.InspectResponse) {
			c.HostConfig.ExtraHosts = []string{"db:10.0.0.1"}
			c.HostConfig.DNS = []netip.Addr{netip.MustParseAddr("10.0.0.53")}
		}, []string{"HostConfig.Dns", "HostConfig.ExtraHosts"}},
		{"devices and limits", func(c *container.InspectResponse) {
			c.HostConfig.Devices = []container.DeviceMapping{{PathOnHost: "/dev/fuse"}}
			c.HostConfig.PidsLimit = &n
			c.HostConfig.Init = &tru
		}, []string{"HostConfig.Init", "HostConfig.Devices", "HostConfig.PidsLimit"}},
		{"namespaces and volumes of others", func(c *container.InspectResponse) {
			c.HostConfig.NetworkMode = "container:db"
			c.HostConfig.IpcMode = "host"
			c.HostConfig.VolumesFrom = []string{"db"}
		}, []string{"HostConfig.VolumesFrom", "HostConfig.NetworkMode", "HostConfig.IpcMode"}},
		{"own hostname, healthcheck and stop signal", func(c *container.InspectResponse) {
			c.Config.Hostname = "web"
			c.Config.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "true"}}
			c.Config.StopSignal = "SIGINT"
		}, []string{"Config.Hostname", "Config.Healthcheck", "Config.StopSignal"}},
		{"mount options", func(c *container.InspectResponse) {
			c.HostConfig.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1}},
				{Type: mount.TypeVolume, Source: "v", Target: "/v", VolumeOptions: &mount.VolumeOptions{Subpath: "x"}}}
		}, []string{"HostConfig.Mounts[/t].TmpfsOptions", "HostConfig.Mounts[/v].VolumeOptions.Subpath"}},
		{"static address", func(c *container.InspectResponse) {
			c.NetworkSettings.Networks["net"].IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("172.30.0.9")}
		}, []string{"NetworkSettings.Networks[net].IPAMConfig"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := inspected()
			tc.edit(&c)
			if got := unrestorable(c, &container.Config{}); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("unrestorable = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRecordRecreateRoundTrip checks that what a snapshot records of a
// container is what its recreate asks for: the image by ID when the name
// moved (the name kept in a label the next snapshot drops again) or by name
// when it did not, its mounts, and the engine settings recorded as the
// engine reported them.
func TestRecordRecreateRoundTrip(t *testing.T) {
	c := inspected()
	c.HostConfig.Tmpfs = map[string]string{"/scratch": "size=1m"}
	c.Mounts = []container.MountPoint{
		{Type: mount.TypeVolume, Name: "data", Source: "/var/lib/docker/volumes/data/_data", Destination: "/data", Mode: "z", RW: true},
		{Type: mount.TypeBind, Source: "/srv/conf", Destination: "/conf", Mode: "ro", Propagation: mount.PropagationRPrivate},
		{Type: mount.TypeVolume, Name: "0f0f", Destination: "/anon", RW: true},
		{Type: mount.TypeTmpfs, Destination: "/scratch", RW: true},
		{Type: mount.TypeTmpfs, Destination: "/run", RW: true},
	}
	in, err := record(c)
	if err != nil {
		t.Fatal(err)
	}
	if in.Image != "demo:v1" || in.ImageID != "sha256:aaaa" {
		t.Fatalf("recorded image %q id %q", in.Image, in.ImageID)
	}
	wantMounts := []platform.DockerMount{
		{Type: "volume", Source: "0f0f", Target: "/anon"},
		{Type: "bind", Source: "/srv/conf", Target: "/conf", ReadOnly: true},
		{Type: "volume", Source: "data", Target: "/data"},
		{Type: "tmpfs", Target: "/run"},
	}
	if !reflect.DeepEqual(in.Docker.Mounts, wantMounts) {
		t.Errorf("mounts = %+v, want %+v", in.Docker.Mounts, wantMounts)
	}

	cv := &convergence{docker: spec.Docker{Network: "net"}}
	opts, _, err := cv.oldContainer(want{name: in.Name, inst: &in})
	if err != nil {
		t.Fatal(err)
	}
	cfg, hc := opts.Config, opts.HostConfig
	if cfg.Image != "sha256:aaaa" || cfg.Labels[labelImage] != "demo:v1" {
		t.Errorf("recreate image %q label %q, want the ID and the name in %s", cfg.Image, cfg.Labels[labelImage], labelImage)
	}
	wantMM := []mount.Mount{
		{Type: mount.TypeVolume, Source: "0f0f", Target: "/anon"},
		{Type: mount.TypeBind, Source: "/srv/conf", Target: "/conf", ReadOnly: true},
		{Type: mount.TypeVolume, Source: "data", Target: "/data"},
		{Type: mount.TypeTmpfs, Target: "/run"},
	}
	if !reflect.DeepEqual(hc.Mounts, wantMM) || !reflect.DeepEqual(hc.Tmpfs, c.HostConfig.Tmpfs) {
		t.Errorf("recreate mounts %+v tmpfs %v", hc.Mounts, hc.Tmpfs)
	}
	if hc.ShmSize != 64<<20 || hc.Runtime != "runc" || hc.MemorySwap != 128<<20 || hc.LogConfig.Type != "json-file" {
		t.Errorf("recreate host config %+v", hc)
	}

	// While the name still names the bytes it ran, the recreate uses the
	// name, and no label is added.
	cv.oldImages = map[string]string{in.Name: "demo:v1"}
	byName, _, err := cv.oldContainer(want{name: in.Name, inst: &in})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := byName.Config.Labels[labelImage]; byName.Config.Image != "demo:v1" || ok {
		t.Errorf("recreate by name: image %q labels %v", byName.Config.Image, byName.Config.Labels)
	}

	// The recreated container, as the engine reports it, records the same.
	again := inspected()
	again.Config.Image, again.Config.Labels = cfg.Image, cfg.Labels
	again.HostConfig.Tmpfs = c.HostConfig.Tmpfs
	again.Mounts = c.Mounts
	in2, err := record(again)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in2, in) {
		t.Errorf("snapshot of the recreate differs:\n got %+v\nwant %+v", in2, in)
	}
}

// TestOldSnapshotWithoutImageID checks that a snapshot recorded before
// image IDs (a replayed history's) still decodes and recreates from its tag.
func TestOldSnapshotWithoutImageID(t *testing.T) {
	var in platform.Instance
	raw := `{"name":"svc-r1-0","image":"demo:v1","docker":{"labels":{"stagecraft.service":"svc"},"restartPolicy":"unless-stopped"}}`
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	cv := &convergence{docker: spec.Docker{Network: "net"}}
	opts, _, err := cv.oldContainer(want{name: in.Name, inst: &in})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Config.Image != "demo:v1" || opts.Config.Labels[labelImage] != "" || len(opts.HostConfig.Mounts) != 0 {
		t.Errorf("recreate of an old record = %+v %+v", opts.Config, opts.HostConfig)
	}
	out, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != raw {
		t.Errorf("re-encoded old record = %s, want %s", out, raw)
	}
}
