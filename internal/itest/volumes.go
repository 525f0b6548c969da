package itest

import (
	"context"

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
