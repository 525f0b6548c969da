package kubernetes

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
)

func TestFindImagePullError(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "demo:v2"}}}}}}
	pod := func(image, reason string) corev1.Pod {
		st := corev1.ContainerStatus{Name: "app", Image: image}
		if reason != "" {
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: "pull access denied"}
		}
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{st}}}
	}
	cases := []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{"running", []corev1.Pod{pod("demo:v2", "")}, ""},
		{"still creating", []corev1.Pod{pod("demo:v2", "ContainerCreating")}, ""},
		{"pull error", []corev1.Pod{pod("demo:v2", "ErrImagePull")}, "ErrImagePull"},
		{"no pods yet", nil, ""},
		{"backoff of the new image", []corev1.Pod{pod("demo:v2", "ImagePullBackOff")}, "ImagePullBackOff"},
		{"old image pod ignored", []corev1.Pod{pod("demo:v1", "ImagePullBackOff")}, ""},
		{"invalid name", []corev1.Pod{pod("demo:v2", "InvalidImageName")}, "InvalidImageName"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := findImagePullError(d, c.pods)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			var ipe *ImagePullError
			if !errors.As(err, &ipe) || ipe.Reason != c.want || !errors.Is(err, platform.ErrProgressDeadline) {
				t.Fatalf("got %v, want %s", err, c.want)
			}
		})
	}
}
