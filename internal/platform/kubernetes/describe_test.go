package kubernetes

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Describe says, per desired state, the objects Converge writes: the
// canary beside the stable Deployment, green and the Service's switch, the
// promotion of the user's own Deployment, and the restore.
func TestDescribeSaysWhatEachConvergeWrites(t *testing.T) {
	four := int32(4)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", UID: "d-uid"},
		Spec: appsv1.DeploymentSpec{Replicas: &four, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web:v1"}}}}},
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	p := NewForClient(fake.NewClientset(d, svc), nil)
	s := spec.Spec{Service: "web", Image: "web:v2",
		Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Namespace: "prod", Deployment: "web", Service: "web"}}}
	snap, err := p.Snapshot(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		d    plan.Desired
		want []string
	}{
		{"canary", plan.Desired{New: 1, Old: 3, Traffic: plan.TrafficShared, Order: plan.Surge},
			[]string{"Deployment prod/web-canary with 1 replica(s) of web:v2", "Deployment prod/web scaled to 3", "Service prod/web unchanged"}},
		{"green up", plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge},
			[]string{"Deployment prod/web-green with 4 replica(s) of web:v2", "Service prod/web keeps selecting blue (app=web)"}},
		{"switch", plan.Desired{New: 4, Old: 4, Traffic: plan.TrafficNew, Order: plan.Surge},
			[]string{"Service prod/web selector switched to green"}},
		{"final", plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.Surge},
			[]string{"the canary grows to 4 replica(s) in steps of Deployment prod/web's maxSurge, then Deployment prod/web takes its ReplicaSet over",
				"Deployment prod/web updated to web:v2, 4 replica(s)", "Deployment prod/web-canary and Deployment prod/web-green deleted"}},
		{"recreate", plan.Desired{New: 4, Traffic: plan.TrafficNew, Order: plan.StopFirst},
			[]string{"Deployment prod/web scaled to 0 first (stop-first)"}},
		{"rollback", plan.Desired{Old: 4, Traffic: plan.TrafficOld, Order: plan.Surge},
			[]string{"Deployment prod/web back to its snapshot: web:v1, 4 replica(s)", "Service prod/web selector back to its snapshot's (app=web)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := p.Describe(s, snap, tc.d)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("describe %s:\n%s\nwant a line with %q", tc.name, all, w)
				}
			}
		})
	}
}
