package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// revisionAnnotation is the Deployment controller's own bookkeeping; a
// restore keeps the live value rather than fight the controller.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// convergence carries one Converge call's inputs and what it has done so far.
type convergence struct {
	cs       kubernetes.Interface
	log      *zap.Logger
	spec     spec.Spec
	ns       string
	rollout  string
	desired  plan.Desired
	deadline time.Duration
	orig     *appsv1.Deployment // the snapshot's
	origSvc  *corev1.Service    // the snapshot's; nil when the spec names none
	ci       int                // the target container's index in orig's template
	fence    platform.Fence     // the attempt's (fence.go); zero does not fence
	stamps   *stampBook         // the generations acquire's stamps gave (fence.go)
	hpa      *autoscaler        // the stable Deployment's, when one targets it (hpa.go)
	split    split              // with hpa: the split of its count this converge makes
	res      platform.ConvergeResult
}

// Converge brings the target to req.Desired and waits until every
// Deployment it wrote has rolled out. It reads before it writes and writes
// only what differs, so a rerun after a crash or a retry changes nothing
// more. The desired state maps onto objects as follows:
//
//   - New == 0 (rollback): the stable Deployment and the Service are restored
//     from the snapshot (spec, labels, annotations) with Old replicas, and the
//     rollout's Deployments are deleted.
//   - Old == 0 (the last canary or rolling step, the final state, recreate):
//     the stable Deployment is given the new image and New replicas, the
//     Service its snapshot selector, and the rollout's Deployments are
//     deleted. With surge order and a canary running, the canary grows to
//     New and the stable Deployment takes its ReplicaSet over as its own
//     (adopt.go): each new pod starts once, and no old pod goes before the
//     new version runs whole. Otherwise, with surge order, the stable
//     Deployment is updated first and waited for, its controller replacing
//     its old pods per its own strategy while any canary pods still serve.
//     With stop-first order the stable Deployment is scaled to zero and
//     waited for before it is given the new image.
//   - Traffic old or new (blue-green, both counts positive): the green
//     Deployment runs New pods beside the stable one at Old; the Service
//     selects the stable pods (old) or the green pods only (new), switched
//     in one update.
//   - Otherwise (shared traffic): the canary Deployment runs New pods and the
//     stable one Old, both selected by the Service. With surge order the
//     canary grows before the stable Deployment shrinks.
//
// When a HorizontalPodAutoscaler targets the stable Deployment, the counts,
// planned for the spec's (or the snapshot's) total, are first converted to
// the count the autoscaler wants now (hpa.go): a rollback restores that
// count, the last step and the final state hand it the stable Deployment
// with nothing of the rollout's on it, and no stage gives the stable
// Deployment a count outside the autoscaler's bounds, or none.
func (p *Platform) Converge(ctx context.Context, req platform.ConvergeRequest) (platform.ConvergeResult, error) {
	res, err := p.converge(ctx, req)
	return res, forbidden(err)
}

func (p *Platform) converge(ctx context.Context, req platform.ConvergeRequest) (platform.ConvergeResult, error) {
	s := req.Spec
	k := s.Platform.Kubernetes
	if k == nil {
		return platform.ConvergeResult{}, fmt.Errorf("converge %q: spec has no kubernetes platform", s.Service)
	}
	if err := req.Validate(); err != nil {
		return platform.ConvergeResult{}, err
	}
	d := req.Desired
	orig, origSvc, err := decodeSnapshot(req.Snapshot)
	if err != nil {
		return platform.ConvergeResult{}, fmt.Errorf("converge %q: %w", s.Service, err)
	}
	ci, err := containerIndex(orig, k.Container)
	if err != nil {
		return platform.ConvergeResult{}, err
	}
	cs, err := p.client(k)
	if err != nil {
		return platform.ConvergeResult{}, err
	}
	c := &convergence{
		cs:       cs,
		log:      p.log.With(zap.String("service", s.Service), zap.String("rollout", req.Rollout), zap.String("deployment", namespace(k)+"/"+k.Deployment)),
		spec:     s,
		ns:       namespace(k),
		rollout:  req.Rollout,
		desired:  d,
		deadline: cmp.Or(k.ProgressDeadline.D(), spec.DefaultProgressDeadline),
		orig:     orig,
		origSvc:  origSvc,
		ci:       ci,
		fence:    req.Fence,
		stamps:   &stampBook{},
	}
	c.desired.Traffic = cmp.Or(d.Traffic, plan.TrafficShared)
	c.desired.Order = cmp.Or(d.Order, plan.Surge)
	if d.New != 0 {
		// The autoscaler is looked for (a read) while the fence's copies go
		// on. A rollback takes its fence in its first write (restore.go).
		if err = c.acquire(ctx, func(ctx context.Context) error { return c.followAutoscaler(ctx, plannedTotal(req)) }); err != nil {
			return c.res, fmt.Errorf("converge %q: %w", s.Service, err)
		}
	}
	switch {
	case d.New == 0:
		err = c.restore(ctx, plannedTotal(req))
	case d.Old == 0:
		err = c.promote(ctx)
	case c.desired.Traffic == plan.TrafficOld || c.desired.Traffic == plan.TrafficNew:
		err = c.blueGreen(ctx)
	default:
		err = c.shared(ctx)
	}
	if err != nil {
		return c.res, fmt.Errorf("converge %q to new=%d old=%d traffic=%s: %w", s.Service, c.desired.New, c.desired.Old, c.desired.Traffic, err)
	}
	container := orig.Spec.Template.Spec.Containers[ci].Name
	newPods, oldPods, err := splitPods(ctx, cs, c.ns, k.Deployment, orig.Spec.Selector, container, req.Snapshot.Kubernetes.Image)
	if err != nil {
		return c.res, fmt.Errorf("converge %q: count pods: %w", s.Service, err)
	}
	c.res.NewCount, c.res.OldCount = len(newPods), len(oldPods)
	c.res.Total = c.res.NewCount + c.res.OldCount
	if d.New == 0 {
		if drift := imageDrift(*req.Snapshot.Kubernetes, oldPods, container); drift != "" {
			c.res.Drift = append(c.res.Drift, drift)
			c.log.Warn("restored pods run other image bytes than the snapshot's", zap.String("drift", drift))
		}
	}
	return c.res, nil
}

// onlyStable gives the Service its snapshot selector back and deletes the
// rollout's canary and green Deployments, leaving the stable one alone.
func (c *convergence) onlyStable(ctx context.Context) error {
	if err := c.restoreService(ctx); err != nil {
		return err
	}
	return c.deleteRollout(ctx, canaryName(c.orig.Name), greenName(c.orig.Name))
}

// promote leaves the stable Deployment with the new image and New replicas
// and nothing else of the rollout's. With surge order and a canary of the
// new template (and no autoscaler to share the count with meanwhile), the
// stable Deployment takes the canary's ReplicaSet over (adopt.go).
func (c *convergence) promote(ctx context.Context) error {
	// A handover this rollout began is finished whatever else holds now.
	handed, err := c.handOver(ctx, c.desired.Order != plan.StopFirst && c.hpa == nil)
	if err != nil {
		return err
	}
	if handed {
		return c.onlyStable(ctx)
	}
	tpl := c.newTemplate()
	n := int32(c.desired.New)
	if c.desired.Order == plan.StopFirst {
		cur, err := c.getStable(ctx)
		if err != nil {
			return err
		}
		if !equality.Semantic.DeepEqual(cur.Spec.Template, tpl) {
			if err := c.writeStable(ctx, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr(int32(0)) }, nil); err != nil {
				return err
			}
		}
		if err := c.deleteRollout(ctx, canaryName(c.orig.Name), greenName(c.orig.Name)); err != nil {
			return err
		}
	}
	if err := c.writeStable(ctx, func(d *appsv1.Deployment) {
		d.Spec.Template = tpl
		d.Spec.Replicas = &n
		unmarkSplit(d)
	}, nil); err != nil {
		return err
	}
	return c.onlyStable(ctx)
}

// shared runs the canary beside the stable Deployment, both serving. What
// is left of a green Deployment (blue-green's, no part of a shared stage)
// is deleted and waited for beside that, in a copy of the convergence
// whose result is merged after: on a busy API server its reads alone took
// 60-100 ms of each stage.
func (c *convergence) shared(ctx context.Context) error {
	side := *c
	side.res = platform.ConvergeResult{}
	green := make(chan error, 1)
	go func() { green <- side.deleteRollout(ctx, greenName(c.orig.Name)) }()
	err := c.beside(ctx, c.canary())
	gerr := <-green
	c.res.Removed = append(c.res.Removed, side.res.Removed...)
	if err != nil {
		return err
	}
	return gerr
}

// blueGreen runs green beside blue (the stable Deployment) and points the
// Service at one of them.
func (c *convergence) blueGreen(ctx context.Context) error {
	if c.origSvc == nil {
		return fmt.Errorf("traffic %q needs a service: set platform.kubernetes.service", c.desired.Traffic)
	}
	if err := c.beside(ctx, c.green()); err != nil {
		return err
	}
	if err := c.deleteRollout(ctx, canaryName(c.orig.Name)); err != nil {
		return err
	}
	if c.desired.Traffic == plan.TrafficOld {
		return c.restoreService(ctx)
	}
	sel := c.greenSelector()
	return c.writeService(ctx, func(s *corev1.Service) { s.Spec.Selector = sel })
}

// beside writes want, one of the rollout's Deployments, and scales the
// stable one to Old, each waited for: with surge order want first, so the
// new pods run before old ones go; with stop-first order the other way.
func (c *convergence) beside(ctx context.Context, want *appsv1.Deployment) error {
	steps := []func(context.Context) error{
		func(ctx context.Context) error { return c.ensureRollout(ctx, want) },
		c.scaleStable,
	}
	if c.desired.Order == plan.StopFirst {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// scaleStable sets the stable Deployment's replicas to Old (recording the
// split of an autoscaler's count with it).
func (c *convergence) scaleStable(ctx context.Context) error {
	n := int32(c.desired.Old)
	return c.writeStable(ctx, func(d *appsv1.Deployment) {
		d.Spec.Replicas = &n
		c.markSplit(d)
	}, nil)
}

// ownedByUs refuses to touch an object of a name this package uses when it
// does not carry this service's label: it is someone else's.
func (c *convergence) ownedByUs(labels map[string]string, kind, name string) error {
	if labels[platform.LabelService] != c.spec.Service {
		return fmt.Errorf("%s %q exists and is not stagecraft's for service %q (label %s=%q); rename or remove it",
			kind, c.ns+"/"+name, c.spec.Service, platform.LabelService, labels[platform.LabelService])
	}
	return nil
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func ptr[T any](v T) *T { return &v }

// forbidden marks an RBAC refusal as platform.ErrForbidden: permissions do
// not change by retrying, so the stage (or the rollback) fails at once.
func forbidden(err error) error {
	if err != nil && apierrors.IsForbidden(err) {
		return fmt.Errorf("%w: %w", platform.ErrForbidden, err)
	}
	return err
}
