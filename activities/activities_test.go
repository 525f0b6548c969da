package activities

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/internal/platform"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name         string
		err          error
		nonRetryable bool
		errType      string
	}{
		{"image", fmt.Errorf("check: %w", &platform.ImageNotFoundError{Image: "x:1"}), true, platform.ErrTypeImageNotFound},
		{"target", fmt.Errorf("snapshot: %w", &platform.TargetNotFoundError{What: `deployment "prod/x"`}), true, platform.ErrTypeTargetNotFound},
		{"stuck", fmt.Errorf("converge: %w", platform.ErrProgressDeadline), true, platform.ErrTypeProgressStuck},
		{"forbidden", fmt.Errorf("update deployment: %w", platform.ErrForbidden), true, platform.ErrTypeForbidden},
		{"transient", errors.New("connection refused"), false, ""},
		{"registry down", fmt.Errorf("check: %w", &platform.RegistryUnavailableError{Image: "x:1", Err: errors.New("503")}), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := classify(c.err)
			var app *temporal.ApplicationError
			if errors.As(err, &app) != c.nonRetryable {
				t.Fatalf("classify(%v) = %v", c.err, err)
			}
			if c.nonRetryable && (!app.NonRetryable() || app.Type() != c.errType) {
				t.Fatalf("type %q nonRetryable %v", app.Type(), app.NonRetryable())
			}
		})
	}
}
