//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestTwoWorkersShareRollouts: two worker processes poll the one task
// queue; six rollouts started at once all succeed, and the work (workflow
// tasks and activities, by the identity Temporal records) is spread over
// both.
func TestTwoWorkersShareRollouts(t *testing.T) {
	var pids []int
	for range 2 {
		cmd := exec.Command(workerB, "--address", server.FrontendHostPort(), "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		pids = append(pids, cmd.Process.Pid)
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var started []control.Started
	for i := range 6 {
		service := itest.Name(fmt.Sprintf("e2e-scale%d", i))
		cleanup(t, service)
		s := demoSpec(service, "stagecraft-demo:v1", spec.Recreate, 1)
		s.Strategy.Bake = spec.Duration(time.Second)
		st, err := control.Start(ctx, tc, s)
		require.NoError(t, err)
		started = append(started, st)
	}
	byWorker := map[string]int{}
	for _, st := range started {
		res, err := control.Wait(ctx, tc, st.WorkflowID, st.RunID, time.Second, nil)
		require.NoError(t, err)
		require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)
		for _, ev := range fetchHistory(t, st.WorkflowID, st.RunID).GetEvents() {
			if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
				byWorker[a.GetIdentity()]++
			}
			if a := ev.GetWorkflowTaskStartedEventAttributes(); a != nil {
				byWorker[a.GetIdentity()]++
			}
		}
	}
	var who []string
	for id, n := range byWorker {
		who = append(who, id+"="+strconv.Itoa(n))
	}
	sort.Strings(who)
	t.Logf("tasks by worker identity (pids %v): %v", pids, who)
	for _, pid := range pids {
		n := 0
		for id, c := range byWorker {
			if len(id) > len(strconv.Itoa(pid)) && id[:len(strconv.Itoa(pid))+1] == strconv.Itoa(pid)+"@" {
				n += c
			}
		}
		require.Positive(t, n, "worker pid %d did no task of the six rollouts", pid)
	}
}
