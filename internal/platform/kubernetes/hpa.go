package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// AnnotationSplit is written on the stable Deployment, while a rollout runs
// beside a Horizontal Pod Autoscaler that targets it, with the last split
// of the autoscaler's count this rollout made, e.g.
// "rollout=r1a2b3,total=4,stable=3,desired=4": the total it followed, the
// replicas it gave the stable Deployment and the autoscaler's desired count
// it read then. The final state and a rollback remove it, so nothing of it
// outlives the rollout. It tells the next converge whether the autoscaler
// (or anyone) has scaled the target since (see autoscaler.want).
const AnnotationSplit = "stagecraft.io/hpa-split"

// autoscaler is what a converge needs of the HorizontalPodAutoscaler
// (autoscaling/v2) that targets the stable Deployment.
type autoscaler struct {
	name string
	// min and max are its bounds for its target; min is at least 1 (an
	// autoscaler whose target has no replicas is switched off).
	min, max int
	// desired is its status.desiredReplicas: the count it last decided on
	// for its target, 0 when it has decided on none yet.
	desired int
	// created is when it was created (the API server's clock).
	created time.Time
}

// split is the AnnotationSplit record.
type split struct {
	rollout             string
	total, stable, seen int
}

func (s split) String() string {
	return fmt.Sprintf("rollout=%s,total=%d,stable=%d,desired=%d", s.rollout, s.total, s.stable, s.seen)
}

// splitOf reads the record from annotations.
func splitOf(annotations map[string]string) (split, bool) {
	v, ok := annotations[AnnotationSplit]
	if !ok {
		return split{}, false
	}
	var s split
	fields := 0
	for _, kv := range strings.Split(v, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "rollout" {
			s.rollout = v
			fields++
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return split{}, false
		}
		switch k {
		case "total":
			s.total = n
		case "stable":
			s.stable = n
		case "desired":
			s.seen = n
		default:
			continue
		}
		fields++
	}
	return s, fields == 4 && s.total > 0
}

// withoutSplit returns annotations without the record (a copy when it was
// there).
func withoutSplit(annotations map[string]string) map[string]string {
	if _, ok := annotations[AnnotationSplit]; !ok {
		return annotations
	}
	out := maps.Clone(annotations)
	delete(out, AnnotationSplit)
	if len(out) == 0 {
		return nil
	}
	return out
}

// findAutoscaler returns the HorizontalPodAutoscaler in ns whose
// scaleTargetRef names the Deployment, or nil. With several (the
// autoscaler controller then refuses to scale), the first by name is
// followed and the others are logged. A cluster that does not serve
// autoscaling/v2, or a worker not allowed to list autoscalers, is treated
// as having none, with a warning: the rollout then runs as without one.
func findAutoscaler(ctx context.Context, c *convergence) (*autoscaler, error) {
	list, err := c.cs.AutoscalingV2().HorizontalPodAutoscalers(c.ns).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		c.log.Warn("cannot list horizontal pod autoscalers: counts follow the plan, not an autoscaler (grant list on horizontalpodautoscalers.autoscaling)",
			zap.Error(err))
		return nil, nil
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("list horizontal pod autoscalers in %q: %w", c.ns, err)
	}
	var found []autoscalingv2.HorizontalPodAutoscaler
	for _, h := range list.Items {
		if targets(h.Spec.ScaleTargetRef, c.orig.Name) {
			found = append(found, h)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	slices.SortFunc(found, func(a, b autoscalingv2.HorizontalPodAutoscaler) int { return strings.Compare(a.Name, b.Name) })
	if len(found) > 1 {
		names := make([]string, len(found))
		for i, h := range found {
			names[i] = h.Name
		}
		c.log.Warn("several horizontal pod autoscalers target the deployment; following the first", zap.Strings("autoscalers", names))
	}
	return autoscalerOf(found[0]), nil
}

// targets says whether ref names the Deployment name.
func targets(ref autoscalingv2.CrossVersionObjectReference, name string) bool {
	if ref.Kind != "Deployment" || ref.Name != name {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && (gv.Group == appsv1.GroupName || gv.Group == "extensions")
}

func autoscalerOf(h autoscalingv2.HorizontalPodAutoscaler) *autoscaler {
	a := &autoscaler{name: h.Name, min: 1, max: int(h.Spec.MaxReplicas), desired: int(h.Status.DesiredReplicas), created: h.CreationTimestamp.Time}
	if h.Spec.MinReplicas != nil {
		a.min = max(1, int(*h.Spec.MinReplicas))
	}
	a.max = max(a.max, a.min)
	return a
}

// bound keeps n within the autoscaler's bounds for its target.
func (a *autoscaler) bound(n int) int { return min(max(n, a.min), a.max) }

// want is the number of instances the autoscaler wants the service to
// run, canary included: the pods of a canary match its target's selector,
// so its metrics count them, and a count it decides on is one for all of
// them. live is the stable Deployment's replicas now, rec the record of
// this rollout's last split on it (recorded says there is one), planned
// the total the rollout was planned for.
//
//   - When nobody has scaled the Deployment since the last split (live is
//     what the split gave it) and the autoscaler has decided nothing new
//     (its desired count is none yet, the one read at the split, or the
//     stable Deployment's count: within its tolerance it reports its
//     target's own count, which leaves the canary out), the split's total
//     stands.
//   - Otherwise its desired count, when it has one;
//   - else (no metrics, or it never ran) the Deployment's replicas now;
//   - else planned.
//
// beside is the replicas of a canary running beside the stable Deployment
// with no split of this rollout recorded: the autoscaler appeared after the
// rollout began. The canary's pods serve too, and the autoscaler, sizing
// by its target's own count, has not counted them, so the service is not
// given fewer than both run now (a rollback that took the canary away
// would otherwise shrink it, 4 to 1 at a 75% step); the autoscaler scales
// from there.
//
// The result is within the autoscaler's bounds.
func (a *autoscaler) want(live int, rec split, recorded bool, planned, beside int) int {
	ours := recorded && live == rec.stable
	unchanged := a.desired == 0 || a.desired == rec.seen || a.desired == rec.stable
	serving := live + beside
	switch {
	case ours && unchanged:
		return a.bound(rec.total)
	case a.desired > 0 && beside > 0:
		return a.bound(max(a.desired, serving))
	case a.desired > 0:
		return a.bound(a.desired)
	case serving > 0:
		return a.bound(serving)
	}
	return a.bound(planned)
}

// follow converts d, planned for planned instances, to want instances,
// the autoscaler's count. The new side keeps its share of the plan,
// rounded up (at least one when the plan has any, at most want). The
// stable Deployment, the autoscaler's target, runs want (a rollback, blue
// beside green) or what the new side leaves of want (shared traffic), but
// never fewer than the autoscaler's minimum, nor none, nor more than its
// maximum: it would scale such a count back at once. The last step and the
// final state give the stable Deployment want.
func (a *autoscaler) follow(d plan.Desired, planned, want int) plan.Desired {
	switch {
	case d.New == 0:
		d.Old = want
		return d
	case d.Old == 0:
		d.New = want
		return d
	}
	n := share(d.New, planned, want)
	old := want
	if d.Traffic != plan.TrafficOld && d.Traffic != plan.TrafficNew {
		old = want - n
	}
	d.New, d.Old = n, a.bound(old)
	return d
}

// share is n of planned, rounded up, as a count out of want: at least 1
// for a positive n, at most want.
func share(n, planned, want int) int {
	if n <= 0 {
		return 0
	}
	planned = max(planned, n)
	return min(max((n*want+planned-1)/planned, 1), want)
}

// plannedTotal is the total the workflow planned for (workflows/rollout.go):
// the spec's replicas, else the count the snapshot recorded.
func plannedTotal(req platform.ConvergeRequest) int {
	if n := req.Spec.Replicas(); n > 0 {
		return n
	}
	return req.Snapshot.Count()
}

// followAutoscaler looks for an autoscaler of the stable Deployment and,
// when there is one, converts c.desired to the count it wants now (c.hpa
// and c.split are then set). The stable Deployment's replicas and the
// record on it are read now, once per converge: an autoscaler that scales
// during the converge is followed by the next one.
func (c *convergence) followAutoscaler(ctx context.Context, planned int) error {
	a, err := findAutoscaler(ctx, c)
	if err != nil || a == nil {
		return err
	}
	cur, err := c.getStable(ctx)
	if err != nil && !IsTargetNotFound(err) {
		return err
	}
	return c.follow(ctx, planned, a, cur)
}

// follow is followAutoscaler once the autoscaler a and the stable
// Deployment (cur, as just read; nil when it is not there) are read.
func (c *convergence) follow(ctx context.Context, planned int, a *autoscaler, cur *appsv1.Deployment) error {
	live, rec, recorded := 0, split{}, false
	if cur != nil {
		live = int(replicas(cur))
		rec, recorded = splitOf(cur.Annotations)
		recorded = recorded && rec.rollout == c.rollout
	}
	beside := 0
	if !recorded {
		var err error
		if beside, err = c.canaryBeside(ctx, a); err != nil {
			return err
		}
	}
	want := a.want(live, rec, recorded, planned, beside)
	before := c.desired
	c.desired = a.follow(c.desired, planned, want)
	c.hpa = a
	c.split = split{rollout: c.rollout, total: want, stable: c.desired.Old, seen: a.desired}
	c.log.Info("following the horizontal pod autoscaler", zap.String("autoscaler", a.name),
		zap.Int("desiredReplicas", a.desired), zap.Int("minReplicas", a.min), zap.Int("maxReplicas", a.max),
		zap.Int("stableReplicas", live), zap.String("lastSplit", annotationOr(recorded, rec)),
		zap.Int("planned", planned), zap.Int("want", want),
		zap.Int("plannedNew", before.New), zap.Int("plannedOld", before.Old),
		zap.Int("new", c.desired.New), zap.Int("old", c.desired.Old))
	return nil
}

// canaryBeside is the replicas of this service's canary Deployment when
// the autoscaler a was created after it (both times by the API server's
// clock): it appeared mid-rollout and has never counted the canary. 0 when
// there is no canary, or when the autoscaler was there first (a converge
// retried before its first split, or after the last step's, finds no split
// recorded too, and must keep to the autoscaler's count).
func (c *convergence) canaryBeside(ctx context.Context, a *autoscaler) (int, error) {
	d, err := c.cs.AppsV1().Deployments(c.ns).Get(ctx, canaryName(c.orig.Name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("get deployment %q: %w", c.ns+"/"+canaryName(c.orig.Name), err)
	case d.Labels[platform.LabelService] != c.spec.Service || !a.created.After(d.CreationTimestamp.Time):
		return 0, nil
	}
	return int(replicas(d)), nil
}

func annotationOr(ok bool, s split) string {
	if !ok {
		return ""
	}
	return s.String()
}

// markSplit records c's split on the stable Deployment being written
// beside the rollout's, when an autoscaler is followed.
func (c *convergence) markSplit(d *appsv1.Deployment) {
	if c.hpa == nil {
		return
	}
	ann := maps.Clone(d.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationSplit] = c.split.String()
	d.Annotations = ann
}

// unmarkSplit removes the record: the stable Deployment is the whole
// service again, and its count the autoscaler's alone.
func unmarkSplit(d *appsv1.Deployment) { d.Annotations = withoutSplit(d.Annotations) }
