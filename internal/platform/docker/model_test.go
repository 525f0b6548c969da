package docker

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

func TestInstanceName(t *testing.T) {
	tests := []struct {
		service, rollout string
		i                int
		want             string
	}{
		{"hello", "ab12", 0, "hello-ab12-0"},
		{"hello", "ab12", 10, "hello-ab12-10"},
		{"pay-api", "x", 3, "pay-api-x-3"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := instanceName(tt.service, tt.rollout, tt.i); got != tt.want {
				t.Errorf("instanceName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nil", nil, nil},
		{"empty", map[string]string{}, nil},
		{"sorted", map[string]string{"B": "2", "A": "1", "C": ""}, []string{"A=1", "B=2", "C="}},
		{"value with equals", map[string]string{"DSN": "a=b"}, []string{"DSN=a=b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renderEnv(tt.env); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("renderEnv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewLabels(t *testing.T) {
	got := newLabels(map[string]string{"team": "a", platform.LabelService: "spoofed"}, "hello", "img:v2", "r1", 2)
	want := map[string]string{
		"team":                "a",
		platform.LabelService: "hello",
		platform.LabelVersion: "img:v2",
		platform.LabelRole:    platform.RoleNew,
		platform.LabelRollout: "r1",
		platform.LabelSlot:    "2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("newLabels = %v, want %v", got, want)
	}
	if !isNewOf(got, "hello", "r1") || isNewOf(got, "hello", "r2") || isNewOf(got, "other", "r1") {
		t.Error("isNewOf misclassifies the labels")
	}
}

func TestUserAliases(t *testing.T) {
	const id = "ca6d12634818f00dbeefca6d12634818f00dbeefca6d12634818f00dbeef1234"
	tests := []struct {
		name    string
		aliases []string
		id      string
		want    []string
	}{
		{"none", nil, id, nil},
		{"short id dropped", []string{"web", "ca6d12634818"}, id, []string{"web"}},
		{"full id dropped", []string{id, "web"}, id, []string{"web"}},
		{"short prefix kept", []string{"ca6d"}, id, []string{"ca6d"}},
		{"sorted and deduplicated", []string{"b", "a", "b"}, id, []string{"a", "b"}},
		{"no id", []string{"x", "ca6d12634818"}, "", []string{"ca6d12634818", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := userAliases(tt.aliases, tt.id); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("userAliases = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSameAliases(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		want bool
	}{
		{"both empty", nil, []string{}, true},
		{"order ignored", []string{"a", "b"}, []string{"b", "a"}, true},
		{"duplicates ignored", []string{"a", "a"}, []string{"a"}, true},
		{"missing", []string{"a"}, nil, false},
		{"different", []string{"a"}, []string{"b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameAliases(tt.a, tt.b); got != tt.want {
				t.Errorf("sameAliases(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestNewAliases(t *testing.T) {
	tests := []struct {
		traffic plan.Traffic
		want    []string
	}{
		{plan.TrafficShared, []string{"svc"}},
		{plan.TrafficNew, []string{"svc"}},
		{plan.TrafficOld, nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.traffic), func(t *testing.T) {
			if got := newAliases(tt.traffic, "svc"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("newAliases = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOldAliases(t *testing.T) {
	tests := []struct {
		name       string
		traffic    plan.Traffic
		snap       []string
		onNet      bool
		want       []string
		wantAttach bool
	}{
		{"old restores snapshot exactly", plan.TrafficOld, []string{"svc", "db"}, true, []string{"db", "svc"}, true},
		{"old keeps snapshot without alias", plan.TrafficOld, []string{"db"}, true, []string{"db"}, true},
		{"old leaves unattached alone", plan.TrafficOld, nil, false, nil, false},
		{"new drops service alias", plan.TrafficNew, []string{"svc", "db"}, true, []string{"db"}, true},
		{"new leaves unattached alone", plan.TrafficNew, nil, false, nil, false},
		{"shared adds service alias", plan.TrafficShared, []string{"db"}, true, []string{"db", "svc"}, true},
		{"shared attaches", plan.TrafficShared, nil, false, []string{"svc"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, attach := oldAliases(tt.traffic, "svc", tt.snap, tt.onNet)
			if !reflect.DeepEqual(got, tt.want) || attach != tt.wantAttach {
				t.Errorf("oldAliases = %q, %v; want %q, %v", got, attach, tt.want, tt.wantAttach)
			}
		})
	}
}

func TestRestartPolicyRoundTrip(t *testing.T) {
	tests := []struct {
		policy container.RestartPolicy
		text   string
	}{
		{container.RestartPolicy{}, ""},
		{container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}, "unless-stopped"},
		{container.RestartPolicy{Name: container.RestartPolicyDisabled}, "no"},
		{container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}, "on-failure:3"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := formatRestart(tt.policy); got != tt.text {
				t.Errorf("formatRestart = %q, want %q", got, tt.text)
			}
			got, err := parseRestart(tt.text)
			if err != nil || got != tt.policy {
				t.Errorf("parseRestart(%q) = %+v, %v; want %+v", tt.text, got, err, tt.policy)
			}
		})
	}
	if _, err := parseRestart("on-failure:x"); err == nil {
		t.Error("parseRestart accepted a bad retry count")
	}
}

func TestPortsRoundTrip(t *testing.T) {
	p8080 := network.MustParsePort("8080/tcp")
	p53 := network.MustParsePort("53/udp")
	pm := network.PortMap{
		p8080: {{HostIP: netip.MustParseAddr("127.0.0.1")}, {HostPort: "9000"}},
		p53:   {{HostIP: netip.MustParseAddr("::1"), HostPort: "5353"}},
	}
	got := recordPorts(pm)
	want := []platform.PortBinding{
		{ContainerPort: "53/udp", HostIP: "::1", HostPort: "5353"},
		{ContainerPort: "8080/tcp", HostIP: "", HostPort: "9000"},
		{ContainerPort: "8080/tcp", HostIP: "127.0.0.1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("recordPorts = %+v, want %+v", got, want)
	}
	set, back, err := portConfig(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 2 {
		t.Errorf("exposed ports = %v, want 2", set)
	}
	if !reflect.DeepEqual(recordPorts(back), want) {
		t.Errorf("round trip = %+v, want %+v", recordPorts(back), want)
	}
	if _, _, err := portConfig([]platform.PortBinding{{ContainerPort: "x/tcp"}}); err == nil {
		t.Error("portConfig accepted a bad port")
	}
}

func TestRecordNetworks(t *testing.T) {
	const id = "0123456789abcdef"
	nets := map[string]*network.EndpointSettings{
		"aaa":    {Aliases: []string{"x", "0123456789ab"}},
		"zz-app": {Aliases: []string{"svc", "0123456789ab"}},
		"bridge": nil,
	}
	got := recordNetworks(nets, "zz-app", id)
	want := []platform.NetworkAttach{
		{Network: "zz-app", Aliases: []string{"svc"}},
		{Network: "aaa", Aliases: []string{"x"}},
		{Network: "bridge"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("recordNetworks = %+v, want %+v", got, want)
	}
}

func TestPublishedPort(t *testing.T) {
	ports := []container.PortSummary{
		{PrivatePort: 9090, PublicPort: 40001, Type: "tcp"},
		{PrivatePort: 53, PublicPort: 40002, Type: "udp"},
		{PrivatePort: 8443, PublicPort: 40003, Type: "tcp"},
		{PrivatePort: 7000, Type: "tcp"},
	}
	tests := []struct {
		name   string
		want   int
		anyTCP bool
		port   uint16
		ok     bool
	}{
		{"exact", 9090, false, 40001, true},
		{"missing", 8080, false, 0, false},
		{"fallback lowest tcp", 8080, true, 40003, true},
		{"udp is not tcp", 53, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, ok := publishedPort(ports, tt.want, tt.anyTCP)
			if port != tt.port || ok != tt.ok {
				t.Errorf("publishedPort = %d, %v; want %d, %v", port, ok, tt.port, tt.ok)
			}
		})
	}
}

func TestRemovalRank(t *testing.T) {
	snap := map[string]int{"svc-old-0": 0, "svc-old-1": 1}
	tests := []struct {
		name      string
		labels    map[string]string
		group, ix int
	}{
		{"svc-r2-3", map[string]string{platform.LabelRollout: "r2", platform.LabelSlot: "3"}, 0, 3},
		{"svc-old-1", map[string]string{platform.LabelRollout: "old"}, 1, 1},
		{"stray", nil, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, i := removalRank(tt.name, tt.labels, "r2", snap)
			if g != tt.group || i != tt.ix {
				t.Errorf("removalRank = %d, %d; want %d, %d", g, i, tt.group, tt.ix)
			}
		})
	}
}
