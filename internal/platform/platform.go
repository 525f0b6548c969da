// Package platform holds the types that cross the platform seam: the snapshot
// of a target, a converge request and its outcome. Implementations live in
// subpackages (docker); the seam's interface is declared by its consumer,
// package activities.
package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Labels every platform puts on what it creates, so a new worker finds it.
const (
	LabelService = "stagecraft.service"
	LabelVersion = "stagecraft.version"
	LabelRole    = "stagecraft.role"
	LabelRollout = "stagecraft.rollout"
	LabelSlot    = "stagecraft.slot"
)

// Roles an instance plays in a rollout.
const (
	RoleNew    = "new"
	RoleStable = "stable"
)

// Snapshot is a target's full state before a rollout: enough to recreate it
// exactly. Rollback is converging to it.
type Snapshot struct {
	Service string `json:"service"`
	// Instances are the running instances in a stable order (Docker).
	Instances []Instance `json:"instances"`
	// Kubernetes holds the objects as they were (Kubernetes).
	Kubernetes *KubernetesSnapshot `json:"kubernetes,omitempty"`
}

// KubernetesSnapshot is a Deployment and its Service as they were, complete
// enough to restore them exactly.
type KubernetesSnapshot struct {
	// Deployment is the apps/v1 Deployment object as read (JSON).
	Deployment json.RawMessage `json:"deployment"`
	// Service is the v1 Service object as read (JSON), if the spec names one.
	Service json.RawMessage `json:"service,omitempty"`
	// Replicas is the Deployment's spec.replicas.
	Replicas int `json:"replicas"`
	// Image is the target container's image.
	Image string `json:"image"`
	// ImageIDs are the distinct image IDs the target container of the
	// Deployment's pods ran (status.containerStatuses[].imageID), sorted;
	// empty when the nodes reported none. A restore writes Image back, which
	// names these bytes again only if it is pinned by digest: the converge
	// that restores compares and reports a difference in its result's Drift.
	ImageIDs []string `json:"imageIDs,omitempty"`
}

// Count is the number of instances that ran.
func (s Snapshot) Count() int {
	if s.Kubernetes != nil {
		return s.Kubernetes.Replicas
	}
	return len(s.Instances)
}

// Empty reports whether nothing ran: the rollout is a fresh install.
func (s Snapshot) Empty() bool { return s.Count() == 0 }

// Images returns the distinct images of the snapshot, in order.
func (s Snapshot) Images() []string {
	if s.Kubernetes != nil {
		return []string{s.Kubernetes.Image}
	}
	var out []string
	seen := map[string]bool{}
	for _, in := range s.Instances {
		if !seen[in.Image] {
			seen[in.Image] = true
			out = append(out, in.Image)
		}
	}
	return out
}

// Instance is one running instance as it was found.
type Instance struct {
	Name string `json:"name"`
	// Image is the image as the instance was started from (a tag), for
	// display and labels.
	Image string `json:"image"`
	// ImageID is the content ID of the image the instance ran
	// ("sha256:..."): a recreate uses it, so a tag moved since does not
	// change what comes back. Empty in snapshots recorded before it
	// existed; a recreate then uses Image.
	ImageID string          `json:"imageID,omitempty"`
	Docker  *DockerInstance `json:"docker,omitempty"`
}

// DockerInstance is everything needed to recreate a container.
type DockerInstance struct {
	Env           []string          `json:"env,omitempty"`
	Cmd           []string          `json:"cmd,omitempty"`
	Entrypoint    []string          `json:"entrypoint,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	WorkingDir    string            `json:"workingDir,omitempty"`
	User          string            `json:"user,omitempty"`
	Ports         []PortBinding     `json:"ports,omitempty"`
	Networks      []NetworkAttach   `json:"networks,omitempty"`
	RestartPolicy string            `json:"restartPolicy,omitempty"`
	// NanoCPUs and Memory are the container's limits (0: none).
	NanoCPUs int64 `json:"nanoCPUs,omitempty"`
	Memory   int64 `json:"memory,omitempty"`
	// SecretEnv holds the variables Stagecraft set from secret references
	// (spec secretEnv): the reference, never the value. Env keeps each one's
	// place as its bare name; a recreate resolves the reference again.
	SecretEnv map[string]spec.SecretRef `json:"secretEnv,omitempty"`
	// Mounts are the container's bind mounts and volumes (named or
	// anonymous, by the volume's name) and tmpfs mounts, as they ran, so a
	// recreate comes back with its data. Tmpfs holds the --tmpfs form.
	Mounts []DockerMount     `json:"mounts,omitempty"`
	Tmpfs  map[string]string `json:"tmpfs,omitempty"`
	// MemorySwap, ShmSize, Runtime and the log driver are recorded as the
	// engine reports them (its defaults filled in), so a recreate does not
	// depend on the engine's defaults of the day.
	MemorySwap int64             `json:"memorySwap,omitempty"`
	ShmSize    int64             `json:"shmSize,omitempty"`
	Runtime    string            `json:"runtime,omitempty"`
	LogDriver  string            `json:"logDriver,omitempty"`
	LogOptions map[string]string `json:"logOptions,omitempty"`
	TTY        bool              `json:"tty,omitempty"`
	OpenStdin  bool              `json:"openStdin,omitempty"`
}

// DockerMount is one mount of a container: a host path (bind), a volume by
// name (volume) or a tmpfs.
type DockerMount struct {
	Type        string `json:"type"`
	Source      string `json:"source,omitempty"` // host path or volume name
	Target      string `json:"target"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
	Propagation string `json:"propagation,omitempty"` // bind mounts
}

// PortBinding publishes a container port on a host address.
type PortBinding struct {
	ContainerPort string `json:"containerPort"` // "8080/tcp"
	HostIP        string `json:"hostIP"`
	HostPort      string `json:"hostPort,omitempty"` // empty: chosen by the engine
}

// NetworkAttach is a network a container is on and its aliases there.
type NetworkAttach struct {
	Network string   `json:"network"`
	Aliases []string `json:"aliases,omitempty"`
}

// Which selects instances for endpoints and checks.
type Which string

const (
	// WhichNew is this rollout's new-version instances.
	WhichNew Which = "new"
	// WhichOld is the snapshot's instances still running.
	WhichOld Which = "old"
)

// ConvergeRequest asks a platform to bring a target to a desired state.
type ConvergeRequest struct {
	Spec spec.Spec `json:"spec"`
	// Rollout is a short token unique to the rollout run; new instances carry it.
	Rollout  string       `json:"rollout"`
	Snapshot Snapshot     `json:"snapshot"`
	Desired  plan.Desired `json:"desired"`
	// Fence is the attempt's place in the target's order of writes. The
	// Converge activity sets it from its attempt (never the workflow, so
	// histories do not carry it); zero does not fence.
	Fence Fence `json:"-"`
}

// ConvergeResult says what converging changed and what it found.
type ConvergeResult struct {
	Created  []string `json:"created,omitempty"`
	Removed  []string `json:"removed,omitempty"`
	Rewired  []string `json:"rewired,omitempty"`
	NewCount int      `json:"newCount"`
	OldCount int      `json:"oldCount"`
	Total    int      `json:"total"`
	// Drift says where the target now differs from what it is converged to
	// in a way converging cannot undo, one sentence each (Kubernetes: a
	// restored tag now names other bytes than the snapshot's pods ran).
	Drift []string `json:"drift,omitempty"`
	// Terminating names what of the new version a restore left still
	// terminating ("pod/NAME"): out of every Service's endpoints, so the
	// target counts as restored, its grace period and preStop hooks running
	// on, never cut short.
	Terminating []string `json:"terminating,omitempty"`
}

// Changed reports whether anything was done.
func (r ConvergeResult) Changed() bool {
	return len(r.Created)+len(r.Removed)+len(r.Rewired) > 0
}

// Error types, named so workflows' retry policies can list them as
// non-retryable.
const (
	ErrTypeImageNotFound  = "ImageNotFound"
	ErrTypeInvalidSpec    = "InvalidSpec"
	ErrTypeTargetNotFound = "TargetNotFound"
	ErrTypeProgressStuck  = "ProgressDeadlineExceeded"
	ErrTypeForbidden      = "Forbidden"
)

// ErrUnrestorable is wrapped by errors that say a target runs something its
// platform cannot record and recreate exactly (a Docker container using a
// setting a recreate would drop). The rollout is refused before any change:
// activities classify it as ErrTypeInvalidSpec.
var ErrUnrestorable = errors.New("cannot be restored exactly")

// ErrSpecRefused is wrapped by errors that say the worker's configuration
// does not let a spec ask for something (a Kubernetes cluster it does not
// know, a kubeconfig path of the spec's choosing): activities classify it
// as ErrTypeInvalidSpec, so the rollout is refused before any change.
var ErrSpecRefused = errors.New("refused by the worker's configuration")

// ErrForbidden is wrapped by errors that say the platform refused the worker
// an action (Kubernetes RBAC): retrying does not help.
var ErrForbidden = errors.New("forbidden")

// ErrProgressDeadline is wrapped by errors that say the platform gave up
// bringing instances up (Kubernetes' ProgressDeadlineExceeded). Retrying the
// same converge would wait again, so the stage fails.
var ErrProgressDeadline = errors.New("progress deadline exceeded")

// ImageNotFoundError says an image is not present and cannot be pulled:
// its registry answered that it has no such image or refuses it to the
// engine, or the registry's host name does not exist. Retrying does not
// help. A registry that could not be asked is a RegistryUnavailableError.
type ImageNotFoundError struct {
	Image string
	// Reason is the registry's answer as the engine gave it, when there
	// was one ("manifest unknown", "unauthorized", ...).
	Reason string
}

func (e *ImageNotFoundError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("image %q not found (%s): build or pull it before deploying", e.Image, e.Reason)
	}
	return fmt.Sprintf("image %q not found: build or pull it before deploying", e.Image)
}

// RegistryUnavailableError says an image is not present and its registry
// could not be asked whether it has it: the connection was refused or timed
// out, or the registry answered with a server error or "too many requests".
// Whether the image exists is unknown, so this is not an
// ImageNotFoundError: the step that needs the image is retried, and fails
// with this error when the outage outlasts its retries.
type RegistryUnavailableError struct {
	Image string
	Err   error
}

func (e *RegistryUnavailableError) Error() string {
	return fmt.Sprintf("image %q is not on the engine and its registry could not be asked (%v): whether the registry has it is unknown", e.Image, e.Err)
}

func (e *RegistryUnavailableError) Unwrap() error { return e.Err }

// IsImageNotFound reports whether err is or wraps an ImageNotFoundError.
func IsImageNotFound(err error) bool {
	var e *ImageNotFoundError
	return errors.As(err, &e)
}

// TargetNotFoundError says an object the rollout must change does not exist
// (a Deployment, a Service, a container in a pod template).
type TargetNotFoundError struct{ What string }

func (e *TargetNotFoundError) Error() string {
	if strings.HasSuffix(e.What, "not found") || strings.Contains(e.What, " not found ") {
		return e.What
	}
	return e.What + " not found"
}

// Resource names a capacity report uses, as Kubernetes names them.
const (
	ResourceCPU    = "cpu"
	ResourceMemory = "memory"
	ResourcePods   = "pods"
)

// CapacityReport says whether a rollout's extra instances fit in what a
// platform has left. Quantities are written as Kubernetes writes them
// ("1500m", "2Gi"), by resource name.
type CapacityReport struct {
	// Instances is how many instances beyond the current ones must fit.
	Instances int `json:"instances"`
	// PerInstance is what one instance declares; a resource it declares
	// nothing of is absent.
	PerInstance map[string]string `json:"perInstance,omitempty"`
	// Need is PerInstance times Instances.
	Need map[string]string `json:"need,omitempty"`
	// Free is what the platform reports as left, for the same resources.
	Free map[string]string `json:"free,omitempty"`
	// Fits: Need fits in Free, and one instance fits where instances run
	// (a node, the engine's host).
	Fits bool `json:"fits"`
	// Detail says why it does not fit, or what was not counted.
	Detail string `json:"detail,omitempty"`
}
