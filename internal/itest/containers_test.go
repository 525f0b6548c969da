//go:build integration

package itest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestServiceContainersReadsThroughRemovals reads a service's containers
// while they are removed under it, as a rollout does: some renamed to their
// retired name first, some removed as they are. Each read must succeed and
// return only containers that were there, under their own names; a listing
// gone stale between the list and an inspect is read again, not a failure
// (the fault suite's hung-version test failed on that once).
func TestServiceContainersReadsThroughRemovals(t *testing.T) {
	const image = "stagecraft-demo:v1"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dc := dockerWith(ctx, t, image)
	svc := itest.Name("itest-read")
	itest.RemoveService(t, dc, svc)
	const n = 12
	var ids []string
	for i := range n {
		created, err := dc.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:   fmt.Sprintf("%s-%d", svc, i),
			Config: &container.Config{Image: image, Labels: map[string]string{platform.LabelService: svc}},
		})
		if err != nil {
			t.Fatalf("create container %d: %v", i, err)
		}
		ids = append(ids, created.ID)
	}

	removed := make(chan error, 1)
	go func() {
		for i, id := range ids {
			if i%2 == 1 {
				if _, err := dc.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: fmt.Sprintf("%s-%d-retired-x", svc, i)}); err != nil {
					removed <- err
					return
				}
			}
			if _, err := dc.ContainerRemove(ctx, id, client.ContainerRemoveOptions{}); err != nil {
				removed <- err
				return
			}
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
		removed <- nil
	}()
	reads := 0
	for done := false; !done; reads++ {
		select {
		case err := <-removed:
			if err != nil {
				t.Fatalf("remove: %v", err)
			}
			done = true
		default:
		}
		for _, c := range itest.ServiceContainers(t, dc, svc) {
			if !strings.HasPrefix(c.Name, "/"+svc+"-") {
				t.Fatalf("read %q, not one of the service's containers", c.Name)
			}
		}
	}
	if left := itest.ServiceContainers(t, dc, svc); len(left) != 0 {
		t.Fatalf("%d containers read after all were removed", len(left))
	}
	t.Logf("%d reads while %d containers were removed", reads, n)
}

// dockerWith returns a client of the test's Docker engine, which must hold
// image (scripts/build-demo.sh builds the demo's).
func dockerWith(ctx context.Context, t *testing.T, image string) *client.Client {
	t.Helper()
	dc, err := itest.Docker()
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	if _, err := dc.ImageInspect(ctx, image); err != nil {
		t.Fatalf("image %s missing (run scripts/build-demo.sh): %v", image, err)
	}
	return dc
}
