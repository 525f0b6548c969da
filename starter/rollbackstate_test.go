package main

import (
	"testing"
	"time"

	"github.com/stagecraft/stagecraft/internal/api"
)

// TestRollbackStateSaysTerminatingApart: pods of the new version still
// terminating when the target was restored are said beside "restored",
// not folded into it or hidden.
func TestRollbackStateSaysTerminatingApart(t *testing.T) {
	done := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		rb   api.RollbackRecord
		want string
	}{
		{api.RollbackRecord{CompletedAt: &done, Verified: true}, "restored and verified"},
		{api.RollbackRecord{CompletedAt: &done, Verified: true, Terminating: []string{"pod/web-canary-abc-1", "pod/web-canary-abc-2"}},
			"restored and verified; 2 pod(s) of the new version still terminating, no longer ready (pod/web-canary-abc-1, pod/web-canary-abc-2)"},
		{api.RollbackRecord{CompletedAt: &done, Terminating: []string{"pod/p"}}, "restored; 1 pod(s) of the new version still terminating, no longer ready (pod/p)"},
		{api.RollbackRecord{Error: "boom", Terminating: []string{"pod/p"}}, "failed: boom"},
		{api.RollbackRecord{}, "in progress"},
	} {
		if got := rollbackState(&tc.rb); got != tc.want {
			t.Errorf("rollbackState(%+v) = %q, want %q", tc.rb, got, tc.want)
		}
	}
}
