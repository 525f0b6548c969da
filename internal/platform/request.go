package platform

import "fmt"

// Validate refuses a request no platform can converge to, before the
// platform reads or changes anything: negative desired counts, or new
// instances without the rollout token they are to carry. A desired state
// with no new instances (a rollback, a hold of the old version) needs no
// token. Whether the spec names the platform's own section is for each
// platform to check, first, since only it knows which section it reads.
func (r ConvergeRequest) Validate() error {
	d := r.Desired
	if d.New < 0 || d.Old < 0 {
		return fmt.Errorf("converge %q: negative desired counts new=%d old=%d", r.Spec.Service, d.New, d.Old)
	}
	if d.New > 0 && r.Rollout == "" {
		return fmt.Errorf("converge %q: new instances need a rollout token", r.Spec.Service)
	}
	return nil
}
