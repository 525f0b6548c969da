package kubernetes

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// podRunning is a pod whose container "app" (and a sidecar) run the given
// image IDs; "" is a kubelet that reports none.
func podRunning(name, appID string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", Labels: map[string]string{"app": "web"}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", ImageID: appID},
			{Name: "sidecar", ImageID: "docker.io/library/proxy@sha256:5555"},
		}},
	}
}

func TestImageIDs(t *testing.T) {
	pods := []corev1.Pod{podRunning("a", "docker.io/library/web@sha256:1111"), podRunning("b", ""),
		podRunning("c", "docker.io/library/web@sha256:1111"), podRunning("d", "sha256:2222")}
	want := []string{"docker.io/library/web@sha256:1111", "sha256:2222"}
	if got := imageIDs(pods, "app"); !reflect.DeepEqual(got, want) {
		t.Errorf("imageIDs = %q, want %q", got, want)
	}
}

func TestDigest(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/web@sha256:1111":     "sha256:1111",
		"docker-pullable://web@sha256:1111":     "sha256:1111",
		"docker://sha256:1111":                  "sha256:1111",
		"sha256:1111":                           "sha256:1111",
		"registry:5000/team/web@sha256:1111":    "sha256:1111",
		"":                                      "",
		"containerd://registry/web@sha256:1111": "sha256:1111",
	} {
		if got := digest(in); got != want {
			t.Errorf("digest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImageDrift(t *testing.T) {
	ran := []string{"docker.io/library/web@sha256:1111"}
	for _, tc := range []struct {
		name     string
		image    string
		recorded []string
		pods     []corev1.Pod
		want     string // a substring; "" means no drift
	}{
		{"same bytes", "web:v1", ran, []corev1.Pod{podRunning("a", "docker.io/library/web@sha256:1111")}, ""},
		{"same digest, other spelling", "web:v1", ran, []corev1.Pod{podRunning("a", "docker-pullable://web@sha256:1111")}, ""},
		{"tag moved", "web:v1", ran, []corev1.Pod{podRunning("a", "docker.io/library/web@sha256:1111"),
			podRunning("b", "docker.io/library/web@sha256:9999")},
			`image "web:v1" is restored, but the restored pods run sha256:9999 where the snapshot's ran sha256:1111`},
		{"nothing recorded (KWOK)", "web:v1", nil, []corev1.Pod{podRunning("a", "sha256:9999")}, ""},
		{"restored pods report nothing, tag", "web:v1", ran, []corev1.Pod{podRunning("a", "")},
			"not pinned by digest"},
		{"restored pods report nothing, digest", "web@sha256:1111", ran, []corev1.Pod{podRunning("a", "")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := imageDrift(platform.KubernetesSnapshot{Image: tc.image, ImageIDs: tc.recorded}, tc.pods, "app")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("imageDrift = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSnapshotRecordsImageIDs checks that a snapshot records the image IDs
// the Deployment's own pods ran (not those of another Deployment's pods
// matching its selector).
func TestSnapshotRecordsImageIDs(t *testing.T) {
	one := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", UID: "d-uid"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "app", Image: "web:v1"}, {Name: "sidecar", Image: "proxy:v1"}}}}},
	}
	ctrl := true
	rs := func(name string, owner types.UID) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", UID: types.UID(name + "-uid"),
			Labels:          map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{UID: owner, Controller: &ctrl, Kind: "Deployment", Name: "x"}}}}
	}
	owned := func(p corev1.Pod, rsName string) *corev1.Pod {
		p.OwnerReferences = []metav1.OwnerReference{{UID: types.UID(rsName + "-uid"), Controller: &ctrl, Kind: "ReplicaSet", Name: rsName}}
		return &p
	}
	cs := fake.NewClientset(d, rs("web-1", "d-uid"), rs("web-canary-1", "other-uid"),
		owned(podRunning("web-1-a", "docker.io/library/web@sha256:1111"), "web-1"),
		owned(podRunning("web-1-b", ""), "web-1"),
		owned(podRunning("web-canary-1-a", "docker.io/library/web@sha256:9999"), "web-canary-1"))
	p := NewForClient(cs, nil)
	snap, err := p.Snapshot(t.Context(), spec.Spec{Service: "web", Image: "web:v2",
		Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: "prod", Deployment: "web", Container: "app"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"docker.io/library/web@sha256:1111"}; !reflect.DeepEqual(snap.Kubernetes.ImageIDs, want) {
		t.Errorf("snapshot image IDs = %q, want %q", snap.Kubernetes.ImageIDs, want)
	}
}
