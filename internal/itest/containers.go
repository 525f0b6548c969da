package itest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
)

// ServiceContainers reads what the engine holds for a Docker service: each
// labelled container, inspected, independently of the platform code under
// test. A listing and the inspects after it are not one snapshot: a
// rollout under way may rename a container to its retired name and remove
// it in between. A container gone at its inspect therefore means the
// listing is stale, and it is read again (a few times, briefly apart)
// rather than failing the test or silently dropping a container that is
// still there. A container listed under its retired name and gone at its
// inspect is simply left out: it is on its way out by design.
func ServiceContainers(t testing.TB, dc *client.Client, service string) []container.InspectResponse {
	t.Helper()
	ctx := context.Background()
	const tries = 20
	for try := 1; ; try++ {
		list, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
		require.NoError(t, err)
		var out []container.InspectResponse
		stale := false
		for _, c := range list.Items {
			retired := slices.ContainsFunc(c.Names, func(n string) bool { return strings.Contains(n, docker.RetiredMark) })
			res, err := dc.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
			if cerrdefs.IsNotFound(err) && (retired || try < tries) {
				stale = stale || !retired
				continue
			}
			require.NoError(t, err, "inspect container %s %v", c.ID, c.Names)
			out = append(out, res.Container)
		}
		if !stale {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}
