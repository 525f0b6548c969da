package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// How Endpoints reaches a pod for the checks that run per instance
// ({{.Address}}): the spec's platform.kubernetes.checkVia, else
// Platform.CheckVia.
const (
	// CheckViaPodIP: the pod's own IP and container port. Only a worker
	// inside the cluster network can dial it.
	CheckViaPodIP = spec.CheckViaPodIP
	// CheckViaPortForward: a 127.0.0.1 port the worker forwards to the pod's
	// container port through the API server (the path `kubectl
	// port-forward` takes), from anywhere the API server is reachable. The
	// worker's account needs create on pods/portforward.
	CheckViaPortForward = spec.CheckViaPortForward
	// CheckViaAuto: podIP when the worker runs in the cluster (its client
	// uses the in-cluster configuration), portForward otherwise.
	CheckViaAuto = "auto"
)

// ParseCheckVia checks a CheckVia setting ("" is podIP).
func ParseCheckVia(s string) (string, error) {
	switch s {
	case "":
		return CheckViaPodIP, nil
	case CheckViaPodIP, CheckViaPortForward, CheckViaAuto:
		return s, nil
	}
	return "", fmt.Errorf("check via %q: want %s, %s or %s", s, CheckViaPodIP, CheckViaPortForward, CheckViaAuto)
}

// Port-forward bounds: Platform.MaxForwards and Platform.ForwardIdle.
const (
	// DefaultMaxForwards bounds the forwards a Platform keeps open (each is
	// one connection to the API server and one local listener); past it the
	// one asked for least recently is closed first.
	DefaultMaxForwards = 256
	// DefaultForwardIdle closes a forward no Endpoints call has asked for in
	// that long. The end of a stage is not visible to the platform: idle
	// expiry is how a finished stage's forwards close.
	DefaultForwardIdle = 2 * time.Minute
	// forwardSetup bounds the wait for a new forward (the upgrade through
	// the API server to the kubelet).
	forwardSetup = 15 * time.Second
)

// checkVia is how s's pods are reached when neither the spec
// (platform.kubernetes.checkVia) nor the worker says: podIP when the worker
// runs in the cluster (no kubeconfig in the spec, $KUBECONFIG unset,
// KUBERNETES_SERVICE_HOST set: restConfig then uses the in-cluster
// configuration), portForward otherwise.
func checkVia(s spec.Spec) string {
	if k := s.Platform.Kubernetes; k != nil && k.Kubeconfig == "" &&
		os.Getenv("KUBECONFIG") == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return CheckViaPodIP
	}
	return CheckViaPortForward
}

// checkMode is how Endpoints reaches s's pods: the spec's
// platform.kubernetes.checkVia when it names one (the spec author knows
// where the pods can be reached from), else the Platform's CheckVia, with
// auto resolved per spec by checkVia.
func (p *Platform) checkMode(s spec.Spec) string {
	if k := s.Platform.Kubernetes; k != nil {
		switch k.CheckVia {
		case spec.CheckViaPodIP:
			return CheckViaPodIP
		case spec.CheckViaPortForward:
			return CheckViaPortForward
		}
	}
	switch p.CheckVia {
	case CheckViaAuto:
		return checkVia(s)
	case CheckViaPortForward:
		return CheckViaPortForward
	default:
		return CheckViaPodIP
	}
}

// forwardKey names a forward: one container port of one pod (by UID, so a
// pod replaced under the same name gets a forward of its own) in one
// cluster.
type forwardKey struct {
	cluster clientKey
	pod     types.UID
	port    int32
}

// forward is one port-forward to a pod, listening on 127.0.0.1:local.
type forward struct {
	key    forwardKey
	target string // namespace/deployment whose Endpoints asked for it
	ns     string
	pod    string
	local  int
	setup  time.Duration
	used   time.Time
	ready  chan struct{} // closed once up (err nil) or failed (err set)
	err    error
	stop   chan struct{} // closed to close the forward
	once   sync.Once
	closed chan struct{} // closed when the forward has ended, whatever the cause
}

func (f *forward) close() { f.once.Do(func() { close(f.stop) }) }

// broken reports whether the forward has ended (its connection lost).
func (f *forward) broken() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// forwards are a Platform's open port-forwards.
type forwards struct {
	mu      sync.Mutex
	m       map[forwardKey]*forward
	janitor bool
}

// podTarget is a pod Endpoints reaches, and its container port.
type podTarget struct {
	pod  corev1.Pod
	port int32
}

// forwardedAddresses returns "127.0.0.1:<local port>" for each pod, from a
// forward kept across calls: reused while its connection lives, set up
// again once it is lost. Forwards of target (namespace/deployment) whose
// pods are not among alive, the target's pods as listed at listed, are
// closed (one asked for since, by a call that listed later, is not), and so
// is any forward not asked for in ForwardIdle.
func (p *Platform) forwardedAddresses(ctx context.Context, cluster clientKey, cfg *rest.Config, target string, pods []podTarget, alive map[types.UID]bool, listed time.Time) ([]string, error) {
	now := time.Now()
	want := make([]*forward, 0, len(pods))
	p.fw.mu.Lock()
	if p.fw.m == nil {
		p.fw.m = map[forwardKey]*forward{}
	}
	for key, f := range p.fw.m {
		switch {
		case f.broken():
			p.dropLocked(f, "connection lost")
		case f.target == target && key.cluster == cluster && !alive[key.pod] && f.used.Before(listed):
			p.dropLocked(f, "pod gone")
		case now.Sub(f.used) > p.idle():
			p.dropLocked(f, "idle")
		}
	}
	asked := map[forwardKey]bool{}
	for _, pt := range pods {
		key := forwardKey{cluster: cluster, pod: pt.pod.UID, port: pt.port}
		asked[key] = true
		f := p.fw.m[key]
		if f == nil {
			f = &forward{key: key, target: target, ns: pt.pod.Namespace, pod: pt.pod.Name,
				ready: make(chan struct{}), stop: make(chan struct{}), closed: make(chan struct{})}
			p.fw.m[key] = f
			go p.open(cfg, f)
		}
		f.used = now
		want = append(want, f)
	}
	if err := p.boundLocked(asked); err != nil {
		p.fw.mu.Unlock()
		return nil, err
	}
	p.startJanitorLocked()
	p.fw.mu.Unlock()

	wait, cancel := context.WithTimeout(ctx, forwardSetup)
	defer cancel()
	out := make([]string, 0, len(want))
	var errs []error
	for _, f := range want {
		select {
		case <-f.ready:
		case <-wait.Done():
			p.fw.mu.Lock()
			p.dropLocked(f, "setup timed out")
			p.fw.mu.Unlock()
			errs = append(errs, fmt.Errorf("port-forward to pod %q port %d: not up after %s: %w", f.ns+"/"+f.pod, f.key.port, forwardSetup, wait.Err()))
			continue
		}
		if f.err != nil {
			p.fw.mu.Lock()
			p.dropLocked(f, "setup failed")
			p.fw.mu.Unlock()
			errs = append(errs, f.err)
			continue
		}
		out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(f.local)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// open sets f up through the API server and keeps it until f.stop closes
// or its connection is lost.
func (p *Platform) open(cfg *rest.Config, f *forward) {
	start := time.Now()
	defer close(f.closed)
	fail := func(err error) {
		f.err = fmt.Errorf("port-forward to pod %q port %d: %w", f.ns+"/"+f.pod, f.key.port, err)
		close(f.ready)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(err)
		return
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		fail(err)
		return
	}
	url := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.ns).Name(f.pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	up := make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", f.key.port)},
		f.stop, up, io.Discard, io.Discard)
	if err != nil {
		fail(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-up:
	case err := <-done:
		fail(forwardError(err))
		return
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		f.close()
		<-done
		fail(fmt.Errorf("local ports %v: %v", ports, err))
		return
	}
	f.local, f.setup = int(ports[0].Local), time.Since(start)
	close(f.ready)
	p.log.Debug("port-forward open", zap.String("pod", f.ns+"/"+f.pod), zap.Int32("port", f.key.port),
		zap.Int("local", f.local), zap.Duration("setup", f.setup))
	if err := <-done; err != nil && !isStopped(f) {
		p.log.Info("port-forward lost; the next round sets it up again", zap.String("pod", f.ns+"/"+f.pod),
			zap.Int32("port", f.key.port), zap.Int("local", f.local), zap.Error(err))
	}
}

func isStopped(f *forward) bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// forwardError names what an RBAC refusal needs: the upgrade's error text
// carries the API server's answer.
func forwardError(err error) error {
	if err == nil {
		return errors.New("connection closed before it was up")
	}
	return fmt.Errorf("%w (the worker's account needs create on pods/portforward, and the API server must reach the pod's kubelet)", err)
}

// dropLocked closes f and forgets it. p.fw.mu is held.
func (p *Platform) dropLocked(f *forward, why string) {
	if p.fw.m[f.key] == f {
		delete(p.fw.m, f.key)
	}
	f.close()
	p.log.Debug("port-forward closed", zap.String("pod", f.ns+"/"+f.pod), zap.Int32("port", f.key.port),
		zap.String("why", why))
}

// boundLocked closes the forwards asked for least recently until at most
// MaxForwards remain, never one of asked (this call's).
func (p *Platform) boundLocked(asked map[forwardKey]bool) error {
	limit := p.MaxForwards
	if limit <= 0 {
		limit = DefaultMaxForwards
	}
	if len(asked) > limit {
		return fmt.Errorf("port-forward: %d pods to reach, more than the %d forwards a worker keeps (--kube-check-via podIP from inside the cluster has no such limit)", len(asked), limit)
	}
	if len(p.fw.m) <= limit {
		return nil
	}
	var idle []*forward
	for key, f := range p.fw.m {
		if !asked[key] {
			idle = append(idle, f)
		}
	}
	slices.SortFunc(idle, func(a, b *forward) int { return a.used.Compare(b.used) })
	for _, f := range idle[:len(p.fw.m)-limit] {
		p.dropLocked(f, "over the limit of forwards")
	}
	return nil
}

func (p *Platform) idle() time.Duration {
	if p.ForwardIdle > 0 {
		return p.ForwardIdle
	}
	return DefaultForwardIdle
}

// startJanitorLocked runs, while any forward is open, a sweep that closes
// the idle ones, so a finished stage's forwards close though no one calls
// Endpoints again. p.fw.mu is held.
func (p *Platform) startJanitorLocked() {
	if p.fw.janitor || len(p.fw.m) == 0 {
		return
	}
	p.fw.janitor = true
	go func() {
		tick := time.NewTicker(max(p.idle()/4, 10*time.Millisecond))
		defer tick.Stop()
		for range tick.C {
			p.fw.mu.Lock()
			now := time.Now()
			for _, f := range p.fw.m {
				switch {
				case f.broken():
					p.dropLocked(f, "connection lost")
				case now.Sub(f.used) > p.idle():
					p.dropLocked(f, "idle")
				}
			}
			if len(p.fw.m) == 0 {
				p.fw.janitor = false
				p.fw.mu.Unlock()
				return
			}
			p.fw.mu.Unlock()
		}
	}()
}

// Close closes every port-forward the Platform holds.
func (p *Platform) Close() {
	p.fw.mu.Lock()
	defer p.fw.mu.Unlock()
	for _, f := range p.fw.m {
		p.dropLocked(f, "platform closed")
	}
}

// ForwardCount is the number of port-forwards open (tests, metrics).
func (p *Platform) ForwardCount() int {
	p.fw.mu.Lock()
	defer p.fw.mu.Unlock()
	return len(p.fw.m)
}
