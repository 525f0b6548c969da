package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Timings of a converge. They bound waits on the cluster, not the work.
const (
	// waitGrace is added to the spec's progress deadline when waiting for a
	// Deployment: the controller notices an exceeded deadline a few seconds
	// late, and its condition (with its message) is a better error than a
	// timeout of ours.
	waitGrace = 30 * time.Second
	// recheck is how often a waiter re-reads the Deployment when its watch
	// is quiet or cannot be opened.
	recheck = 2 * time.Second
	// deletePoll is how often a deleted Deployment, its ReplicaSets and
	// pods are looked for until they are gone (well under a second on a
	// responsive cluster).
	deletePoll = 100 * time.Millisecond
)

// revisionAnnotation is the Deployment controller's own bookkeeping; a
// restore keeps the live value rather than fight the controller.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// converge carries one Converge call's inputs and what it has done so far.
type converge struct {
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
//     deleted. With surge order the stable Deployment is updated first and
//     waited for, so there is no gap in capacity: its controller replaces its
//     old pods per its own strategy while the canary's pods still serve, and
//     the canary is deleted only after; every new pod of the canary is thus
//     replaced once more by an identical pod of the stable Deployment (the
//     price of leaving a plain Deployment behind). With stop-first order the
//     stable Deployment is scaled to zero and waited for before it is given
//     the new image.
//   - Traffic old or new (blue-green, both counts positive): the green
//     Deployment runs New pods beside the stable one at Old; the Service
//     selects the stable pods (old) or the green pods only (new), switched
//     in one update.
//   - Otherwise (shared traffic): the canary Deployment runs New pods and the
//     stable one Old, both selected by the Service. With surge order the
//     canary grows before the stable Deployment shrinks.
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
	d := req.Desired
	if d.New < 0 || d.Old < 0 {
		return platform.ConvergeResult{}, fmt.Errorf("converge %q: negative desired counts new=%d old=%d", s.Service, d.New, d.Old)
	}
	if d.New > 0 && req.Rollout == "" {
		return platform.ConvergeResult{}, fmt.Errorf("converge %q: new instances need a rollout token", s.Service)
	}
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
	c := &converge{
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
	}
	if err := c.acquire(ctx); err != nil {
		return c.res, fmt.Errorf("converge %q: %w", s.Service, err)
	}
	c.desired.Traffic = cmp.Or(d.Traffic, plan.TrafficShared)
	c.desired.Order = cmp.Or(d.Order, plan.Surge)
	switch {
	case d.New == 0:
		err = c.restore(ctx)
	case d.Old == 0:
		err = c.promote(ctx)
	case c.desired.Traffic == plan.TrafficOld || c.desired.Traffic == plan.TrafficNew:
		err = c.blueGreen(ctx)
	default:
		err = c.shared(ctx)
	}
	if err != nil {
		return c.res, fmt.Errorf("converge %q to new=%d old=%d traffic=%s: %w", s.Service, d.New, d.Old, c.desired.Traffic, err)
	}
	container := orig.Spec.Template.Spec.Containers[ci].Name
	newPods, oldPods, err := classify(ctx, cs, c.ns, k.Deployment, container, req.Snapshot.Kubernetes.Image)
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

// restore brings back the snapshot at once: the stable Deployment is
// written and waited for while, beside it, the Service gets its snapshot
// selector back and then the rollout's Deployments are deleted and waited
// for. A rollback takes the new version away as fast as it brings the old
// one back; the Service is restored before anything it may select goes.
func (c *converge) restore(ctx context.Context) error {
	want := cleanDeployment(c.orig)
	want.Spec.Replicas = ptr(int32(c.desired.Old))
	// The stable side records what it did in its own copy of the result,
	// merged below, so the two sides share nothing while they run.
	side := *c
	side.res = platform.ConvergeResult{}
	stable := make(chan error, 1)
	go func() {
		written, err := side.updateStable(ctx, side.restoreStable(want), want)
		if err == nil {
			err = side.wait(ctx, written)
		}
		stable <- err
	}()
	err := c.restoreService(ctx)
	var deleting []*appsv1.Deployment
	if err == nil {
		deleting, err = c.startDeletes(ctx, canaryName(c.orig.Name), greenName(c.orig.Name))
	}
	if err == nil {
		err = c.waitDeleted(ctx, deleting)
	}
	serr := <-stable
	c.res.Created = append(side.res.Created, c.res.Created...)
	c.res.Rewired = append(side.res.Rewired, c.res.Rewired...)
	if serr != nil {
		return serr
	}
	if err != nil {
		return err
	}
	c.noteRemoved(deleting)
	return nil
}

// restoreStable returns the mutation that gives the stable Deployment the
// snapshot's labels, annotations (keeping the controller's revision) and
// spec.
func (c *converge) restoreStable(want *appsv1.Deployment) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		d.Labels = want.Labels
		ann := maps.Clone(want.Annotations)
		if rev, ok := d.Annotations[revisionAnnotation]; ok {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[revisionAnnotation] = rev
		}
		d.Annotations = keepFence(d.Annotations, ann)
		d.Spec = want.Spec
	}
}

// onlyStable gives the Service its snapshot selector back and deletes the
// rollout's canary and green Deployments, leaving the stable one alone.
func (c *converge) onlyStable(ctx context.Context) error {
	if err := c.restoreService(ctx); err != nil {
		return err
	}
	return c.deleteRollout(ctx, canaryName(c.orig.Name), greenName(c.orig.Name))
}

// promote leaves the stable Deployment with the new image and New replicas
// and nothing else of the rollout's.
func (c *converge) promote(ctx context.Context) error {
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
	}, nil); err != nil {
		return err
	}
	return c.onlyStable(ctx)
}

// shared runs the canary beside the stable Deployment, both serving.
func (c *converge) shared(ctx context.Context) error {
	steps := []func(context.Context) error{
		func(ctx context.Context) error { return c.ensureRollout(ctx, c.canary()) },
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
	return c.deleteRollout(ctx, greenName(c.orig.Name))
}

// blueGreen runs green beside blue (the stable Deployment) and points the
// Service at one of them.
func (c *converge) blueGreen(ctx context.Context) error {
	if c.origSvc == nil {
		return fmt.Errorf("traffic %q needs a service: set platform.kubernetes.service", c.desired.Traffic)
	}
	green := c.green()
	steps := []func(context.Context) error{
		func(ctx context.Context) error { return c.ensureRollout(ctx, green) },
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
	if err := c.deleteRollout(ctx, canaryName(c.orig.Name)); err != nil {
		return err
	}
	if c.desired.Traffic == plan.TrafficOld {
		return c.restoreService(ctx)
	}
	sel := c.greenSelector()
	return c.writeService(ctx, func(s *corev1.Service) { s.Spec.Selector = sel })
}

// scaleStable sets the stable Deployment's replicas to Old.
func (c *converge) scaleStable(ctx context.Context) error {
	n := int32(c.desired.Old)
	return c.writeStable(ctx, func(d *appsv1.Deployment) { d.Spec.Replicas = &n }, nil)
}

// newTemplate is the snapshot's pod template with the new image and, when
// the spec names one, the new configuration: the container's environment
// comes from that ConfigMap in place of one an earlier release wrote.
func (c *converge) newTemplate() corev1.PodTemplateSpec {
	tpl := *c.orig.Spec.Template.DeepCopy()
	ctr := &tpl.Spec.Containers[c.ci]
	ctr.Image = c.spec.Image
	if k := c.spec.Platform.Kubernetes; k.ConfigMap != "" {
		ctr.EnvFrom = withConfigMap(ctr.EnvFrom, k.Deployment, k.ConfigMap)
	}
	ctr.Env = withSecretEnv(ctr.Env, c.spec.Platform.Kubernetes.SecretEnv)
	return tpl
}

// withSecretEnv returns env with each of refs as a valueFrom.secretKeyRef
// entry: one of the same name is replaced where it stands (a later entry
// may refer to it as $(NAME)), new ones follow in name order. Only the
// reference goes into the template, so neither the Deployment nor the
// snapshot, and so no workflow history, holds a value.
func withSecretEnv(env []corev1.EnvVar, refs map[string]spec.SecretRef) []corev1.EnvVar {
	if len(refs) == 0 {
		return env
	}
	entry := func(name string) corev1.EnvVar {
		r := refs[name].SecretKeyRef
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: r.Name},
			Key:                  r.Key,
		}}}
	}
	out := make([]corev1.EnvVar, 0, len(env)+len(refs))
	done := map[string]bool{}
	for _, e := range env {
		if ref, ok := refs[e.Name]; ok && ref.SecretKeyRef != nil {
			if !done[e.Name] {
				out = append(out, entry(e.Name))
				done[e.Name] = true
			}
			continue
		}
		out = append(out, e)
	}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		if !done[name] && refs[name].SecretKeyRef != nil {
			out = append(out, entry(name))
		}
	}
	return out
}

// withConfigMap returns envFrom with name in it, and without the other
// ConfigMaps releases wrote for deployment.
func withConfigMap(envFrom []corev1.EnvFromSource, deployment, name string) []corev1.EnvFromSource {
	out := make([]corev1.EnvFromSource, 0, len(envFrom)+1)
	found := false
	for _, e := range envFrom {
		if ref := e.ConfigMapRef; ref != nil {
			if ref.Name == name {
				found = true
			} else if spec.IsReleaseConfigMap(deployment, ref.Name) {
				continue
			}
		}
		out = append(out, e)
	}
	if !found {
		out = append(out, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}})
	}
	return out
}

// rolloutLabels returns the labels every object this rollout creates carries.
func (c *converge) rolloutLabels(base map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	out[platform.LabelService] = c.spec.Service
	out[platform.LabelRollout] = c.rollout
	out[platform.LabelRole] = platform.RoleNew
	return out
}

// canary is the desired canary Deployment: the stable template with the new
// image, its pods still matching the Service's selector.
func (c *converge) canary() *appsv1.Deployment {
	tpl := c.newTemplate()
	tpl.Labels = c.rolloutLabels(tpl.Labels)
	tpl.Labels[LabelTrack] = trackCanary
	sel := c.orig.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[LabelTrack] = trackCanary
	return c.rolloutDeployment(canaryName(c.orig.Name), sel, tpl)
}

// green is the desired green Deployment: the stable template with the new
// image, minus the labels the Service selects on, plus stagecraft.color.
func (c *converge) green() *appsv1.Deployment {
	tpl := c.newTemplate()
	tpl.Labels = c.rolloutLabels(tpl.Labels)
	sel := c.orig.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	sel.MatchLabels = maps.Clone(sel.MatchLabels)
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	for k := range c.origSvc.Spec.Selector {
		delete(tpl.Labels, k)
		delete(sel.MatchLabels, k)
	}
	tpl.Labels[LabelTrack] = trackGreen
	tpl.Labels[LabelColor] = colorGreen
	sel.MatchLabels[platform.LabelService] = c.spec.Service
	sel.MatchLabels[LabelColor] = colorGreen
	return c.rolloutDeployment(greenName(c.orig.Name), sel, tpl)
}

// greenSelector is the Service selector after the switch: green's pods only.
func (c *converge) greenSelector() map[string]string {
	return map[string]string{
		platform.LabelService: c.spec.Service,
		platform.LabelRollout: c.rollout,
		LabelColor:            colorGreen,
	}
}

func (c *converge) rolloutDeployment(name string, sel *metav1.LabelSelector, tpl corev1.PodTemplateSpec) *appsv1.Deployment {
	ds := *c.orig.Spec.DeepCopy()
	ds.Replicas = ptr(int32(c.desired.New))
	ds.Selector = sel
	ds.Template = tpl
	ds.Paused = false
	ds.ProgressDeadlineSeconds = ptr(int32(max(1, c.deadline/time.Second)))
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: c.ns,
			Labels:    c.rolloutLabels(c.orig.Labels),
		},
		Spec: ds,
	}
}

// ensureRollout creates want or updates the existing Deployment of that name
// to it, then waits for it to roll out. An existing Deployment must be
// Stagecraft's for this service; one whose selector differs (it cannot be
// changed) is deleted and created again.
func (c *converge) ensureRollout(ctx context.Context, want *appsv1.Deployment) error {
	api := c.cs.AppsV1().Deployments(c.ns)
	var written *appsv1.Deployment
	err := retry.OnError(retry.DefaultRetry, conflictOrExists, func() error {
		cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
		if err == nil && !equality.Semantic.DeepEqual(cur.Spec.Selector, want.Spec.Selector) {
			if err := c.ownedByUs(cur.Labels, "deployment", cur.Name); err != nil {
				return err
			}
			c.log.Info("replacing deployment with another selector", zap.String("name", want.Name))
			if err := c.deleteAndWait(ctx, cur); err != nil {
				return err
			}
			err = apierrors.NewNotFound(appsv1.Resource("deployments"), want.Name)
		}
		if apierrors.IsNotFound(err) {
			out, err := c.createFenced(ctx, want)
			if err != nil {
				return err
			}
			written = out
			c.res.Created = append(c.res.Created, "deployment/"+want.Name)
			c.log.Info("created deployment", zap.String("name", want.Name), zap.Int32("replicas", *want.Spec.Replicas))
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.ownedByUs(cur.Labels, "deployment", cur.Name); err != nil {
			return err
		}
		if err := c.admit(cur); err != nil {
			return err
		}
		upd := cur.DeepCopy()
		upd.Labels = want.Labels
		upd.Spec = want.Spec
		c.stamp(&upd.ObjectMeta)
		if equality.Semantic.DeepEqual(upd, cur) {
			written = cur
			return nil
		}
		out, err := api.Update(ctx, upd, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		written = out
		c.res.Rewired = appendOnce(c.res.Rewired, "deployment/"+want.Name)
		c.log.Info("updated deployment", zap.String("name", want.Name), zap.Int32("replicas", *want.Spec.Replicas))
		return nil
	})
	if err != nil {
		return fmt.Errorf("write deployment %q: %w", c.ns+"/"+want.Name, err)
	}
	return c.wait(ctx, written)
}

// getStable reads the stable Deployment.
func (c *converge) getStable(ctx context.Context) (*appsv1.Deployment, error) {
	d, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, c.orig.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &TargetNotFoundError{Kind: "deployment", Namespace: c.ns, Name: c.orig.Name}
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	return d, nil
}

// writeStable applies mutate to the live stable Deployment, writes it if
// that changed anything, and waits for it to roll out. When the Deployment
// is gone, recreate (if not nil) is created in its place; otherwise that is
// a TargetNotFoundError.
func (c *converge) writeStable(ctx context.Context, mutate func(*appsv1.Deployment), recreate *appsv1.Deployment) error {
	written, err := c.updateStable(ctx, mutate, recreate)
	if err != nil {
		return err
	}
	return c.wait(ctx, written)
}

// updateStable is writeStable without the wait: it returns the Deployment
// as written (or as found, when nothing changed).
func (c *converge) updateStable(ctx context.Context, mutate func(*appsv1.Deployment), recreate *appsv1.Deployment) (*appsv1.Deployment, error) {
	api := c.cs.AppsV1().Deployments(c.ns)
	var written *appsv1.Deployment
	err := retry.OnError(retry.DefaultRetry, conflictOrExists, func() error {
		cur, err := c.getStable(ctx)
		if IsTargetNotFound(err) && recreate != nil {
			recreate := recreate.DeepCopy()
			c.stamp(&recreate.ObjectMeta)
			out, err := api.Create(ctx, recreate, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			written = out
			c.res.Created = append(c.res.Created, "deployment/"+c.orig.Name)
			c.log.Info("recreated deployment from the snapshot")
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.admit(cur); err != nil {
			return err
		}
		upd := cur.DeepCopy()
		mutate(upd)
		c.stamp(&upd.ObjectMeta)
		if equality.Semantic.DeepEqual(upd, cur) {
			written = cur
			return nil
		}
		out, err := api.Update(ctx, upd, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		written = out
		c.res.Rewired = appendOnce(c.res.Rewired, "deployment/"+c.orig.Name)
		c.log.Info("updated deployment", zap.String("name", c.orig.Name), zap.Int32("replicas", replicas(out)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("write deployment %q: %w", c.ns+"/"+c.orig.Name, err)
	}
	return written, nil
}

// restoreService gives the Service its snapshot labels, annotations and
// spec, keeping the cluster IPs it was allocated.
func (c *converge) restoreService(ctx context.Context) error {
	if c.origSvc == nil {
		return nil
	}
	want := c.origSvc
	return c.writeService(ctx, func(s *corev1.Service) {
		s.Labels = want.Labels
		s.Annotations = keepFence(s.Annotations, want.Annotations)
		ss := *want.Spec.DeepCopy()
		ss.ClusterIP, ss.ClusterIPs = s.Spec.ClusterIP, s.Spec.ClusterIPs
		ss.IPFamilies, ss.IPFamilyPolicy = s.Spec.IPFamilies, s.Spec.IPFamilyPolicy
		ss.HealthCheckNodePort = s.Spec.HealthCheckNodePort
		s.Spec = ss
	})
}

// writeService applies mutate to the live Service and writes it if that
// changed anything.
func (c *converge) writeService(ctx context.Context, mutate func(*corev1.Service)) error {
	api := c.cs.CoreV1().Services(c.ns)
	name := c.origSvc.Name
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return &TargetNotFoundError{Kind: "service", Namespace: c.ns, Name: name}
		}
		if err != nil {
			return err
		}
		if err := c.admit(cur); err != nil {
			return err
		}
		upd := cur.DeepCopy()
		mutate(upd)
		c.stamp(&upd.ObjectMeta)
		if equality.Semantic.DeepEqual(upd, cur) {
			return nil
		}
		if _, err := api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			return err
		}
		c.res.Rewired = appendOnce(c.res.Rewired, "service/"+name)
		c.log.Info("updated service", zap.String("name", name), zap.Any("selector", upd.Spec.Selector))
		return nil
	})
	if err != nil {
		return fmt.Errorf("write service %q: %w", c.ns+"/"+name, err)
	}
	return nil
}

// deleteRollout deletes the named Deployments of this service, if present,
// and waits until they, their ReplicaSets and their pods are gone.
func (c *converge) deleteRollout(ctx context.Context, names ...string) error {
	deleting, err := c.startDeletes(ctx, names...)
	if err != nil {
		return err
	}
	if err := c.waitDeleted(ctx, deleting); err != nil {
		return err
	}
	c.noteRemoved(deleting)
	return nil
}

// startDeletes deletes the named Deployments of this service that exist,
// without waiting. It returns what waitDeleted is to wait for: each one it
// deleted or, where one was gone already, its ghost (a retried converge may
// have deleted it before its pods were gone).
func (c *converge) startDeletes(ctx context.Context, names ...string) ([]*appsv1.Deployment, error) {
	api := c.cs.AppsV1().Deployments(c.ns)
	var out []*appsv1.Deployment
	for _, name := range names {
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out = append(out, c.ghost(name))
			continue
		}
		if err != nil {
			return out, fmt.Errorf("get deployment %q: %w", c.ns+"/"+name, err)
		}
		if err := c.ownedByUs(cur.Labels, "deployment", name); err != nil {
			return out, err
		}
		if err := c.delete(ctx, cur); err != nil {
			return out, err
		}
		out = append(out, cur)
	}
	return out, nil
}

// ghost stands for this rollout's Deployment name once it is gone: no UID
// (which tells it from one deleted now), and a selector of the pods this
// rollout gave it.
func (c *converge) ghost(name string) *appsv1.Deployment {
	track := trackCanary
	if name == greenName(c.orig.Name) {
		track = trackGreen
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{
			platform.LabelService: c.spec.Service, platform.LabelRollout: c.rollout, LabelTrack: track}}},
	}
}

// waitDeleted waits until everything of ds is gone.
func (c *converge) waitDeleted(ctx context.Context, ds []*appsv1.Deployment) error {
	for _, d := range ds {
		if err := c.waitGone(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// noteRemoved records the Deployments of ds it deleted (not the ghosts)
// in the result.
func (c *converge) noteRemoved(ds []*appsv1.Deployment) {
	for _, d := range ds {
		if d.UID != "" {
			c.res.Removed = append(c.res.Removed, "deployment/"+d.Name)
			c.log.Info("deleted deployment", zap.String("name", d.Name))
		}
	}
}

// delete deletes d with background propagation: the object goes at once
// (nothing can scale it up again) and the garbage collector takes its
// ReplicaSets, then their pods; waitGone waits for those. A foreground
// deletion keeps the object until its pods are gone, which only delays
// the moment a watcher sees the new version's Deployment gone.
func (c *converge) delete(ctx context.Context, d *appsv1.Deployment) error {
	if err := c.deleteFenced(ctx, d); err != nil {
		return fmt.Errorf("delete deployment %q: %w", c.ns+"/"+d.Name, err)
	}
	return nil
}

// deleteAndWait deletes d and waits until it and its pods are gone.
func (c *converge) deleteAndWait(ctx context.Context, d *appsv1.Deployment) error {
	if err := c.delete(ctx, d); err != nil {
		return err
	}
	return c.waitGone(ctx, d)
}

// waitGone polls until d (by UID) is gone and nothing of it is left: no
// ReplicaSet it controls, no pod its selector matches.
func (c *converge) waitGone(ctx context.Context, d *appsv1.Deployment) error {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return fmt.Errorf("deployment %q: selector: %w", c.ns+"/"+d.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	t := time.NewTicker(deletePoll)
	defer t.Stop()
	for {
		left, err := c.leftOf(ctx, d, sel)
		if err == nil && left == "" {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("deployment %q being deleted: %w", c.ns+"/"+d.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %q: %s still present after deletion: %w", c.ns+"/"+d.Name, cmp.Or(left, "something"), ctx.Err())
		case <-t.C:
		}
	}
}

// leftOf says what of the deleted Deployment d is still there ("" when
// nothing): the object itself, a ReplicaSet it controls, pods sel matches.
func (c *converge) leftOf(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) (string, error) {
	list := metav1.ListOptions{LabelSelector: sel.String()}
	if d.UID != "" {
		cur, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, d.Name, metav1.GetOptions{})
		switch {
		case err == nil && cur.UID == d.UID:
			return "the deployment", nil
		case err != nil && !apierrors.IsNotFound(err):
			return "", err
		}
		rss, err := c.cs.AppsV1().ReplicaSets(c.ns).List(ctx, list)
		if err != nil {
			return "", err
		}
		for i := range rss.Items {
			if metav1.IsControlledBy(&rss.Items[i], d) {
				return "replicaset " + rss.Items[i].Name, nil
			}
		}
	}
	if sel.Empty() {
		return "", nil // it would match every pod of the namespace
	}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, list)
	if err != nil {
		return "", err
	}
	if n := len(pods.Items); n > 0 {
		return fmt.Sprintf("%d pod(s)", n), nil
	}
	return "", nil
}

// ownedByUs refuses to touch an object of a name this package uses when it
// does not carry this service's label: it is someone else's.
func (c *converge) ownedByUs(labels map[string]string, kind, name string) error {
	if labels[platform.LabelService] != c.spec.Service {
		return fmt.Errorf("%s %q exists and is not stagecraft's for service %q (label %s=%q); rename or remove it",
			kind, c.ns+"/"+name, c.spec.Service, platform.LabelService, labels[platform.LabelService])
	}
	return nil
}

// wait blocks until the Deployment written (at written.Generation) has rolled
// out, its controller reports ProgressDeadlineExceeded (when its deadline is
// not shorter than the spec's: ownDeadline), or the spec's progress deadline
// (plus a grace) passes. It watches the Deployment and
// re-reads it every few seconds in case the watch misses or cannot open.
func (c *converge) wait(ctx context.Context, written *appsv1.Deployment) error {
	name := written.Name
	api := c.cs.AppsV1().Deployments(c.ns)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.deadline+waitGrace)
	defer cancel()
	var last *appsv1.Deployment
	for {
		d, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			last = d
			done, err := rolledOut(d, written.Generation)
			if err != nil && c.ownDeadline(d) {
				return err
			}
			if done {
				return nil
			}
			if err := c.imagePullFailure(ctx, written); err != nil {
				return err
			}
		case ctx.Err() != nil:
		case apierrors.IsNotFound(err):
			return fmt.Errorf("deployment %q disappeared while waiting for it to roll out", c.ns+"/"+name)
		default:
			c.log.Warn("reading deployment while waiting", zap.String("name", name), zap.Error(err))
		}
		if ctx.Err() != nil {
			if parent.Err() != nil {
				return fmt.Errorf("deployment %q: waiting to roll out: %w", c.ns+"/"+name, parent.Err())
			}
			return notReady(c.ns, name, last, c.deadline)
		}
		c.awaitChange(ctx, name, last)
	}
}

// ownDeadline says whether d's controller judges progress by a deadline at
// least the spec's (the rollout's own Deployments carry the spec's), so its
// ProgressDeadlineExceeded is the stage's verdict. A Deployment of the
// user's with a shorter progressDeadlineSeconds is still waited for until
// the spec's deadline: the controller only reports a stall and keeps
// rolling out, and a stage (or a rollback, which restores that field with
// the snapshot) must not fail because a busy control plane was slower than
// a deadline the spec did not set.
func (c *converge) ownDeadline(d *appsv1.Deployment) bool {
	own := d.Spec.ProgressDeadlineSeconds
	return own == nil || time.Duration(*own)*time.Second >= c.deadline
}

// imagePullFailure lists the pods of the Deployment written and returns an
// *ImagePullError when one of them cannot pull its image: the kubelet would
// keep backing off until the progress deadline, so the stage fails now with
// the kubelet's reason instead.
func (c *converge) imagePullFailure(ctx context.Context, written *appsv1.Deployment) error {
	sel, err := metav1.LabelSelectorAsSelector(written.Spec.Selector)
	if err != nil {
		return nil
	}
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil // best effort: the rollout wait goes on
	}
	return findImagePullError(written, pods.Items)
}

// awaitChange returns on the next watch event about name, after recheck, or
// when ctx ends.
func (c *converge) awaitChange(ctx context.Context, name string, last *appsv1.Deployment) {
	t := time.NewTimer(recheck)
	defer t.Stop()
	opts := metav1.ListOptions{FieldSelector: "metadata.name=" + name, TimeoutSeconds: ptr(int64(recheck / time.Second * 2))}
	if last != nil {
		opts.ResourceVersion = last.ResourceVersion
	}
	w, err := c.cs.AppsV1().Deployments(c.ns).Watch(ctx, opts)
	if err != nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return
	}
	defer w.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-w.ResultChan():
	}
}

// rolledOut reports whether d has rolled out the generation written: the
// controller has seen it and every replica is updated, ready and available,
// with no old pod left. A ProgressDeadlineExceeded condition is an error.
func rolledOut(d *appsv1.Deployment, generation int64) (bool, error) {
	st := d.Status
	if st.ObservedGeneration < max(generation, d.Generation) {
		return false, nil
	}
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse &&
			cond.Reason == "ProgressDeadlineExceeded" {
			return false, &ProgressDeadlineError{Namespace: d.Namespace, Deployment: d.Name, Message: cond.Message}
		}
	}
	want := replicas(d)
	return st.UpdatedReplicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want && st.Replicas == want, nil
}

func notReady(ns, name string, last *appsv1.Deployment, deadline time.Duration) error {
	if last == nil {
		return fmt.Errorf("deployment %q not read within the progress deadline %s (+%s): %w", ns+"/"+name, deadline, waitGrace, platform.ErrProgressDeadline)
	}
	st := last.Status
	stalled := ""
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse {
			stalled = fmt.Sprintf(" (its controller: %s: %s)", cond.Reason, cond.Message)
		}
	}
	return fmt.Errorf("deployment %q not rolled out within the progress deadline %s (+%s): %d wanted, %d updated, %d ready, %d available, %d total%s: %w",
		ns+"/"+name, deadline, waitGrace, replicas(last), st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.Replicas, stalled, platform.ErrProgressDeadline)
}

// conflictOrExists says a write lost a race: read again and retry.
func conflictOrExists(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
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
