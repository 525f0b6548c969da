package spec

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Requirement is a version constraint on a service the release depends on.
type Requirement struct {
	// Service names a service of the same release or, with Platform, one
	// running outside it.
	Service string `json:"service"`
	// Platform locates a service outside the release (same shape as
	// Spec.Platform); nil means a release service.
	Platform *Platform `json:"platform,omitempty"`
	// Version is a semver constraint, e.g. ">= 1.4, < 2".
	Version string `json:"version"`
}

// ErrVersionUnknown is wrapped by the error Check returns for an image
// whose tag is not a version (none, "latest", a digest, "stable").
var ErrVersionUnknown = errors.New("version unknown")

// UnsatisfiedError says a service runs a version outside a requirement.
type UnsatisfiedError struct {
	Service string
	// Running is the image's tag, as written ("v1.2", "1.2.0").
	Running string
	// Constraint is the requirement's version constraint, as written.
	Constraint string
	// Reason is the constraint library's explanation, e.g. "1.2.0 is less than 1.4".
	Reason string
}

func (e *UnsatisfiedError) Error() string {
	msg := fmt.Sprintf("%s runs %s, which does not satisfy %q", e.Service, e.Running, e.Constraint)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

// Check returns nil when image's tag is a version that satisfies r.Version,
// an *UnsatisfiedError when it is a version that does not, and an error
// wrapping ErrVersionUnknown when the tag is not a version. r must be valid.
func (r Requirement) Check(image string) error {
	c, err := semver.NewConstraint(r.Version)
	if err != nil {
		return fmt.Errorf("requirement on %s: version %q: %w", r.Service, r.Version, err)
	}
	tag, ok := ImageVersion(image)
	if !ok {
		return fmt.Errorf("%s runs %s: %w (the tag must be a version to check %q)", r.Service, image, ErrVersionUnknown, r.Version)
	}
	v, err := semver.NewVersion(tag)
	if err != nil { // ImageVersion parsed it already
		return fmt.Errorf("%s runs %s: %w", r.Service, image, ErrVersionUnknown)
	}
	if ok, reasons := c.Validate(v); !ok {
		msgs := make([]string, len(reasons))
		for i, e := range reasons {
			msgs[i] = e.Error()
		}
		return &UnsatisfiedError{Service: r.Service, Running: tag, Constraint: r.Version, Reason: strings.Join(msgs, "; ")}
	}
	return nil
}

// ImageVersion returns the version in an image reference's tag
// ("repo/x:1.4.2" → "1.4.2"; "v1.4" and "1.4" count); ok is false when the
// reference has no tag, is tagged "latest", has only a digest, or its tag
// is not a version ("stable", "main-3f2a").
func ImageVersion(image string) (string, bool) {
	ref, _, _ := strings.Cut(image, "@") // a digest is no version
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "" || tag == "latest" {
		return "", false
	}
	if _, err := semver.NewVersion(tag); err != nil {
		return "", false
	}
	return tag, true
}

// ValidateRequirements checks a service's requirements; field names the
// list ("services[1].requires"). inRelease reports whether a name is a
// service of the same release. The version check of a release service
// (Check against the image it rolls out) is the caller's: it knows the images.
func ValidateRequirements(add func(field, format string, args ...any), field string, rs []Requirement, inRelease func(name string) bool) {
	for i, r := range rs {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case strings.TrimSpace(r.Version) == "":
			add(f+".version", "is required (a constraint such as \">= 1.4, < 2\")")
		default:
			if _, err := semver.NewConstraint(r.Version); err != nil {
				add(f+".version", "%q is not a version constraint: %v", r.Version, err)
			}
		}
		if r.Service == "" {
			add(f+".service", "is required")
			continue
		}
		p := r.Platform
		if p == nil {
			if !inRelease(r.Service) {
				add(f+".service", "%q is not a service of this release; set platform to require a service running outside it", r.Service)
			}
			continue
		}
		switch {
		case p.Docker != nil && p.Kubernetes != nil:
			add(f+".platform", "only one of platform.docker and platform.kubernetes may be set")
		case p.Docker != nil:
			if !serviceRE.MatchString(r.Service) {
				add(f+".service", "%q must be lowercase letters, digits and '-', at most 63 characters", r.Service)
			}
		case p.Kubernetes != nil:
			k := p.Kubernetes
			switch {
			case k.Deployment == "":
				add(f+".platform.kubernetes.deployment", "is required")
			case !dnsLabelRE.MatchString(k.Deployment):
				add(f+".platform.kubernetes.deployment", "%q is not a valid Kubernetes name", k.Deployment)
			}
			if k.Namespace != "" && !dnsLabelRE.MatchString(k.Namespace) {
				add(f+".platform.kubernetes.namespace", "%q is not a valid Kubernetes name", k.Namespace)
			}
		default:
			add(f+".platform", "exactly one platform is required (platform.docker or platform.kubernetes)")
		}
	}
}

// validateRequires checks the requirements rs of one of r's services, field
// naming them ("services[1].requires"): ValidateRequirements, then Check of
// each valid requirement on a release service against the image the
// release rolls out for it.
func (r Release) validateRequires(add func(field, format string, args ...any), field string, rs []Requirement) {
	images := map[string]string{}
	for _, s := range r.Services {
		images[s.Name] = s.Deploy.Image
	}
	ValidateRequirements(add, field, rs, func(name string) bool { _, ok := images[name]; return ok })
	for i, q := range rs {
		image, ok := images[q.Service]
		if q.Platform != nil || !ok || image == "" {
			continue
		}
		if _, err := semver.NewConstraint(q.Version); err != nil {
			continue // reported above
		}
		if err := q.Check(image); err != nil {
			add(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
	}
}

// Resources declares what one container may use. On Docker they are the
// container's limits, and what the capacity check counts.
type Resources struct {
	// CPU is a quantity of CPUs, as Kubernetes writes it: "500m", "1.5".
	CPU string `json:"cpu,omitempty"`
	// Memory is a quantity of bytes, as Kubernetes writes it: "256Mi", "1G".
	Memory string `json:"memory,omitempty"`
}

// MinMemory is the smallest memory limit the Docker engine accepts (6 MiB).
const MinMemory = 6 << 20

// Limits returns the CPU limit in billionths of a CPU (Docker's NanoCPUs)
// and the memory limit in bytes, 0 for what is unset or a nil r.
func (r *Resources) Limits() (nanoCPUs, memory int64, err error) {
	if r == nil {
		return 0, 0, nil
	}
	if r.CPU != "" {
		q, err := resource.ParseQuantity(r.CPU)
		if err != nil {
			return 0, 0, fmt.Errorf("cpu %q: %w", r.CPU, err)
		}
		nanoCPUs = q.ScaledValue(resource.Nano)
	}
	if r.Memory != "" {
		q, err := resource.ParseQuantity(r.Memory)
		if err != nil {
			return 0, 0, fmt.Errorf("memory %q: %w", r.Memory, err)
		}
		memory = q.Value()
	}
	return nanoCPUs, memory, nil
}

// ValidateResources checks declared resources (nil is none); field names
// them ("platform.docker.resources").
func ValidateResources(add func(field, format string, args ...any), field string, r *Resources) {
	if r == nil {
		return
	}
	if r.CPU != "" {
		q, err := resource.ParseQuantity(r.CPU)
		switch {
		case err != nil:
			add(field+".cpu", "%q is not a quantity (e.g. 500m, 1.5)", r.CPU)
		case q.Sign() <= 0:
			add(field+".cpu", "must be positive, got %q", r.CPU)
		}
	}
	if r.Memory != "" {
		q, err := resource.ParseQuantity(r.Memory)
		switch {
		case err != nil:
			add(field+".memory", "%q is not a quantity (e.g. 256Mi, 1Gi)", r.Memory)
		case q.Sign() <= 0:
			add(field+".memory", "must be positive, got %q", r.Memory)
		case q.Value() < MinMemory:
			add(field+".memory", "%q is below 6Mi, the smallest limit the Docker engine accepts", r.Memory)
		}
	}
}
