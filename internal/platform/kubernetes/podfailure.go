package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// When a pod of the Deployment being waited for is certain never to become
// ready, the wait ends at once with the cause (PodFailureError,
// ImagePullError) instead of at the progress deadline. The rules, each
// chosen so that a pod that may still come up is waited for:
const (
	// crashRestarts: a container restarted this many times while the
	// waiter watched is crash-looping. One or two restarts are common while
	// a dependency warms up; with the kubelet's back-off (10 s, doubling)
	// the third came 46-53 s after the canary was written on the real node.
	crashRestarts = 3
	// unschedulableGrace: a pod the scheduler has reported Unschedulable
	// for this long, continuously, with no pod of the namespace
	// terminating (whose resources are freed when it is gone) and no
	// cluster autoscaler adding a node for it (TriggeredScaleUp), will not
	// be placed.
	unschedulableGrace = 30 * time.Second
	// pullGrace: a pull that failed for a reason that may pass (a refused
	// or timed-out connection, a registry's 5xx or 429) is given this long
	// to succeed; the kubelet retries it meanwhile. A missing image or a
	// refused access (see pullCertain) fails at once.
	pullGrace = 30 * time.Second
)

// PodFailureError says a pod of a Deployment being rolled out will not
// become ready, and why (crash-looping, unschedulable), with what its
// kubelet or the scheduler last said.
type PodFailureError struct {
	Namespace, Deployment, Pod string
	// Reason is the cause: ReasonCrashLoop or ReasonUnschedulable.
	Reason string
	// Message says what the pod's kubelet or the scheduler reported.
	Message string
}

func (e *PodFailureError) Error() string {
	return fmt.Sprintf("deployment %q: pod %q %s", e.Namespace+"/"+e.Deployment, e.Pod, e.Message)
}

// Unwrap marks it as a stalled rollout: the stage fails without retrying.
func (e *PodFailureError) Unwrap() error { return platform.ErrProgressDeadline }

// Pod failure reasons (PodFailureError.Reason).
const (
	ReasonCrashLoop     = "CrashLoopBackOff"
	ReasonUnschedulable = "Unschedulable"
)

// podWatch is what one wait remembers about the pods it looks at, so that
// a threshold counts from what this wait saw, not from a pod's past (a
// long-running pod's old restarts, an earlier attempt's wait).
type podWatch struct {
	now func() time.Time
	// restarts is each container's restart count when first seen, by pod
	// UID and container name.
	restarts map[string]int32
	// unschedulable is when each pod was first seen Unschedulable (and
	// has been since); pulling when each container was first seen failing
	// to pull its image.
	unschedulable map[types.UID]time.Time
	pulling       map[string]time.Time
	// rs is the current ReplicaSet found for revision rsRevision, kept so
	// a re-check lists only pods.
	rs         types.UID
	rsRevision string
}

func newPodWatch(now func() time.Time) *podWatch {
	return &podWatch{now: now, restarts: map[string]int32{}, unschedulable: map[types.UID]time.Time{}, pulling: map[string]time.Time{}}
}

// podFailure looks at the pods of d's current ReplicaSet (d as just read:
// the controller has seen its latest generation) and returns the first
// certain failure, or nil while every pod may still become ready. Reading
// errors return nil: this is a shortcut, and the wait goes on regardless.
func (c *convergence) podFailure(ctx context.Context, d *appsv1.Deployment, w *podWatch) error {
	pods, ok := c.currentPods(ctx, d, w)
	if !ok {
		return nil
	}
	failure, stuck := w.classify(d, pods)
	if failure != nil || stuck == nil {
		return failure
	}
	if why := c.mayBePlaced(ctx, stuck); why != "" {
		c.log.Debug("unschedulable pod waited for: " + why)
		return nil
	}
	return &PodFailureError{Namespace: c.ns, Deployment: d.Name, Pod: stuck.Name, Reason: ReasonUnschedulable,
		Message: fmt.Sprintf("cannot be scheduled (Unschedulable for %s): %s", unschedulableGrace, scheduledCondition(stuck).Message)}
}

// currentPods lists the pods, not terminating, of d's current ReplicaSet:
// the one d owns whose revision is d's (remembered in w, when not nil). ok
// is false while that is not known yet (the controller has not seen d's
// latest generation).
func (c *convergence) currentPods(ctx context.Context, d *appsv1.Deployment, w *podWatch) ([]corev1.Pod, bool) {
	rev := d.Annotations[revisionAnnotation]
	if d.Status.ObservedGeneration < d.Generation || rev == "" {
		return nil, false
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, false
	}
	opts := metav1.ListOptions{LabelSelector: sel.String()}
	var rs types.UID
	if w != nil && w.rsRevision == rev {
		rs = w.rs
	} else {
		sets, err := c.cs.AppsV1().ReplicaSets(c.ns).List(ctx, opts)
		if err != nil {
			return nil, false
		}
		for _, s := range sets.Items {
			if ownedBy(s.OwnerReferences, d.UID) && s.Annotations[revisionAnnotation] == rev {
				rs = s.UID
			}
		}
		if rs == "" {
			return nil, false
		}
		if w != nil {
			w.rs, w.rsRevision = rs, rev
		}
	}
	list, err := c.cs.CoreV1().Pods(c.ns).List(ctx, opts)
	if err != nil {
		return nil, false
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && ownedBy(p.OwnerReferences, rs) {
			pods = append(pods, p)
		}
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, true
}

func ownedBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && r.UID == uid {
			return true
		}
	}
	return false
}

// classify applies the rules to pods (d's current ones) and returns a
// certain failure, or else a pod Unschedulable past its grace, which the
// caller confirms against the namespace's state (mayBePlaced).
func (w *podWatch) classify(d *appsv1.Deployment, pods []corev1.Pod) (failure error, unschedulable *corev1.Pod) {
	now := w.now()
	seen := map[types.UID]bool{}
	for i := range pods {
		pod := &pods[i]
		seen[pod.UID] = true
		if err := w.pullFailure(d, pod, now); err != nil {
			return err, nil
		}
		if err := w.crashLoop(d, pod); err != nil {
			return err, nil
		}
		if cond := scheduledCondition(pod); cond != nil && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			first, ok := w.unschedulable[pod.UID]
			if !ok {
				w.unschedulable[pod.UID] = now
			} else if now.Sub(first) >= unschedulableGrace && unschedulable == nil {
				unschedulable = pod
			}
		} else {
			delete(w.unschedulable, pod.UID)
		}
	}
	for uid := range w.unschedulable {
		if !seen[uid] {
			delete(w.unschedulable, uid)
		}
	}
	return nil, unschedulable
}

// pullFailure returns an *ImagePullError when pod cannot get the image of
// d's template and that is certain: the kubelet will not pull it
// (ErrImageNeverPull), the name is invalid, the registry said it has no
// such image or refused access, the registry's name cannot exist, or a
// pull has kept failing for pullGrace.
func (w *podWatch) pullFailure(d *appsv1.Deployment, pod *corev1.Pod, now time.Time) error {
	err := findImagePullError(d, []corev1.Pod{*pod})
	ipe, _ := err.(*ImagePullError)
	failing := map[string]bool{}
	if ipe != nil {
		key := string(pod.UID) + "/" + ipe.Image
		failing[key] = true
		first, ok := w.pulling[key]
		if !ok {
			w.pulling[key], first = now, now
		}
		if pullCertain(ipe) || now.Sub(first) >= pullGrace {
			return ipe
		}
	}
	for key := range w.pulling {
		if strings.HasPrefix(key, string(pod.UID)+"/") && !failing[key] {
			delete(w.pulling, key)
		}
	}
	return nil
}

// pullCertain says whether a pull error cannot pass by retrying.
func pullCertain(e *ImagePullError) bool {
	switch e.Reason {
	case "ErrImageNeverPull", "InvalidImageName":
		return true
	}
	if host, _, ok := strings.Cut(e.Image, "/"); ok && strings.Contains(host, ".") &&
		(strings.HasSuffix(host, ".invalid") || strings.Contains(host, ".invalid:")) {
		return true // RFC 6761: a .invalid name never resolves
	}
	msg := strings.ToLower(e.Message)
	for _, s := range []string{"not found", "manifest unknown", "name unknown", "pull access denied",
		"unauthorized", "authorization failed", "403 forbidden", "no such host"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// crashLoop returns a *PodFailureError when a container of pod has
// restarted crashRestarts times since this wait first saw it.
func (w *podWatch) crashLoop(d *appsv1.Deployment, pod *corev1.Pod) error {
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		key := string(pod.UID) + "/" + cs.Name
		base, ok := w.restarts[key]
		if !ok || cs.RestartCount < base {
			w.restarts[key], base = cs.RestartCount, cs.RestartCount
		}
		if n := cs.RestartCount - base; n >= crashRestarts {
			return &PodFailureError{Namespace: pod.Namespace, Deployment: d.Name, Pod: pod.Name, Reason: ReasonCrashLoop,
				Message: fmt.Sprintf("is crash-looping: container %q restarted %d times in this wait (%d in all)%s",
					cs.Name, n, cs.RestartCount, lastExit(cs, pod))}
		}
	}
	return nil
}

// lastExit says how a container last ended, with its termination message
// (the file it wrote, or its log's tail under FallbackToLogsOnError), and
// where the rest is.
func lastExit(cs corev1.ContainerStatus, pod *corev1.Pod) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		t = cs.State.Terminated
	}
	out := ""
	if t != nil {
		out = fmt.Sprintf(", last exit code %d (%s)", t.ExitCode, t.Reason)
		if m := strings.TrimSpace(t.Message); m != "" {
			out += ": " + oneLine(m)
		}
	}
	return out + fmt.Sprintf("; its output: kubectl logs -n %s %s -c %s --previous", pod.Namespace, pod.Name, cs.Name)
}

// oneLine keeps a message's last 3 lines, joined, at most 400 bytes: a
// log's tail is where a crash says why.
func oneLine(m string) string {
	lines := strings.Split(m, "\n")
	m = strings.Join(lines[max(0, len(lines)-3):], " | ")
	if len(m) > 400 {
		m = "…" + m[len(m)-400:]
	}
	return m
}

func scheduledCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodScheduled {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// mayBePlaced says why an Unschedulable pod may still be placed (a pod of
// the namespace terminating, an autoscaler adding a node for it), or ""
// when nothing will change the scheduler's answer. A read that fails counts
// as a reason to wait.
func (c *convergence) mayBePlaced(ctx context.Context, pod *corev1.Pod) string {
	pods, err := c.cs.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "listing the namespace's pods: " + err.Error()
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			return fmt.Sprintf("pod %q is terminating", p.Name)
		}
	}
	events, err := c.cs.CoreV1().Events(c.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pod.UID)})
	if err != nil {
		return "listing the pod's events: " + err.Error()
	}
	for _, e := range events.Items {
		if e.InvolvedObject.UID == pod.UID && e.Reason == "TriggeredScaleUp" {
			return "an autoscaler is adding a node: " + e.Message
		}
	}
	return ""
}

// stalled adds to a progress-deadline error what the first pod of d's
// current ReplicaSet that is not ready last reported: its readiness (or
// other) probe's last failure from its events, a container's waiting
// reason or last exit, or the scheduler's message.
func (c *convergence) stalled(ctx context.Context, d *appsv1.Deployment, err error) error {
	pods, ok := c.currentPods(ctx, d, nil)
	if !ok {
		return err
	}
	var notReady []*corev1.Pod
	for i := range pods {
		if !podReady(pods[i]) {
			notReady = append(notReady, &pods[i])
		}
	}
	if len(notReady) == 0 {
		return err
	}
	pod := notReady[0]
	why := c.notReadyBecause(ctx, pod)
	if len(notReady) > 1 {
		why += fmt.Sprintf(" (and %d more pods not ready)", len(notReady)-1)
	}
	return fmt.Errorf("%w; pod %q is not ready: %s", err, pod.Name, why)
}

// notReadyBecause says what pod, not ready, last reported.
func (c *convergence) notReadyBecause(ctx context.Context, pod *corev1.Pod) string {
	if cond := scheduledCondition(pod); cond != nil && cond.Status == corev1.ConditionFalse {
		return fmt.Sprintf("not scheduled: %s: %s", cond.Reason, cond.Message)
	}
	if e := c.lastProbeFailure(ctx, pod); e != "" {
		return e
	}
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		if wt := cs.State.Waiting; wt != nil {
			return fmt.Sprintf("container %q waiting: %s: %s", cs.Name, wt.Reason, wt.Message)
		}
		if cs.RestartCount > 0 {
			return fmt.Sprintf("container %q restarted %d times%s", cs.Name, cs.RestartCount, lastExit(cs, pod))
		}
	}
	return "no probe failure or container error reported (phase " + string(pod.Status.Phase) + ")"
}

// lastProbeFailure is the message of the pod's latest Unhealthy event
// ("Readiness probe failed: ..."), with how many times it was seen, or "".
func (c *convergence) lastProbeFailure(ctx context.Context, pod *corev1.Pod) string {
	events, err := c.cs.CoreV1().Events(c.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pod.UID)})
	if err != nil {
		return ""
	}
	var last *corev1.Event
	var lastAt time.Time
	for i := range events.Items {
		e := &events.Items[i]
		if e.InvolvedObject.UID != pod.UID || e.Reason != "Unhealthy" {
			continue
		}
		if at := eventTime(e); last == nil || !at.Before(lastAt) {
			last, lastAt = e, at
		}
	}
	if last == nil {
		return ""
	}
	n := max(last.Count, 1)
	if last.Series != nil {
		n = max(n, last.Series.Count)
	}
	return fmt.Sprintf("%s (seen %d times)", strings.TrimSpace(last.Message), n)
}

// eventTime is when e was last seen, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}
