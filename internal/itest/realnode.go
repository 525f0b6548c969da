package itest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/health"
	kubeplatform "github.com/stagecraft/stagecraft/internal/platform/kubernetes"
	"github.com/stagecraft/stagecraft/internal/spec"
	"github.com/stagecraft/stagecraft/workflows"
)

// RealNodeEnv is the switch scripts/kube/up.sh reads to add the real node.
const RealNodeEnv = "STAGECRAFT_KUBE_REAL_NODE"

// KubeRealNode is KubePlane with the real node (scripts/kube/node.sh): a
// kubelet named `localhost` on 127.0.0.1 with a containerd of its own, the
// demo images stagecraft-demo:v1, :v2, :v2-bad and :v2-hang imported from the
// local Docker engine (pods use imagePullPolicy IfNotPresent; nothing is
// pulled). Plain pods run there for real; the KWOK node is tainted. Pods are
// reached only through the API server's port-forward (PortForward): their IPs
// are on a bridge of the node's own, never dialled.
func KubeRealNode() (kubeconfig string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "stagecraft-kube-")
	if err != nil {
		return "", nil, err
	}
	up := exec.Command("bash", filepath.Join(Root(), "scripts", "kube", "up.sh"), dir)
	up.Env = append(os.Environ(), RealNodeEnv+"=1")
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Run(); err != nil {
		// The node's own logs say why (up.sh has stopped everything by now).
		for _, name := range []string{"containerd", "kubelet"} {
			if b, rerr := os.ReadFile(filepath.Join(dir, "logs", name+".log")); rerr == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				fmt.Fprintf(os.Stderr, "--- %s.log (last 40 lines)\n%s\n", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("%s=1 scripts/kube/up.sh: %w", RealNodeEnv, err)
	}
	stop = func() {
		down := exec.Command("bash", filepath.Join(Root(), "scripts", "kube", "down.sh"), dir)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		_ = down.Run()
	}
	return filepath.Join(dir, "kubeconfig"), stop, nil
}

// PortForward forwards a free 127.0.0.1 port to port of pod ns/name through
// the API server (the path `kubectl port-forward` takes: apiserver → kubelet
// → the pod's own loopback) and returns that local port once it listens.
// stop closes the forward. Errors the forward meets after it is up (a pod
// gone, a broken stream) fail only the connections that meet them.
func PortForward(ctx context.Context, cfg *rest.Config, ns, pod string, port int) (local int, stop func(), err error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, nil, err
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return 0, nil, err
	}
	url := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	stopCh, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)},
		stopCh, ready, io.Discard, io.Discard)
	if err != nil {
		return 0, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	var once sync.Once
	stop = func() { once.Do(func() { close(stopCh) }) }
	select {
	case <-ready:
	case err := <-done:
		return 0, nil, fmt.Errorf("port-forward to %s/%s:%d: %v", ns, pod, port, err)
	case <-ctx.Done():
		stop()
		return 0, nil, fmt.Errorf("port-forward to %s/%s:%d: %w", ns, pod, port, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		stop()
		return 0, nil, fmt.Errorf("port-forward to %s/%s:%d: local ports %v: %v", ns, pod, port, ports, err)
	}
	return int(ports[0].Local), stop, nil
}

// StartKubeWorker runs an in-process worker on c whose only platform is
// kube (e.g. a Kubernetes platform set to reach pods through port-forward),
// with the zero health.Checker, until the test ends.
func StartKubeWorker(t testing.TB, c tclient.Client, kube *kubeplatform.Platform) {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	w := worker.New(c, api.TaskQueue, worker.Options{StickyScheduleToStartTimeout: time.Second})
	workflows.Register(w)
	w.RegisterActivity(&activities.Activities{
		Platforms: map[string]activities.Platform{spec.PlatformKubernetes: kube},
		Checker:   &health.Checker{},
		Server:    c,
		Log:       log,
	})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
}
