//go:build integration

package docker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/temporal"

	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

type noChecks struct{}

func (noChecks) Round(context.Context, []spec.Check, []spec.Check, []string) health.Round {
	return health.Round{}
}
func (noChecks) Allowlist() []string { return nil }

// TestHoldMarker: on a real engine, a hold written after a failed rollback
// is a labelled volume that outlives every container of the service and
// the Platform that wrote it; Prepare refuses the held service, naming the
// failed rollout and how to clear it, before it snapshots anything; once
// cleared, Prepare accepts it again.
func TestHoldMarker(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() {
		_, _ = e.cli.VolumeRemove(context.Background(), holdVolume(e.svc), client.VolumeRemoveOptions{Force: true})
	})
	s := e.spec(imageV1)
	s.Strategy.Type = spec.Recreate
	s.Health.Checks = []spec.Check{{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}}}
	s = s.WithDefaults()
	e.converge(s, "r1", platform.Snapshot{}, plan.Desired{New: 2, Traffic: plan.TrafficNew})

	a := &activities.Activities{Platforms: map[string]activities.Platform{spec.PlatformDocker: e.p}, Checker: noChecks{}}
	if _, err := a.Prepare(e.ctx, activities.PrepareInput{Spec: s}); err != nil {
		t.Fatalf("prepare before any hold: %v", err)
	}
	h := platform.Hold{WorkflowID: s.WorkflowID(), RunID: "run-1", At: time.Now().UTC().Truncate(time.Second),
		Reason: "stage 1 failed; rollback failed: restore snapshot: image \"gone:v1\" not found"}
	if err := a.Hold(e.ctx, activities.HoldInput{Spec: s, Hold: h}); err != nil {
		t.Fatalf("hold: %v", err)
	}
	// A retried Hold keeps the first hold.
	if err := a.Hold(e.ctx, activities.HoldInput{Spec: s, Hold: platform.Hold{WorkflowID: "other", RunID: "run-2"}}); err != nil {
		t.Fatalf("hold again: %v", err)
	}

	// Container churn: every container of the service goes.
	res, err := e.cli.ContainerList(e.ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", platform.LabelService+"="+e.svc)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Items {
		if _, err := e.cli.ContainerRemove(e.ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}

	// A new worker (a new Platform) finds it.
	fresh := New(e.cli, nil)
	got, err := fresh.HeldBy(e.ctx, s)
	if err != nil || got == nil {
		t.Fatalf("held by = %v, %v; want the hold", got, err)
	}
	if got.WorkflowID != h.WorkflowID || got.RunID != h.RunID || !got.At.Equal(h.At) || got.Reason != h.Reason || got.Target != s.TargetKey() {
		t.Fatalf("hold read back = %+v; want %+v", *got, h)
	}
	a = &activities.Activities{Platforms: map[string]activities.Platform{spec.PlatformDocker: fresh}, Checker: noChecks{}}
	_, err = a.Prepare(e.ctx, activities.PrepareInput{Spec: s})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != platform.ErrTypeHeld || !app.NonRetryable() {
		t.Fatalf("prepare of a held service = %v; want a non-retryable %s error", err, platform.ErrTypeHeld)
	}
	for _, want := range []string{"docker:" + e.svc + " is held", "rollout " + s.WorkflowID() + " (run run-1) ended rollback_failed",
		`image "gone:v1" not found`, "starter clear docker:" + e.svc} {
		if !contains(err.Error(), want) {
			t.Errorf("prepare error %q does not say %q", err, want)
		}
	}
	t.Logf("refused: %v", err)

	cleared, err := a.ClearHold(e.ctx, activities.ClearInput{Spec: s, Reason: "restored v1 by hand", By: "alice"})
	if err != nil || cleared.Cleared == nil || cleared.Cleared.RunID != "run-1" {
		t.Fatalf("clear = %+v, %v; want the hold of run-1", cleared, err)
	}
	if _, err := e.cli.VolumeInspect(e.ctx, holdVolume(e.svc), client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Fatalf("hold volume after clear: %v; want not found", err)
	}
	if _, err := a.Prepare(e.ctx, activities.PrepareInput{Spec: s}); err != nil {
		t.Fatalf("prepare after clear: %v", err)
	}
	// Clearing again finds nothing and changes nothing.
	if again, err := a.ClearHold(e.ctx, activities.ClearInput{Spec: s, Reason: "again", By: "alice"}); err != nil || again.Cleared != nil {
		t.Fatalf("second clear = %+v, %v; want nothing cleared", again, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestHoldRefusesAVolumeThatIsNotAHold: a volume already named like the
// service's hold but made by something else (no hold labels) is not taken
// for a hold: Hold fails, non-retryably, rather than report the target held
// while nothing would refuse its next rollout.
func TestHoldRefusesAVolumeThatIsNotAHold(t *testing.T) {
	e := newEnv(t)
	name := holdVolume(e.svc)
	t.Cleanup(func() {
		_, _ = e.cli.VolumeRemove(context.Background(), name, client.VolumeRemoveOptions{Force: true})
	})
	if _, err := e.cli.VolumeCreate(e.ctx, client.VolumeCreateOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	s := e.spec(imageV1).WithDefaults()
	a := &activities.Activities{Platforms: map[string]activities.Platform{spec.PlatformDocker: e.p}, Checker: noChecks{}}
	err := a.Hold(e.ctx, activities.HoldInput{Spec: s, Hold: platform.Hold{WorkflowID: s.WorkflowID(), RunID: "run-1", Reason: "rollback failed"}})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || !strings.Contains(err.Error(), "is not a Stagecraft hold") {
		t.Fatalf("hold over a volume that is not a hold = %v; want a non-retryable error saying so", err)
	}
}
