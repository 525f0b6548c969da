package main

import (
	"testing"

	"github.com/stagecraft/stagecraft/internal/api"
)

// The starter's verdict on the target replaces the worker's warning; a
// failed one makes the plan not ready, others leave readiness alone.
func TestWithTargetCheck(t *testing.T) {
	pv := api.Preview{Ready: true, Checks: []api.PreviewCheck{
		{Name: "spec", Verdict: api.CheckOK},
		{Name: "target", Verdict: api.CheckWarning, Message: "a rollout is running"},
	}}
	busy := api.PreviewCheck{Name: "target", Verdict: api.CheckFailed, Message: "a start now would be refused"}
	got := withTargetCheck(pv, busy)
	if got.Ready || len(got.Checks) != 2 || got.Checks[1] != busy {
		t.Errorf("busy: ready %v, checks %+v", got.Ready, got.Checks)
	}
	if pv.Checks[1].Verdict != api.CheckWarning {
		t.Error("withTargetCheck changed its input's checks")
	}
	join := api.PreviewCheck{Name: "target", Verdict: api.CheckWarning, Message: "would join"}
	if got := withTargetCheck(pv, join); !got.Ready || got.Checks[1] != join {
		t.Errorf("join: ready %v, checks %+v", got.Ready, got.Checks)
	}
	pv.Checks = pv.Checks[:1]
	if got := withTargetCheck(pv, join); len(got.Checks) != 2 || got.Checks[1] != join {
		t.Errorf("no target check before: %+v", got.Checks)
	}
}
