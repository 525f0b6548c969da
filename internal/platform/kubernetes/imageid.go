package kubernetes

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// imageIDs returns the distinct image IDs the named container of the pods
// runs, as the kubelets report them (status.containerStatuses[].imageID),
// sorted; a pod whose kubelet reports none adds nothing.
func imageIDs(pods []corev1.Pod, container string) []string {
	var out []string
	for _, pod := range pods {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == container && cs.ImageID != "" {
				out = append(out, cs.ImageID)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// digest is the content digest in an image ID as a runtime reports it:
// "docker.io/library/app@sha256:…", "docker-pullable://app@sha256:…",
// "docker://sha256:…" and "sha256:…" all give "sha256:…".
func digest(imageID string) string {
	if _, rest, ok := strings.Cut(imageID, "://"); ok {
		imageID = rest
	}
	if i := strings.LastIndex(imageID, "@"); i >= 0 {
		imageID = imageID[i+1:]
	}
	return imageID
}

// pinned reports whether an image reference names its bytes by digest.
func pinned(image string) bool {
	return strings.Contains(image, "@sha256:")
}

// imageDrift compares the image IDs the restored pods run (the target
// container of pods) with those the snapshot's pods ran, and returns one
// sentence when they differ: a restore writes the snapshot's image
// reference back, and a tag that moved since makes the kubelets pull other
// bytes under the same name. Nothing is said when the snapshot recorded no
// IDs (nodes that report none) or the restored pods report none yet; a tag
// that is not pinned is said to be unverified in that case.
func imageDrift(ks platform.KubernetesSnapshot, pods []corev1.Pod, container string) string {
	if len(ks.ImageIDs) == 0 {
		return ""
	}
	ran := map[string]bool{}
	var was []string
	for _, id := range ks.ImageIDs {
		ran[digest(id)] = true
		was = append(was, digest(id))
	}
	was = slices.Compact(slices.Sorted(slices.Values(was)))
	var other []string
	seen := 0
	for _, id := range imageIDs(pods, container) {
		seen++
		if d := digest(id); !ran[d] {
			other = append(other, d)
		}
	}
	other = slices.Compact(slices.Sorted(slices.Values(other)))
	switch {
	case len(other) > 0:
		return fmt.Sprintf("image %q is restored, but the restored pods run %s where the snapshot's ran %s: the name now names other bytes",
			ks.Image, strings.Join(other, ", "), strings.Join(was, ", "))
	case seen == 0 && !pinned(ks.Image):
		return fmt.Sprintf("image %q is restored by a name not pinned by digest, and no restored pod reports its image ID yet: "+
			"it may run other bytes than the snapshot's %s", ks.Image, strings.Join(was, ", "))
	}
	return ""
}
