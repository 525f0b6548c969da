package docker

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestCPULimit(t *testing.T) {
	tests := []struct {
		name string
		r    container.Resources
		want int64
	}{
		{"unlimited", container.Resources{}, 0},
		{"cpus", container.Resources{NanoCPUs: 1_500_000_000}, 1_500_000_000},
		{"quota and period", container.Resources{CPUQuota: 50_000, CPUPeriod: 100_000}, 500_000_000},
		{"quota, default period", container.Resources{CPUQuota: 200_000}, 2_000_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuLimit(tt.r); got != tt.want {
				t.Errorf("cpuLimit = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestHostFit(t *testing.T) {
	const gi = 1 << 30
	h := host{cpu: 4e9, memory: 8 * gi, usedCPU: 1e9, usedMemory: 2 * gi, running: 3}
	tests := []struct {
		name           string
		h              host
		perCPU, perMem int64
		extra          int
		fits           bool
		need, free     map[string]string
		detail         string
	}{
		{name: "fits", h: h, perCPU: 5e8, perMem: gi / 2, extra: 4, fits: true,
			need: map[string]string{"cpu": "2", "memory": "2Gi"}, free: map[string]string{"cpu": "3", "memory": "6Gi"}},
		{name: "memory only", h: h, perMem: 3 * gi, extra: 2, fits: true,
			need: map[string]string{"memory": "6Gi"}, free: map[string]string{"memory": "6Gi"}},
		{name: "cpu short", h: h, perCPU: 1e9, extra: 4,
			detail: "cpu 4 needed, 3 free of 4 once the limits of 3 running container(s) are counted"},
		{name: "one container larger than the host", h: h, perMem: 16 * gi, extra: 1,
			detail: "one container's memory limit 16Gi exceeds the host's 8Gi"},
		{name: "over-committed host has nothing free", h: host{cpu: 2e9, usedCPU: 3e9}, perCPU: 1e8, extra: 1,
			free: map[string]string{"cpu": "0"}, detail: "cpu 100m needed, 0 free of 2"},
		{name: "nothing extra", h: h, perCPU: 8e9, extra: 0, fits: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := tt.h.fit(tt.perCPU, tt.perMem, tt.extra)
			if rep.Fits != tt.fits {
				t.Errorf("fits = %v, want %v (%+v)", rep.Fits, tt.fits, rep)
			}
			for r, q := range tt.need {
				if rep.Need[r] != q {
					t.Errorf("need %s = %q, want %q", r, rep.Need[r], q)
				}
			}
			for r, q := range tt.free {
				if rep.Free[r] != q {
					t.Errorf("free %s = %q, want %q", r, rep.Free[r], q)
				}
			}
			if !strings.Contains(rep.Detail, tt.detail) {
				t.Errorf("detail %q, want %q", rep.Detail, tt.detail)
			}
		})
	}
}

func TestFormatMemory(t *testing.T) {
	for n, want := range map[int64]string{512 << 20: "512Mi", 8 << 30: "8Gi", 8232349696: "7850Mi"} {
		if got := formatMemory(n); got != want {
			t.Errorf("formatMemory(%d) = %q, want %q", n, got, want)
		}
	}
}
