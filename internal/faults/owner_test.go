//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tclient "go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestSecondOwnerRejected: while a canary of the demo app, started by the
// starter's code path (control.Start, the target's own workflow ID), bakes
// its first stage on the Docker engine, a second rollout of the same target
// is started with a raw Temporal client under another workflow ID, with
// the spec as plain JSON input, as the stock CLI or another SDK would. The
// workflow itself refuses it: it ends rejected, naming both IDs, having
// run no activity on the target (only its audit record); the first
// rollout's containers are the very same (same container IDs), and the
// first then succeeds. Before, the second ran beside the first and each
// converge removed the other's containers (review finding 4).
func TestSecondOwnerRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newPlatRig(t)
	r.worker(t)
	service := itest.Name("pf-owner")
	platRemoveService(t, service)
	r.installV1(t, service, platV1)

	s := itest.DemoSpec(service, platV2, spec.Canary, 3)
	s.Strategy.Bake = spec.Duration(15 * time.Second)
	started := r.start(t, s)
	require.Equal(t, s.WorkflowID(), started.WorkflowID)
	r.waitStage(t, started.WorkflowID, 0, api.StageValidating)
	before := platBoxes(t, service)
	v2 := 0
	for _, b := range before {
		if b.Image == platV2 {
			v2++
		}
	}
	require.Positive(t, v2, "the canary's first stage runs v2: %+v", before)

	raw, err := json.Marshal(s)
	require.NoError(t, err)
	rogue := "deploy-" + service
	run, err := r.c.ExecuteWorkflow(ctx, tclient.StartWorkflowOptions{ID: rogue, TaskQueue: api.TaskQueue},
		api.CanaryWorkflow, json.RawMessage(raw))
	require.NoError(t, err, "the server cannot know the ID is wrong: the workflow must refuse")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var res api.Result
	require.NoError(t, control.Result(wctx, run, &res))
	require.Equal(t, api.OutcomeRejected, res.Outcome, res.Error)
	require.Contains(t, res.Error, `"`+rogue+`"`)
	require.Contains(t, res.Error, `"`+started.WorkflowID+`"`)
	// Only its own record (the audit trail of the refusal): no snapshot,
	// converge or watch.
	counts := activityCounts(history(t, r.c, rogue, run.GetRunID()))
	delete(counts, "Audit")
	require.Empty(t, counts, "rejected before any activity on the target")

	// The first rollout was still in its first stage: nothing moved.
	st := r.waitStage(t, started.WorkflowID, 0, api.StageValidating)
	require.Equal(t, 0, st.CurrentStage)
	after := platBoxes(t, service)
	require.Equal(t, ids(before), ids(after), "the first rollout's containers untouched")

	first := r.wait(t, started, 3*time.Minute)
	require.Equal(t, api.OutcomeSucceeded, first.Outcome, first.Error)
	platRequireServing(t, service, platV2, "v2", 3)
}

// ids names the containers of boxes that are part of the target: not the
// ones a shared stage retired (renamed "-retired-", stopped, removed beside
// the bake: docs/DOCKER.md), which may still be going.
func ids(boxes []platBox) []string {
	var out []string
	for _, b := range boxes {
		if strings.Contains(b.Name, docker.RetiredMark) {
			continue
		}
		out = append(out, b.Name+"="+b.ID)
	}
	return out
}
