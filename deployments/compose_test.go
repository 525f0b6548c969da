//go:build integration

package deployments_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/itest"
)

// TestComposeFile loads docker-compose.yml as `docker compose` does
// (schema validation, interpolation, consistency checks) and checks the
// stack's shape: each service has a healthcheck, starts after what it
// needs is healthy, publishes on 127.0.0.1 only; the worker is built from
// the repo's Dockerfile, shares the host's network and has the Docker
// socket, the audit database and Temporal's address.
func TestComposeFile(t *testing.T) {
	root := itest.Root()
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("stagecraft", true) })
	require.NoError(t, err)

	names := project.ServiceNames()
	slices.Sort(names)
	require.Equal(t, []string{"postgresql", "temporal", "temporal-ui", "worker"}, names)

	for name, s := range project.Services {
		require.NotNil(t, s.HealthCheck, "%s has no healthcheck", name)
		require.False(t, s.HealthCheck.Disable, name)
		require.NotEmpty(t, s.HealthCheck.Test, name)
		if s.Build == nil {
			require.NotContains(t, s.Image, ":latest", name)
			require.Contains(t, s.Image, ":", "%s: pin the image's tag", name)
		}
		for _, p := range s.Ports {
			require.Equal(t, "127.0.0.1", p.HostIP, "%s publishes port %d beyond loopback", name, p.Target)
		}
	}
	healthy := func(service string, deps ...string) {
		t.Helper()
		s := project.Services[service]
		for _, d := range deps {
			require.Contains(t, s.DependsOn, d, service)
			require.Equal(t, types.ServiceConditionHealthy, s.DependsOn[d].Condition, "%s waits for %s", service, d)
		}
	}
	healthy("temporal", "postgresql")
	healthy("temporal-ui", "temporal")
	healthy("worker", "temporal", "postgresql")

	require.True(t, strings.HasPrefix(project.Services["postgresql"].Image, "postgres:16"))
	var initScript bool
	for _, v := range project.Services["postgresql"].Volumes {
		if strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") {
			require.FileExists(t, v.Source)
			initScript = true
		}
	}
	require.True(t, initScript, "postgresql mounts the audit database's init script")

	w := project.Services["worker"]
	require.NotNil(t, w.Build)
	require.Equal(t, root, w.Build.Context)
	require.Equal(t, "Dockerfile", w.Build.Dockerfile)
	require.FileExists(t, filepath.Join(w.Build.Context, w.Build.Dockerfile))
	env := w.Environment
	// The Docker platform health-checks what it rolls out on the host's
	// 127.0.0.1, so the worker shares the host's network and reaches the
	// others through their published ports.
	require.Equal(t, "host", w.NetworkMode)
	require.Equal(t, "127.0.0.1:7233", *env["TEMPORAL_ADDRESS"])
	require.Equal(t, "postgres://stagecraft:stagecraft@127.0.0.1:5432/stagecraft?sslmode=disable", *env["DATABASE_URL"])
	require.Contains(t, project.Services["temporal"].Ports, types.ServicePortConfig{Mode: "ingress", HostIP: "127.0.0.1", Target: 7233, Published: "7233", Protocol: "tcp"})
	require.Contains(t, project.Services["postgresql"].Ports, types.ServicePortConfig{Mode: "ingress", HostIP: "127.0.0.1", Target: 5432, Published: "5432", Protocol: "tcp"})
	require.Contains(t, w.Volumes, types.ServiceVolumeConfig{
		Type: types.VolumeTypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock",
		Bind: &types.ServiceVolumeBind{CreateHostPath: true},
	})
	require.True(t, w.ReadOnly)
	require.Equal(t, []string{"/usr/local/bin/starter", "list", "--source", "temporal", "--limit", "1"},
		[]string(w.HealthCheck.Test[1:]), "the worker's healthcheck runs a binary the scratch image has")
}

// TestComposeWorkerGracePeriodOutlastsStopTimeout: docker compose stop
// waits stop_grace_period before SIGKILL; it must outlast the time the
// worker gives running activities after SIGTERM (STAGECRAFT_STOP_TIMEOUT,
// set in the worker's environment so that it can be checked here).
func TestComposeWorkerGracePeriodOutlastsStopTimeout(t *testing.T) {
	root := itest.Root()
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("stagecraft", true) })
	require.NoError(t, err)
	w := project.Services["worker"]
	v := w.Environment["STAGECRAFT_STOP_TIMEOUT"]
	require.NotNil(t, v, "the worker's environment sets STAGECRAFT_STOP_TIMEOUT")
	stop, err := time.ParseDuration(*v)
	require.NoError(t, err)
	require.Positive(t, stop, "a zero stop timeout cancels running activities at once")
	require.NotNil(t, w.StopGracePeriod, "stop_grace_period is set (docker's default is 10s)")
	require.GreaterOrEqual(t, time.Duration(*w.StopGracePeriod), stop+5*time.Second,
		"stop_grace_period %s must outlast STAGECRAFT_STOP_TIMEOUT %s by a few seconds", time.Duration(*w.StopGracePeriod), stop)
}
