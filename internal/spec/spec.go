// Package spec defines the deployment spec that callers submit, how it is
// parsed from YAML or JSON, its defaults, and its validation. It is pure: no
// I/O, so workflow code may call it.
package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"sigs.k8s.io/yaml"
)

// Strategy types.
const (
	Canary    = "canary"
	BlueGreen = "blue-green"
	Rolling   = "rolling"
	Recreate  = "recreate"
)

// Defaults from the product's seed.
var (
	DefaultCanarySteps      = []int{5, 25, 50, 100}
	DefaultCanaryBake       = 5 * time.Minute
	DefaultBlueGreenBake    = 3 * time.Minute
	DefaultRollingBatch     = 1
	DefaultRollingBake      = 2 * time.Minute
	DefaultRecreateBake     = 2 * time.Minute
	DefaultHealthInterval   = 30 * time.Second
	DefaultCheckTimeout     = 10 * time.Second
	DefaultRolloutTimeout   = 2 * time.Hour
	DefaultDockerNetwork    = "stagecraft"
	DefaultDockerReplicas   = 1
	DefaultHTTPExpectStatus = 200
	DefaultProgressDeadline = 10 * time.Minute
)

// Spec is one rollout request: a service, the image to roll out, where it runs,
// how to roll it out and how to tell whether it is healthy.
type Spec struct {
	// Service names the service; with the platform it identifies the target.
	Service string `json:"service"`
	// Image is the new version's image reference, at most 512 bytes.
	Image string `json:"image"`
	// ExecutionID is an optional caller-chosen ID for this request, kept in the
	// result and the memo: printable, at most 200 bytes.
	ExecutionID string `json:"executionId,omitempty"`
	// Platform says where the service runs. Exactly one platform is set.
	Platform Platform `json:"platform"`
	// Strategy says how the new version replaces the old.
	Strategy Strategy `json:"strategy"`
	// Health lists the checks that validate every stage and the rollback.
	Health Health `json:"health"`
	// Timeout bounds the whole rollout, approval waits included; past it
	// the rollout rolls back. Default 2h; with approval gates, what the
	// gates' windows and the bakes need plus 2h. At most 30 days.
	Timeout Duration `json:"timeout,omitempty"`
	// Approval names the stages that wait for an operator's approval
	// before they start.
	Approval *Approval `json:"approval,omitempty"`
	// Notifications say where to tell about the rollout's events.
	Notifications []Notification `json:"notifications,omitempty"`
	// Environment names where the rollout deploys ("prod"), for search
	// and notifications; a release sets its own. Lowercase letters, digits
	// and '-', at most 63 characters.
	Environment string `json:"environment,omitempty"`
}

// Platform holds exactly one platform's target.
type Platform struct {
	Docker     *Docker     `json:"docker,omitempty"`
	Kubernetes *Kubernetes `json:"kubernetes,omitempty"`
}

// Kubernetes is a Deployment (and, where traffic moves, its Service) in a
// cluster reached through a kubeconfig or in-cluster configuration.
type Kubernetes struct {
	// Namespace of the Deployment and Service (default "default").
	Namespace string `json:"namespace,omitempty"`
	// Deployment is the existing Deployment to roll out.
	Deployment string `json:"deployment"`
	// Container is the container whose image changes; default the only one.
	Container string `json:"container,omitempty"`
	// Service selects the pods that serve traffic; required for blue-green.
	Service string `json:"service,omitempty"`
	// Replicas at the end; default the Deployment's current replicas.
	Replicas int `json:"replicas,omitempty"`
	// Cluster names one of the clusters the worker was configured with
	// (worker --cluster NAME=KUBECONFIG[:CONTEXT]); empty is the worker's
	// own default ($KUBECONFIG, or the cluster it runs in). It is part of
	// the target key: one Deployment name in two clusters is two targets.
	Cluster string `json:"cluster,omitempty"`
	// Kubeconfig path and Context: only on a worker started with
	// --allow-kubeconfig-paths (local development); a spec author must not
	// choose the worker's credentials. Default $KUBECONFIG or in-cluster.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	// ProgressDeadline bounds how long a stage waits for pods to be ready.
	ProgressDeadline Duration `json:"progressDeadline,omitempty"`
	// ConfigMap names a ConfigMap the new version's container takes its
	// environment from (envFrom), in place of one an earlier release set.
	// A release sets it to the ConfigMap its preparation writes.
	ConfigMap string `json:"configMap,omitempty"`
	// SecretEnv sets environment variables of the new version's container
	// from keys of Secrets (secretKeyRef), as env valueFrom entries of the
	// pod template: the values never leave the cluster.
	SecretEnv map[string]SecretRef `json:"secretEnv,omitempty"`
	// CheckVia is how the checks that run per instance ({{.Address}}) reach
	// each pod: "podIP" (the pod's IP and container port: only a worker in
	// the cluster network can dial it) or "portForward" (a 127.0.0.1 port
	// the worker forwards to the pod through the API server; the worker's
	// account needs create on pods/portforward). Empty leaves it to the
	// worker's setting (--kube-check-via).
	CheckVia string `json:"checkVia,omitempty"`
}

// Values of Kubernetes.CheckVia.
const (
	CheckViaPodIP       = "podIP"
	CheckViaPortForward = "portForward"
)

// Docker is a service made of containers on one Docker engine.
type Docker struct {
	// Replicas is the number of containers of the new version at the end.
	Replicas int `json:"replicas"`
	// Port is the container port to publish on 127.0.0.1.
	Port int `json:"port"`
	// Env is the containers' environment.
	Env map[string]string `json:"env,omitempty"`
	// SecretEnv sets environment variables from references the worker
	// resolves when it creates a container (fromEnv, fromFile), so values
	// never enter the spec, the workflow history or the audit trail.
	SecretEnv map[string]SecretRef `json:"secretEnv,omitempty"`
	// Command overrides the image's command.
	Command []string `json:"command,omitempty"`
	// Labels are extra container labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Network is the user-defined network the containers join, with the
	// service name as their alias while they serve traffic.
	Network string `json:"network,omitempty"`
	// Resources limits each container (CPU and memory); a release checks
	// that its services' containers fit on the engine before starting.
	Resources *Resources `json:"resources,omitempty"`
}

// Strategy configures the rollout strategy.
type Strategy struct {
	// Type is canary, blue-green, rolling or recreate.
	Type string `json:"type"`
	// Steps are canary percentages, increasing, ending at 100.
	Steps []int `json:"steps,omitempty"`
	// Bake is how long each stage is watched before the next (canary, rolling,
	// recreate).
	Bake Duration `json:"bake,omitempty"`
	// BatchSize is the number of instances replaced per rolling batch.
	BatchSize int `json:"batchSize,omitempty"`
	// BakeBeforeSwitch is how long green is validated before traffic moves.
	BakeBeforeSwitch Duration `json:"bakeBeforeSwitch,omitempty"`
	// BakeAfterSwitch is how long green is validated under traffic.
	BakeAfterSwitch Duration `json:"bakeAfterSwitch,omitempty"`
	// KeepBlueFor keeps blue running after the post-switch bake, for an
	// instant switch-back by abort, before it is removed (blue-green).
	KeepBlueFor Duration `json:"keepBlueFor,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("20s", "5m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. 30s, 5m)", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("invalid duration %s (want e.g. \"30s\")", string(b))
	}
	ns := secs * float64(time.Second)
	if math.Abs(ns) >= 1<<63 { // converting it would give an arbitrary, platform-dependent value
		return fmt.Errorf("invalid duration %s: out of range (at most %v)", string(b), time.Duration(math.MaxInt64))
	}
	*d = Duration(ns)
	return nil
}

// Parse reads a spec from YAML or JSON, rejecting unknown fields, applies
// defaults and validates it in full.
func Parse(data []byte) (Spec, error) {
	var s Spec
	if err := yaml.UnmarshalStrict(yamlReadable(data), &s); err != nil {
		return Spec{}, &ValidationError{Problems: []FieldError{{Field: "spec", Message: err.Error()}}}
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// WithDefaults returns a copy with every unset field given its default.
func (s Spec) WithDefaults() Spec {
	switch s.Strategy.Type {
	case Canary:
		if len(s.Strategy.Steps) == 0 {
			s.Strategy.Steps = append([]int(nil), DefaultCanarySteps...)
		}
		if s.Strategy.Bake == 0 {
			s.Strategy.Bake = Duration(DefaultCanaryBake)
		}
	case BlueGreen:
		if s.Strategy.BakeBeforeSwitch == 0 {
			s.Strategy.BakeBeforeSwitch = Duration(DefaultBlueGreenBake)
		}
		if s.Strategy.BakeAfterSwitch == 0 {
			s.Strategy.BakeAfterSwitch = Duration(DefaultBlueGreenBake)
		}
	case Rolling:
		if s.Strategy.BatchSize == 0 {
			s.Strategy.BatchSize = DefaultRollingBatch
		}
		if s.Strategy.Bake == 0 {
			s.Strategy.Bake = Duration(DefaultRollingBake)
		}
	case Recreate:
		if s.Strategy.Bake == 0 {
			s.Strategy.Bake = Duration(DefaultRecreateBake)
		}
	}
	if s.Approval != nil {
		a := *s.Approval
		orDefault(&a.Timeout, Duration(DefaultApprovalTimeout))
		if a.OnTimeout == "" {
			a.OnTimeout = OnTimeoutAbort
		}
		s.Approval = &a
	}
	if d := s.Platform.Docker; d != nil {
		dc := *d
		if dc.Replicas == 0 {
			dc.Replicas = DefaultDockerReplicas
		}
		if dc.Network == "" {
			dc.Network = DefaultDockerNetwork
		}
		s.Platform.Docker = &dc
	}
	if k := s.Platform.Kubernetes; k != nil {
		kc := *k
		if kc.Namespace == "" {
			kc.Namespace = "default"
		}
		if kc.ProgressDeadline == 0 {
			kc.ProgressDeadline = Duration(DefaultProgressDeadline)
		}
		s.Platform.Kubernetes = &kc
	}
	s.Health = s.Health.withDefaults()
	if s.Timeout == 0 {
		s.Timeout = Duration(s.defaultTimeout())
	}
	return s
}

// defaultTimeout is the rollout timeout of a spec that gives none, the
// rest of its defaults applied: DefaultRolloutTimeout, or for a spec with
// approval gates what its gates' windows and its bakes need (ApprovalNeeds)
// plus DefaultRolloutTimeout, so every gate can wait its whole window and
// onTimeout applies. At most MaxTimeout.
func (s Spec) defaultTimeout() time.Duration {
	gates, need := s.ApprovalNeeds()
	if gates == 0 {
		return DefaultRolloutTimeout
	}
	return min(SatAdd(need, DefaultRolloutTimeout), MaxTimeout)
}

// ApprovalNeeds counts the stages an approval gate holds and adds up the
// time the rollout needs for them, one after another, at the least: every
// gate's whole window (approval.timeout, the time after which onTimeout
// applies), every stage's bake and, for blue-green, keepBlueFor. The
// rollout's timeout runs through all of it, so a timeout shorter than the
// need aborts a gate before its window ends. Where the stages depend on a
// count the spec leaves to the platform (a rolling Kubernetes Deployment
// keeping its replicas), it counts the one stage every rollout has, 100.
// s must have its strategy's defaults applied; the sum saturates.
func (s Spec) ApprovalNeeds() (gates int, need time.Duration) {
	type stage struct {
		percent int
		bake    Duration
	}
	var stages []stage
	st := s.Strategy
	switch st.Type {
	case Canary:
		for _, p := range st.Steps {
			stages = append(stages, stage{p, st.Bake})
		}
	case BlueGreen:
		stages = []stage{{0, st.BakeBeforeSwitch}, {100, st.BakeAfterSwitch}}
		need = SatAdd(need, max(st.KeepBlueFor.D(), 0))
	case Rolling:
		total := s.Replicas()
		if total < 1 || total > MaxReplicas || st.BatchSize < 1 {
			stages = []stage{{100, st.Bake}}
			break
		}
		// As plan.RollingBatches: n new instances after each batch.
		for n := st.BatchSize; ; n += st.BatchSize {
			if n >= total {
				stages = append(stages, stage{100, st.Bake})
				break
			}
			stages = append(stages, stage{n * 100 / total, st.Bake})
		}
	case Recreate:
		stages = []stage{{100, st.Bake}}
	}
	for _, g := range stages {
		need = SatAdd(need, max(g.bake.D(), 0))
		if s.Approval.Gates(g.percent) {
			gates++
			need = SatAdd(need, max(s.Approval.Timeout.D(), 0))
		}
	}
	return gates, need
}

// Platform names.
const (
	PlatformDocker     = "docker"
	PlatformKubernetes = "kubernetes"
)

// PlatformName is "docker" or "kubernetes" (or "" when none is set).
func (s Spec) PlatformName() string {
	switch {
	case s.Platform.Docker != nil:
		return PlatformDocker
	case s.Platform.Kubernetes != nil:
		return PlatformKubernetes
	}
	return ""
}

// Replicas is the instance count the spec asks for at the end, or 0 when
// it keeps what runs (a Kubernetes Deployment's current replicas).
func (s Spec) Replicas() int {
	switch {
	case s.Platform.Docker != nil:
		return s.Platform.Docker.Replicas
	case s.Platform.Kubernetes != nil:
		return s.Platform.Kubernetes.Replicas
	}
	return 0
}

// TargetKey names the target one rollout at a time may change, e.g.
// "docker:hello" or "k8s:prod/payment". Workflow IDs are derived from it.
func (s Spec) TargetKey() string {
	if k := s.Platform.Kubernetes; k != nil {
		ns := k.Namespace
		if ns == "" {
			ns = "default"
		}
		if k.Cluster != "" {
			return "k8s:" + k.Cluster + "/" + ns + "/" + k.Deployment
		}
		return "k8s:" + ns + "/" + k.Deployment
	}
	return s.PlatformName() + ":" + s.Service
}

// WorkflowID is the ID of the one open rollout a target may have.
func (s Spec) WorkflowID() string { return "deploy:" + s.TargetKey() }

// RequestID identifies the request: the caller's execution ID if given, else
// a hash of the normalized spec. A repeated start with the same request ID
// joins the running rollout.
func (s Spec) RequestID() string {
	if s.ExecutionID != "" {
		return s.ExecutionID
	}
	b, _ := json.Marshal(s.WithDefaults())
	sum := sha256.Sum256(b)
	return "spec-" + hex.EncodeToString(sum[:8])
}

// Approval outcomes when nobody approves in time.
const (
	OnTimeoutAbort   = "abort"
	OnTimeoutProceed = "proceed"
)

// DefaultApprovalTimeout is how long a stage waits for approval.
const DefaultApprovalTimeout = 24 * time.Hour

// Approval gates stages behind an operator's approve: a stage whose
// percentage (the share of the new version it brings: a canary step,
// blue-green's switch is 100, green up 0, a rolling batch its share, recreate
// 100) is listed waits, on a durable timer, for approve before it starts.
type Approval struct {
	// Before lists the percentages whose stages need approval, e.g. [100].
	Before []int `json:"before"`
	// Timeout bounds the wait (default 24h). Every gate's whole window
	// and the bakes must fit in the rollout's timeout, or onTimeout could
	// never apply.
	Timeout Duration `json:"timeout,omitempty"`
	// OnTimeout is what happens when it passes: abort (roll back, the
	// default) or proceed.
	OnTimeout string `json:"onTimeout,omitempty"`
}

// Gates reports whether a stage bringing the new version to percent needs
// approval.
func (a *Approval) Gates(percent int) bool {
	return a != nil && slices.Contains(a.Before, percent)
}
