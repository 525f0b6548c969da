package itest

import (
	"context"
	"testing"

	"github.com/moby/moby/client"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// RemoveMarkers removes the volumes a rollout leaves beside a Docker
// service by design (its fence markers, a hold), for a test that is done
// with the service: they are labelled with it and no container uses them.
func RemoveMarkers(ctx context.Context, dc *client.Client, service string) {
	vols, err := dc.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
	if err != nil {
		return
	}
	for _, v := range vols.Items {
		_, _ = dc.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
	}
}

// RemoveService removes a Docker service's containers (and the markers
// beside it) when the test ends.
func RemoveService(t testing.TB, dc *client.Client, service string) {
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", platform.LabelService+"="+service)})
		if err == nil {
			for _, c := range list.Items {
				_, _ = dc.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
		RemoveMarkers(ctx, dc, service)
	})
}
