package main

import (
	"strings"
	"testing"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/audit"
)

func TestDescribeEvent(t *testing.T) {
	stage := 0
	for _, tt := range []struct {
		e    audit.Event
		want string
	}{
		{audit.Event{Kind: audit.KindPhase, From: "pending", To: "deploying"}, "phase pending → deploying"},
		{audit.Event{Kind: audit.KindStage, Stage: &stage, Action: "canary 5%", To: "IN_PROGRESS"}, "stage 1 canary 5%: (nothing) → IN_PROGRESS"},
		{audit.Event{Kind: audit.KindOutcome, To: "succeeded"}, "outcome succeeded"},
		{audit.Event{Kind: api.KindHandoff, To: "trail:deploy:docker:web:r1", Reason: "the audit store did not take this trail within 10s"},
			"the rest of the trail handed to workflow trail:deploy:docker:web:r1: the audit store did not take this trail within 10s"},
	} {
		if got := describeEvent(tt.e); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.e.Kind, got, tt.want)
		}
	}
}
