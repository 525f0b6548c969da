//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
)

// TestDeployRecordsWhoStartedIt: `starter deploy --by` names who started
// the rollout in its memo (what history and the audit trail show); without
// it, the caller's user@host.
func TestDeployRecordsWhoStartedIt(t *testing.T) {
	e := newUndoEnv(t)
	startedBy := func(args ...string) string {
		t.Helper()
		raw, err := json.Marshal(e.spec("stagecraft-demo:v1", "by"))
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "spec.json")
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		out, errOut, code := e.starter(t, append([]string{"deploy", "-f", path, "--wait"}, args...)...)
		require.Equal(t, 0, code, "%s\n%s", out, errOut)
		d, err := e.tc.DescribeWorkflowExecution(context.Background(), e.target(), "")
		require.NoError(t, err)
		var by string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(d.GetWorkflowExecutionInfo().GetMemo().GetFields()[api.MemoStartedBy], &by))
		return by
	}
	require.Equal(t, "ci@pipeline-42", startedBy("--by", "ci@pipeline-42"))
	require.Equal(t, control.Identity(), startedBy(), "without --by: the caller's user@host, not the earlier run's --by")
}
