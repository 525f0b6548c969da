// Package kubernetes converges a Deployment (and the Service in front of it)
// in a Kubernetes cluster through client-go.
//
// The target is an existing Deployment, the "stable" one, and optionally the
// Service selecting its pods. A rollout adds at most one Deployment of its
// own beside it, named after the stable one:
//
//   - "<deployment>-canary" for shared traffic (canary, rolling): its pods
//     are the stable template's with the new image and nothing else, and
//     its selector is the stable one, so the Service sends them their share
//     of requests and, at the last step, the stable Deployment takes the
//     canary's ReplicaSet over as its own (adopt.go): each new pod starts
//     once;
//   - "<deployment>-green" for blue-green: its pods lack the labels the
//     Service selects on and carry stagecraft.color=green instead, so they get
//     no traffic until the Service's selector is switched to them.
//
// Both Deployments carry the stagecraft.service, stagecraft.rollout and
// stagecraft.role labels (green's pods too). Pods belong to a Deployment
// through their ReplicaSet's controller reference, never by selector. When
// the rollout ends, the stable Deployment carries the new image and the
// rollout's Deployment is gone, so the cluster looks as if the Deployment
// had been edited by hand (its newest ReplicaSet named after the canary):
// nothing of Stagecraft's is left behind but the annotation
// stagecraft.io/fence on the Deployment and the Service, which outlives the
// rollout so that none of its timed-out attempts can change the target
// afterwards (fence.go).
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Labels this package adds to the pods of the Deployments it creates.
const (
	// LabelTrack tells a rollout's pods from the stable Deployment's:
	// "canary" or "green".
	LabelTrack = "stagecraft.track"
	// LabelColor marks blue-green's new pods; the Service selects on it after
	// the switch.
	LabelColor = "stagecraft.color"
)

const (
	trackCanary = "canary"
	trackGreen  = "green"
	colorGreen  = "green"
)

// TargetNotFoundError says the target the spec names does not exist or
// cannot be used as named: a missing Deployment or Service, or a container
// that the pod template does not have. Retrying does not help.
type TargetNotFoundError struct {
	// Kind is "deployment", "service" or "container".
	Kind string
	// Namespace and Name name the object; Namespace is empty for a container.
	Namespace string
	Name      string
	// In names the object a container was looked for in, e.g. `deployment "prod/payment"`.
	In string
	// Detail says why, when the object exists but is ambiguous.
	Detail string
}

func (e *TargetNotFoundError) Error() string {
	name := e.Name
	if e.Namespace != "" {
		name = e.Namespace + "/" + e.Name
	}
	msg := fmt.Sprintf("%s %q not found", e.Kind, name)
	if e.In != "" {
		msg += " in " + e.In
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap lets the activities layer classify it as the platform-wide
// non-retryable TargetNotFound.
func (e *TargetNotFoundError) Unwrap() error { return &platform.TargetNotFoundError{What: e.Error()} }

// IsTargetNotFound reports whether err is or wraps a *TargetNotFoundError.
func IsTargetNotFound(err error) bool {
	var e *TargetNotFoundError
	return errors.As(err, &e)
}

// ProgressDeadlineError says a Deployment's controller gave up waiting for
// its pods: condition Progressing=False, reason ProgressDeadlineExceeded.
type ProgressDeadlineError struct {
	Namespace, Deployment string
	// Message is the condition's message, as the controller wrote it.
	Message string
}

func (e *ProgressDeadlineError) Error() string {
	return fmt.Sprintf("deployment %q: ProgressDeadlineExceeded: %s", e.Namespace+"/"+e.Deployment, e.Message)
}

// Unwrap marks it as a platform-wide stalled rollout: the stage fails.
func (e *ProgressDeadlineError) Unwrap() error { return platform.ErrProgressDeadline }

// ImagePullError says a pod of a Deployment being rolled out cannot pull its
// image (ErrImagePull, ImagePullBackOff, InvalidImageName).
type ImagePullError struct {
	Namespace, Pod, Image, Reason, Message string
}

func (e *ImagePullError) Error() string {
	return fmt.Sprintf("pod %q cannot pull image %q: %s: %s", e.Namespace+"/"+e.Pod, e.Image, e.Reason, e.Message)
}

// Unwrap marks it as a stalled rollout: the stage fails without retrying.
func (e *ImagePullError) Unwrap() error { return platform.ErrProgressDeadline }

// imagePullReasons are the kubelet's waiting reasons for an image it cannot get.
var imagePullReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// findImagePullError returns the first pod of d's current template (same
// images) whose container waits on an image it cannot pull.
func findImagePullError(d *appsv1.Deployment, pods []corev1.Pod) error {
	images := map[string]bool{}
	for _, ctr := range d.Spec.Template.Spec.Containers {
		images[ctr.Image] = true
	}
	for _, pod := range pods {
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && imagePullReasons[w.Reason] && images[cs.Image] {
				return &ImagePullError{Namespace: pod.Namespace, Pod: pod.Name, Image: cs.Image, Reason: w.Reason, Message: w.Message}
			}
		}
	}
	return nil
}

// Platform converges Deployments through client-go.
type Platform struct {
	log *zap.Logger
	// fixed, when set, serves every spec (tests).
	fixed kubernetes.Interface
	// QPS and Burst limit each cluster's client (one per kubeconfig and
	// context, shared by every rollout on that cluster). client-go's own
	// defaults (5/s, burst 10) starve a worker holding many rollouts: New
	// sets DefaultQPS and DefaultBurst.
	QPS   float32
	Burst int
	// CheckVia is how Endpoints reaches pods for the checks that run per
	// instance: CheckViaPodIP (also the zero value), CheckViaPortForward or
	// CheckViaAuto (podIP in the cluster, portForward outside it).
	CheckVia string
	// MaxForwards bounds the port-forwards kept open (DefaultMaxForwards
	// when 0); ForwardIdle closes one not asked for in that long
	// (DefaultForwardIdle when 0).
	MaxForwards int
	ForwardIdle time.Duration
	// Clusters are the clusters a spec may name (platform.kubernetes.
	// cluster), each a kubeconfig and context of the worker's. When set, a
	// spec's own kubeconfig or context is refused unless SpecPaths: whoever
	// writes a spec must not choose the worker's credentials.
	Clusters  map[string]Cluster
	SpecPaths bool

	mu      sync.Mutex
	clients map[clientKey]kubernetes.Interface
	// configs are the clients' REST configurations, unwrapped, for the
	// port-forwards' own connections.
	configs map[clientKey]*rest.Config
	fw      forwards
}

type clientKey struct{ kubeconfig, context string }

// Cluster is a cluster the worker's operator configured by name.
type Cluster struct {
	Kubeconfig string
	Context    string
}

// kubeconfigOf is the kubeconfig and context k's client uses: its named
// cluster's, or (on a worker that allows them) its own, or the worker's
// default. A cluster the worker does not know, or a path it does not
// allow, is an error naming the field (platform.ErrSpecRefused).
func (p *Platform) kubeconfigOf(k *spec.Kubernetes) (path, kubeContext string, err error) {
	switch {
	case k.Cluster != "":
		c, ok := p.Clusters[k.Cluster]
		if !ok {
			names := slices.Sorted(maps.Keys(p.Clusters))
			return "", "", fmt.Errorf("platform.kubernetes.cluster: %q is not a cluster this worker knows (it knows %s; worker --cluster NAME=KUBECONFIG[:CONTEXT]): %w",
				k.Cluster, orNone(names), platform.ErrSpecRefused)
		}
		return c.Kubeconfig, c.Context, nil
	case (k.Kubeconfig != "" || k.Context != "") && !p.SpecPaths:
		return "", "", fmt.Errorf("platform.kubernetes.kubeconfig/context: this worker takes clusters by name (platform.kubernetes.cluster), not a kubeconfig or context of the spec's choosing (worker --allow-kubeconfig-paths allows them, for local development): %w",
			platform.ErrSpecRefused)
	}
	return k.Kubeconfig, k.Context, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// The default client rate limit per cluster: enough for a few hundred
// rollouts baking with per-instance checks (a round reads about six
// objects), well under what an API server's priority and fairness gives one
// client by default.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// New returns a Platform that builds a client per spec from its kubeconfig
// and context (default $KUBECONFIG, then the in-cluster configuration) and
// keeps it for later calls. A nil log discards logs.
func New(log *zap.Logger) *Platform {
	if log == nil {
		log = zap.NewNop()
	}
	return &Platform{log: log, clients: map[clientKey]kubernetes.Interface{}, configs: map[clientKey]*rest.Config{},
		QPS: DefaultQPS, Burst: DefaultBurst, SpecPaths: true}
}

// NewForClient returns a Platform that uses cs for every spec, whatever its
// kubeconfig says.
func NewForClient(cs kubernetes.Interface, log *zap.Logger) *Platform {
	p := New(log)
	p.fixed = cs
	return p
}

// client returns the clientset for k's cluster.
func (p *Platform) client(k *spec.Kubernetes) (kubernetes.Interface, error) {
	cs, _, err := p.cluster(k)
	return cs, err
}

// cluster returns the clientset for k's cluster and its REST configuration
// (nil for a Platform made with NewForClient).
func (p *Platform) cluster(k *spec.Kubernetes) (kubernetes.Interface, *rest.Config, error) {
	if p.fixed != nil {
		return p.fixed, nil, nil
	}
	path, kubeContext, err := p.kubeconfigOf(k)
	if err != nil {
		return nil, nil, err
	}
	key := clientKey{kubeconfig: path, context: kubeContext}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cs, ok := p.clients[key]; ok {
		return cs, p.configs[key], nil
	}
	cfg, err := restConfig(path, kubeContext)
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = p.QPS, p.Burst
	// A port-forward's upgrade is not retried: it gets the configuration
	// before the retrying wrapper.
	plain := rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return retryTransient{next: rt} })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if p.configs == nil {
		p.configs = map[clientKey]*rest.Config{}
	}
	p.clients[key], p.configs[key] = cs, plain
	return cs, plain, nil
}

// restConfig loads the kubeconfig at path (or the files $KUBECONFIG lists)
// with context as current context; with neither, the in-cluster configuration.
func restConfig(path, context string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	if path == "" {
		env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
		if env == "" {
			cfg, err := rest.InClusterConfig()
			if err != nil {
				return nil, fmt.Errorf("kubernetes config: no kubeconfig in the spec, $KUBECONFIG unset, and not in a cluster: %w", err)
			}
			return cfg, nil
		}
		rules.Precedence = filepath.SplitList(env)
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes config (kubeconfig %q, context %q): %w", path, context, err)
	}
	return cfg, nil
}

// CheckImage returns nil. Images are pulled by the kubelets, with the node's
// and the pod's pull secrets; nothing here can tell whether they will
// succeed. A wrong image shows up as pods that never become ready, which the
// rollout's progress deadline turns into an error.
func (p *Platform) CheckImage(ctx context.Context, image string) error {
	if image == "" {
		return &platform.ImageNotFoundError{Image: image}
	}
	return nil
}

// Snapshot reads the spec's Deployment and Service and records them,
// stripped of server-managed fields, so that a rollback can restore them,
// with the image IDs the Deployment's pods ran (see imageDrift).
func (p *Platform) Snapshot(ctx context.Context, s spec.Spec) (platform.Snapshot, error) {
	snap, err := p.snapshot(ctx, s)
	return snap, forbidden(err)
}

func (p *Platform) snapshot(ctx context.Context, s spec.Spec) (platform.Snapshot, error) {
	snap := platform.Snapshot{Service: s.Service}
	k := s.Platform.Kubernetes
	if k == nil {
		return snap, fmt.Errorf("snapshot %q: spec has no kubernetes platform", s.Service)
	}
	cs, err := p.client(k)
	if err != nil {
		return snap, err
	}
	ns := namespace(k)
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, k.Deployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return snap, &TargetNotFoundError{Kind: "deployment", Namespace: ns, Name: k.Deployment}
	}
	if err != nil {
		return snap, fmt.Errorf("get deployment %q: %w", ns+"/"+k.Deployment, err)
	}
	ci, err := containerIndex(d, k.Container)
	if err != nil {
		return snap, err
	}
	ks := &platform.KubernetesSnapshot{
		Replicas: int(replicas(d)),
		Image:    d.Spec.Template.Spec.Containers[ci].Image,
	}
	pods, err := ownedPods(ctx, cs, d)
	if err != nil {
		return snap, err
	}
	ks.ImageIDs = imageIDs(pods, d.Spec.Template.Spec.Containers[ci].Name)
	d = cleanDeployment(d)
	if ks.Deployment, err = json.Marshal(d); err != nil {
		return snap, fmt.Errorf("encode deployment %q: %w", ns+"/"+k.Deployment, err)
	}
	if k.Service != "" {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, k.Service, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return snap, &TargetNotFoundError{Kind: "service", Namespace: ns, Name: k.Service}
		}
		if err != nil {
			return snap, fmt.Errorf("get service %q: %w", ns+"/"+k.Service, err)
		}
		if ks.Service, err = json.Marshal(cleanService(svc)); err != nil {
			return snap, fmt.Errorf("encode service %q: %w", ns+"/"+k.Service, err)
		}
	}
	snap.Kubernetes = ks
	return snap, nil
}

// cleanDeployment returns a copy of d without status and the metadata the
// server owns, ready to be written back.
func cleanDeployment(d *appsv1.Deployment) *appsv1.Deployment {
	d = d.DeepCopy()
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	cleanMeta(&d.ObjectMeta)
	d.Status = appsv1.DeploymentStatus{}
	return d
}

// cleanService is cleanDeployment for a Service.
func cleanService(s *corev1.Service) *corev1.Service {
	s = s.DeepCopy()
	s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
	cleanMeta(&s.ObjectMeta)
	s.Status = corev1.ServiceStatus{}
	return s
}

func cleanMeta(m *metav1.ObjectMeta) {
	m.ResourceVersion = ""
	m.UID = ""
	m.ManagedFields = nil
	m.CreationTimestamp = metav1.Time{}
	m.Generation = 0
	m.SelfLink = ""
	// The fence is the converge's bookkeeping, not the user's (fence.go): a
	// snapshot does not record it, so a restore neither brings an old one back
	// nor counts it as a difference.
	if _, ok := m.Annotations[AnnotationFence]; ok {
		m.Annotations = maps.Clone(m.Annotations)
		delete(m.Annotations, AnnotationFence)
		if len(m.Annotations) == 0 {
			m.Annotations = nil
		}
	}
	// So is a split of an autoscaler's count a rollout left (hpa.go).
	m.Annotations = withoutSplit(m.Annotations)
}

// containerIndex finds the target container in d's pod template: the one
// named, or the only one when name is empty.
func containerIndex(d *appsv1.Deployment, name string) (int, error) {
	cs := d.Spec.Template.Spec.Containers
	in := fmt.Sprintf("deployment %q", d.Namespace+"/"+d.Name)
	if name == "" {
		if len(cs) != 1 {
			return 0, &TargetNotFoundError{Kind: "container", In: in,
				Detail: fmt.Sprintf("the pod template has %d containers; name one in platform.kubernetes.container", len(cs))}
		}
		return 0, nil
	}
	for i, c := range cs {
		if c.Name == name {
			return i, nil
		}
	}
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return 0, &TargetNotFoundError{Kind: "container", Name: name, In: in,
		Detail: fmt.Sprintf("the pod template has %v", names)}
}

// decodeSnapshot returns the snapshot's Deployment and Service (nil when the
// spec names none).
func decodeSnapshot(snap platform.Snapshot) (*appsv1.Deployment, *corev1.Service, error) {
	ks := snap.Kubernetes
	if ks == nil || len(ks.Deployment) == 0 {
		return nil, nil, errors.New("snapshot holds no kubernetes deployment")
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(ks.Deployment, &d); err != nil {
		return nil, nil, fmt.Errorf("decode snapshot deployment: %w", err)
	}
	if len(ks.Service) == 0 {
		return &d, nil, nil
	}
	var svc corev1.Service
	if err := json.Unmarshal(ks.Service, &svc); err != nil {
		return nil, nil, fmt.Errorf("decode snapshot service: %w", err)
	}
	return &d, &svc, nil
}

// Endpoints returns the addresses of the ready pods selected by which,
// sorted: the new version's (the rollout's Deployment, and the stable
// Deployment's pods once they run the new image) or the old's (the stable
// Deployment's pods still on the snapshot's image), at the target
// container's first declared port. How a pod is reached depends on the
// check mode (the spec's checkVia, else Platform.CheckVia): with podIP the address is "<pod IP>:<port>",
// which only a worker inside the cluster network can dial; with portForward
// it is "127.0.0.1:<local port>", a port the worker forwards to the pod
// through the API server (portforward.go), kept for later calls.
func (p *Platform) Endpoints(ctx context.Context, s spec.Spec, rollout string, snap platform.Snapshot, which platform.Which) ([]string, error) {
	k := s.Platform.Kubernetes
	if k == nil {
		return nil, fmt.Errorf("endpoints of %q: spec has no kubernetes platform", s.Service)
	}
	if which != platform.WhichNew && which != platform.WhichOld {
		return nil, fmt.Errorf("endpoints of %q: unknown selection %q", s.Service, which)
	}
	cs, cfg, err := p.cluster(k)
	if err != nil {
		return nil, err
	}
	orig, _, err := decodeSnapshot(snap)
	if err != nil {
		return nil, fmt.Errorf("endpoints of %q: %w", s.Service, err)
	}
	ci, err := containerIndex(orig, k.Container)
	if err != nil {
		return nil, err
	}
	container := orig.Spec.Template.Spec.Containers[ci].Name
	ns := namespace(k)
	alive, listed := map[types.UID]bool{}, time.Now()
	newPods, oldPods, err := splitPodsAlive(ctx, cs, ns, k.Deployment, orig.Spec.Selector, container, snap.Kubernetes.Image, alive)
	if err != nil {
		return nil, fmt.Errorf("endpoints of %q: %w", s.Service, err)
	}
	pods := oldPods
	if which == platform.WhichNew {
		pods = newPods
	}
	forward := p.checkMode(s) == CheckViaPortForward
	out := make([]string, 0, len(pods))
	var targets []podTarget
	for _, pod := range pods {
		port, ok := containerPort(pod, container)
		if !ok {
			return nil, fmt.Errorf("endpoints of %q: container %q of pod %q declares no port", s.Service, container, pod.Name)
		}
		switch {
		case forward:
			targets = append(targets, podTarget{pod: pod, port: port})
		case pod.Status.PodIP != "":
			out = append(out, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port))))
		}
	}
	if forward {
		if cfg == nil {
			return nil, fmt.Errorf("endpoints of %q: port-forward needs the cluster's REST configuration, which a Platform made with NewForClient lacks", s.Service)
		}
		key := clientKey{kubeconfig: k.Kubeconfig, context: k.Context}
		if out, err = p.forwardedAddresses(ctx, key, cfg, ns+"/"+k.Deployment, targets, alive, listed); err != nil {
			return nil, fmt.Errorf("endpoints of %q: %w", s.Service, err)
		}
	}
	slices.Sort(out)
	return out, nil
}

func containerPort(pod corev1.Pod, container string) (int32, bool) {
	for _, c := range pod.Spec.Containers {
		if c.Name == container && len(c.Ports) > 0 {
			return c.Ports[0].ContainerPort, true
		}
	}
	return 0, false
}

// splitPods returns the ready pods of the target's Deployments, split into
// new and old.
// The rollout's canary and green Deployments hold new pods; the stable
// Deployment's pods are old while their container runs oldImage and new
// once it runs anything else (so a rollout of the very image that already
// runs counts the stable pods as old, even after the last step). Pods belong to a Deployment through their
// ReplicaSet's controller reference, not its selector: the canary's pods
// also match the stable Deployment's selector. sel is the stable
// Deployment's selector as the snapshot has it (a selector cannot change).
func splitPods(ctx context.Context, cs kubernetes.Interface, ns, stable string, sel *metav1.LabelSelector, container, oldImage string) (newPods, oldPods []corev1.Pod, err error) {
	return splitPodsAlive(ctx, cs, ns, stable, sel, container, oldImage, nil)
}

// splitPodsAlive is splitPods that also adds to alive (when not nil) the UID
// of every pod of those Deployments, ready or not.
//
// A converge ends with this count, and each read is a round trip to the
// API server, so everything is read side by side in one round: the three
// Deployments, and the ReplicaSets and pods of sel, which hold those of
// the stable Deployment and of the canary (whose selector is the stable
// one). Only a Deployment of another selector (green's) has its own
// listed after, in a second round.
func splitPodsAlive(ctx context.Context, cs kubernetes.Interface, ns, stable string, sel *metav1.LabelSelector, container, oldImage string, alive map[types.UID]bool) (newPods, oldPods []corev1.Pod, err error) {
	names := []string{stable, canaryName(stable), greenName(stable)}
	deps := make([]*appsv1.Deployment, len(names))
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range names {
		g.Go(func() error {
			d, err := cs.AppsV1().Deployments(ns).Get(gctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("get deployment %q: %w", ns+"/"+name, err)
			}
			deps[i] = d
			return nil
		})
	}
	var shared *selected
	if sel != nil {
		g.Go(func() (err error) {
			shared, err = listSelected(gctx, cs, ns, sel, "deployment "+ns+"/"+stable)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	owned := make([][]corev1.Pod, len(names))
	g, gctx = errgroup.WithContext(ctx)
	for i, d := range deps {
		switch {
		case d == nil:
		case shared != nil && equality.Semantic.DeepEqual(d.Spec.Selector, sel):
			owned[i] = shared.podsOf(d)
		default:
			g.Go(func() error {
				own, err := listSelected(gctx, cs, ns, d.Spec.Selector, "deployment "+ns+"/"+d.Name)
				if err == nil {
					owned[i] = own.podsOf(d)
				}
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	for i, name := range names {
		for _, pod := range owned[i] {
			if alive != nil {
				alive[pod.UID] = true
			}
			if !podReady(pod) {
				continue
			}
			if name != stable || podImage(pod, container) != oldImage {
				newPods = append(newPods, pod)
			} else {
				oldPods = append(oldPods, pod)
			}
		}
	}
	return newPods, oldPods, nil
}

// selected is the ReplicaSets and pods of a selector, listed side by side.
type selected struct {
	sets []appsv1.ReplicaSet
	pods []corev1.Pod
}

// listSelected lists the ReplicaSets and pods of sel side by side (of
// names what, in an error).
func listSelected(ctx context.Context, cs kubernetes.Interface, ns string, sel *metav1.LabelSelector, of string) (*selected, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("selector of %s: %w", of, err)
	}
	opts := metav1.ListOptions{LabelSelector: s.String()}
	var out selected
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		rss, err := cs.AppsV1().ReplicaSets(ns).List(gctx, opts)
		if err != nil {
			return fmt.Errorf("list replicasets of %s: %w", of, err)
		}
		out.sets = rss.Items
		return nil
	})
	g.Go(func() error {
		pods, err := cs.CoreV1().Pods(ns).List(gctx, opts)
		if err != nil {
			return fmt.Errorf("list pods of %s: %w", of, err)
		}
		out.pods = pods.Items
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return &out, nil
}

// podsOf returns those of the pods whose ReplicaSet (of the sets) d
// controls.
func (s *selected) podsOf(d *appsv1.Deployment) []corev1.Pod {
	owned := map[types.UID]bool{}
	for i := range s.sets {
		if metav1.IsControlledBy(&s.sets[i], d) {
			owned[s.sets[i].UID] = true
		}
	}
	var out []corev1.Pod
	for _, pod := range s.pods {
		if ref := metav1.GetControllerOf(&pod); ref != nil && owned[ref.UID] {
			out = append(out, pod)
		}
	}
	return out
}

// ownedPods lists the pods of d's ReplicaSets (its ReplicaSets and the
// pods of its selector are listed side by side).
func ownedPods(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) ([]corev1.Pod, error) {
	s, err := listSelected(ctx, cs, d.Namespace, d.Spec.Selector, "deployment "+d.Namespace+"/"+d.Name)
	if err != nil {
		return nil, err
	}
	return s.podsOf(d), nil
}

func podReady(pod corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podImage(pod corev1.Pod, container string) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

func namespace(k *spec.Kubernetes) string {
	if k.Namespace == "" {
		return "default"
	}
	return k.Namespace
}

func canaryName(stable string) string { return stable + "-" + trackCanary }
func greenName(stable string) string  { return stable + "-" + trackGreen }

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
