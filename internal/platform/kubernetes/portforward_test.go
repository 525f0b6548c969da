package kubernetes

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/stagecraft/stagecraft/internal/spec"
)

func TestParseCheckVia(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"", CheckViaPodIP, false},
		{"podIP", CheckViaPodIP, false},
		{"portForward", CheckViaPortForward, false},
		{"auto", CheckViaAuto, false},
		{"portforward", "", true},
		{"clusterIP", "", true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCheckVia(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("ParseCheckVia(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

// TestCheckMode: the Platform's setting decides; auto is podIP only for a
// worker in the cluster (in-cluster configuration: no kubeconfig in the
// spec, $KUBECONFIG unset, KUBERNETES_SERVICE_HOST set), portForward
// otherwise; the zero value stays podIP, so tests on KWOK (whose pods have
// no kubelet to forward to) keep their pod IPs.
func TestCheckMode(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		setting, kubeconfig       string
		envKubeconfig, envService string
		want                      string
	}{
		{name: "zero value", want: CheckViaPodIP},
		{name: "zero value outside", kubeconfig: "/k", want: CheckViaPodIP},
		{name: "podIP", setting: CheckViaPodIP, kubeconfig: "/k", want: CheckViaPodIP},
		{name: "portForward in cluster", setting: CheckViaPortForward, envService: "10.96.0.1", want: CheckViaPortForward},
		{name: "auto in cluster", setting: CheckViaAuto, envService: "10.96.0.1", want: CheckViaPodIP},
		{name: "auto, spec kubeconfig", setting: CheckViaAuto, kubeconfig: "/k", envService: "10.96.0.1", want: CheckViaPortForward},
		{name: "auto, $KUBECONFIG", setting: CheckViaAuto, envKubeconfig: "/k", envService: "10.96.0.1", want: CheckViaPortForward},
		{name: "auto, not in a cluster", setting: CheckViaAuto, want: CheckViaPortForward},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.envKubeconfig)
			t.Setenv("KUBERNETES_SERVICE_HOST", tc.envService)
			p := New(nil)
			p.CheckVia = tc.setting
			s := spec.Spec{Platform: spec.Platform{Kubernetes: &spec.Kubernetes{Deployment: "web", Kubeconfig: tc.kubeconfig}}}
			if got := p.checkMode(s); got != tc.want {
				t.Fatalf("check mode = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestForwardBound: past MaxForwards, the forwards asked for least recently
// close first, never one the current call asks for.
func TestForwardBound(t *testing.T) {
	p := New(nil)
	p.MaxForwards = 3
	now := time.Now()
	keys := make([]forwardKey, 5)
	for i := range keys {
		keys[i] = forwardKey{pod: types.UID(string(rune('a' + i))), port: 8080}
		f := &forward{key: keys[i], used: now.Add(time.Duration(i) * time.Second), stop: make(chan struct{}), closed: make(chan struct{})}
		if p.fw.m == nil {
			p.fw.m = map[forwardKey]*forward{}
		}
		p.fw.m[keys[i]] = f
	}
	// The call asks for a (the oldest) and e: b and c go.
	p.fw.mu.Lock()
	err := p.boundLocked(map[forwardKey]bool{keys[0]: true, keys[4]: true})
	p.fw.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for k := range p.fw.m {
		left = append(left, string(k.pod))
	}
	if len(left) != 3 || p.fw.m[keys[0]] == nil || p.fw.m[keys[3]] == nil || p.fw.m[keys[4]] == nil {
		t.Fatalf("left %v; want a, d, e", left)
	}
	p.fw.mu.Lock()
	err = p.boundLocked(map[forwardKey]bool{keys[0]: true, keys[1]: true, keys[2]: true, keys[3]: true})
	p.fw.mu.Unlock()
	if err == nil {
		t.Fatal("4 pods to forward with a limit of 3: want an error")
	}
}

// TestForwardIdleExpiry: with nobody calling Endpoints again (a stage has
// ended), the sweep closes the forwards not asked for in ForwardIdle and
// stops once none is left; a forward whose connection is lost goes too.
func TestForwardIdleExpiry(t *testing.T) {
	p := New(nil)
	p.ForwardIdle = 100 * time.Millisecond
	mk := func(pod string, used time.Time) *forward {
		return &forward{key: forwardKey{pod: types.UID(pod), port: 8080}, used: used, stop: make(chan struct{}), closed: make(chan struct{})}
	}
	p.fw.m = map[forwardKey]*forward{}
	fresh, lost := mk("fresh", time.Now().Add(time.Hour)), mk("lost", time.Now().Add(time.Hour))
	stale := mk("stale", time.Now().Add(-time.Minute))
	for _, f := range []*forward{fresh, lost, stale} {
		p.fw.m[f.key] = f
	}
	close(lost.closed)
	p.fw.mu.Lock()
	p.startJanitorLocked()
	p.fw.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for p.ForwardCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d forwards left; want only the fresh one", p.ForwardCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-stale.stop:
	default:
		t.Fatal("the stale forward was forgotten but not closed")
	}
	p.fw.mu.Lock()
	fresh.used = time.Now().Add(-time.Minute)
	p.fw.mu.Unlock()
	for {
		p.fw.mu.Lock()
		n, running := len(p.fw.m), p.fw.janitor
		p.fw.mu.Unlock()
		if n == 0 && !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d forwards left, sweep running %v; want none and the sweep stopped", n, running)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
