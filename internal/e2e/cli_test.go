//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// cliTimeout bounds every starter run in these tests.
const cliTimeout = 2 * time.Minute

// bgCLI is a starter run in the background (a watch, while the test steers).
type bgCLI struct {
	cmd       *exec.Cmd
	out, errb syncBuffer
	done      chan error
	cancel    context.CancelFunc
}

// syncBuffer is a buffer the test may read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCLI starts the starter binary against the test dev server; it is
// killed after cliTimeout or at the end of the test.
func startCLI(t *testing.T, args ...string) *bgCLI {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	b := &bgCLI{cancel: cancel, done: make(chan error, 1)}
	b.cmd = exec.CommandContext(ctx, starter, append([]string{"--address", server.FrontendHostPort()}, args...)...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errb
	require.NoError(t, b.cmd.Start())
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(cancel)
	return b
}

// wait waits for the run to end and returns its stdout, stderr and exit code.
func (b *bgCLI) wait(t *testing.T) (string, string, int) {
	t.Helper()
	err := <-b.done
	b.cancel()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return b.out.String(), b.errb.String(), 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return b.out.String(), b.errb.String(), ee.ExitCode()
	}
	t.Fatalf("starter %v: %v (not done within %s?)\nstdout:\n%s\nstderr:\n%s", b.cmd.Args[1:], err, cliTimeout, b.out.String(), b.errb.String())
	return "", "", -1
}

// cli runs the starter binary to its end, within cliTimeout.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return startCLI(t, args...).wait(t)
}

func waitForPhase(t *testing.T, workflowID string, phase api.Phase) api.Status {
	t.Helper()
	var st api.Status
	itest.Eventually(t, 90*time.Second, "phase "+string(phase), func() bool {
		var err error
		st, err = statusOf(workflowID)
		return err == nil && st.Phase == phase
	})
	return st
}

// plainLines checks that output has no escape codes and no line repeated
// back to back (a line is printed only when something changed), and
// returns its lines without their timestamps.
func plainLines(t *testing.T, out string) []string {
	t.Helper()
	require.NotContains(t, out, "\x1b", "piped output has no escape codes")
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if len(l) > 9 && l[2] == ':' && l[5] == ':' && l[8] == ' ' {
			l = l[9:]
		}
		if n := len(lines); n > 0 && strings.HasPrefix(l, "stage ") {
			require.NotEqual(t, lines[n-1], l, "printed twice in a row")
		}
		lines = append(lines, l)
	}
	return lines
}

func lastLine(lines []string, prefix string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), prefix) {
			return lines[i]
		}
	}
	return ""
}

// TestCLIWatchFollowsARolloutToSuccess deploys with the CLI and watches it
// piped: a line per change (stages, bakes, rounds) and the outcome, exit 0.
// Watching the finished rollout shows it once, as JSON too.
func TestCLIWatchFollowsARolloutToSuccess(t *testing.T) {
	startWorkerProcess(t)
	service := itest.Name("e2e-watch")
	cleanup(t, service)
	installV1(t, service)

	s := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 4)
	id := s.WorkflowID()
	out, errOut, code := cli(t, "deploy", "-f", writeSpec(t, s))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "follow:     starter watch "+id)

	out, errOut, code = cli(t, "watch", id, "--poll", "500ms")
	t.Logf("starter watch %s:\n%s", id, out)
	require.Equal(t, 0, code, errOut)
	require.Empty(t, errOut)
	lines := plainLines(t, out)
	require.Equal(t, "rollout "+id+": canary of "+service+" to stagecraft-demo:v2", lines[0])
	st, err := statusOf(id)
	require.NoError(t, err)
	require.Equal(t, api.OutcomeSucceeded, st.Outcome, st.Error)
	for i, name := range []string{"canary 34%", "canary 67%", "canary 100%"} {
		stage := st.Stages[i]
		require.Contains(t, out, fmt.Sprintf("stage %d/3 %s: VALIDATING, new %d/4, bake 2s, rounds ", i+1, name, stage.InstancesUpdated))
		require.Contains(t, out, fmt.Sprintf("stage %d/3 %s: COMPLETED, new %d/4, rounds %d passed 0 failed", i+1, name,
			stage.InstancesUpdated, stage.ChecksPassed), "the rounds the workflow counted")
	}
	require.True(t, strings.HasPrefix(lastLine(lines, "outcome:"), "outcome: succeeded after "), out)

	// Finished: shown once, with the outcome's exit code.
	out, errOut, code = cli(t, "watch", id, "--json")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, 1, strings.Count(out, "\n"), "one JSON object: "+out)
	var got api.Status
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, st.RunID, got.RunID)
	require.Equal(t, api.OutcomeSucceeded, got.Outcome)
}

// TestCLIWatchExitsWithTheOutcome: a rollout that rolls back exits 3 and
// shows the failing evidence; a rejected one exits 5, with deploy --wait
// and watch alike.
func TestCLIWatchExitsWithTheOutcome(t *testing.T) {
	startWorkerProcess(t)
	service := itest.Name("e2e-watchbad")
	cleanup(t, service)
	installV1(t, service)

	// v2-bad starts failing /healthz 3 s after it starts: the first stage's
	// 6 s bake sees it.
	s := demoSpec(service, "stagecraft-demo:v2-bad", spec.Canary, 4)
	s.Strategy.Bake = spec.Duration(6 * time.Second)
	id := s.WorkflowID()
	out, errOut, code := cli(t, "deploy", "-f", writeSpec(t, s), "--json")
	require.Equal(t, 0, code, errOut)
	var started control.Started
	require.NoError(t, json.Unmarshal([]byte(out), &started))

	out, errOut, code = cli(t, "watch", id, "--poll", "250ms")
	t.Logf("starter watch %s:\n%s", id, out)
	require.Equal(t, 3, code, "rolled_back: "+errOut)
	require.Contains(t, errOut, "error: rollout "+id+" ended rolled_back: health check failed")
	lines := plainLines(t, out)
	require.Contains(t, out, "failing round at ")
	require.Contains(t, out, "healthz http://127.0.0.1:")
	require.Contains(t, out, "failed: status 500, want 200")
	require.Regexp(t, `phase (rolling_back: health check failed|verifying_rollback)`, out)
	require.Contains(t, out, "stage 1/3 canary 34%: ROLLED_BACK")
	require.Contains(t, out, "rollback: restored and verified")
	require.True(t, strings.HasPrefix(lastLine(lines, "outcome:"), "outcome: rolled_back after "), out)
	require.Contains(t, lastLine(lines, "reason:"), "health check failed")

	// A missing image is rejected before any change: 5.
	missing := demoSpec(service, "stagecraft-demo:does-not-exist", spec.Canary, 4)
	out, errOut, code = cli(t, "deploy", "-f", writeSpec(t, missing), "--wait")
	require.Equal(t, 5, code, errOut)
	require.Contains(t, out, "outcome: rejected")
	require.Contains(t, errOut, "does-not-exist")
	out, errOut, code = cli(t, "watch", id)
	require.Equal(t, 5, code, errOut)
	require.Contains(t, out, "outcome: rejected")
	require.Len(t, instances(t, service), 3, "v1 untouched")
}

// TestCLIControlsWithReasons steers rollouts through the CLI only: every
// action's reason and author land in the control log; --json output parses
// into the Go types; an illegal transition, a finished rollout and an
// unknown ID each get a plain message and exit 1.
func TestCLIControlsWithReasons(t *testing.T) {
	startWorkerProcess(t)
	service := itest.Name("e2e-clictl")
	cleanup(t, service)
	s := demoSpec(service, "stagecraft-demo:v1", spec.Canary, 2)
	s.Strategy.Bake = spec.Duration(time.Minute)
	id := s.WorkflowID()
	out, errOut, code := cli(t, "deploy", "-f", writeSpec(t, s), "--json")
	require.Equal(t, 0, code, errOut)
	var started control.Started
	require.NoError(t, json.Unmarshal([]byte(out), &started))
	require.Equal(t, id, started.WorkflowID)
	waitForStage(t, id, 0, api.StageValidating)

	var st api.Status
	out, errOut, code = cli(t, "pause", id, "--reason", "checking dashboards", "--by", "alice", "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.True(t, st.Paused)
	require.Equal(t, api.PhasePaused, st.Phase)

	// An illegal transition: the workflow's reason, no gRPC noise.
	_, errOut, code = cli(t, "pause", id, "--reason", "again")
	require.Equal(t, 1, code)
	require.Equal(t, "error: cannot pause: rollout is already paused ("+id+")\n", errOut)

	out, errOut, code = cli(t, "status", id)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "phase     paused (paused, ")
	require.Contains(t, out, `pause    via update by alice "checking dashboards" accepted`)

	out, errOut, code = cli(t, "resume", id, "--reason", "dashboards fine", "--by", "alice")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "resume accepted: "+id+" is validating")
	out, errOut, code = cli(t, "promote", id, "--reason", "ship it", "--by", "bob", "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.True(t, st.Promoted)

	// watch --json: one status per line, each a api.Status.
	out, errOut, code = cli(t, "watch", id, "--json")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		require.NoError(t, json.Unmarshal([]byte(l), &st), l)
	}
	require.Equal(t, api.OutcomeSucceeded, st.Outcome, st.Error)
	require.Equal(t, []api.ControlRecord{
		{Action: "pause", Via: "update", By: "alice", Reason: "checking dashboards", Accepted: true},
		{Action: "resume", Via: "update", By: "alice", Reason: "dashboards fine", Accepted: true},
		{Action: "promote", Via: "update", By: "bob", Reason: "ship it", Accepted: true},
	}, withoutTimes(st.Controls))

	// A finished rollout: how it ended.
	_, errOut, code = cli(t, "abort", id, "--reason", "too late")
	require.Equal(t, 1, code)
	require.Equal(t, "error: cannot abort: rollout "+id+" is finished (outcome succeeded); no open rollout to abort\n", errOut)

	// Unknown IDs say what IDs look like.
	for _, args := range [][]string{{"status", "deploy:docker:nope"}, {"watch", "deploy:docker:nope"}, {"pause", "deploy:docker:nope", "--reason", "x"}} {
		_, errOut, code = cli(t, args...)
		require.Equal(t, 1, code, args)
		require.Equal(t, "error: no rollout deploy:docker:nope: nothing with this ID has run ("+control.IDForms+")\n", errOut, args)
	}
	_, errOut, code = cli(t, "approve", "no-such-request", "--reason", "x")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "error: no rollout no-such-request: neither a workflow ID nor the execution ID of a rollout (rollout IDs look like deploy:docker:SERVICE")
	_, errOut, code = cli(t, "status", "release:e2e/nope")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "error: no release release:e2e/nope: nothing with this ID has run")

	// Abort with a reason: it lands in the control log and the outcome;
	// watch exits with rolled_back's code.
	s2 := demoSpec(service, "stagecraft-demo:v2", spec.Canary, 2)
	s2.Strategy.Bake = spec.Duration(time.Minute)
	_, errOut, code = cli(t, "deploy", "-f", writeSpec(t, s2))
	require.Equal(t, 0, code, errOut)
	waitForStage(t, id, 0, api.StageValidating)
	out, errOut, code = cli(t, "abort", id, "--reason", "error rate up", "--by", "carol", "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, "abort", st.Controls[len(st.Controls)-1].Action)
	out, errOut, code = cli(t, "watch", id)
	require.Equal(t, 3, code, errOut)
	require.Contains(t, out, "control: abort by carol via update: error rate up")
	require.Contains(t, out, "outcome: rolled_back")
	require.Contains(t, out, "reason:  aborted")
	out, errOut, code = cli(t, "status", id, "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, []api.ControlRecord{{Action: "abort", Via: "update", By: "carol", Reason: "error rate up", Accepted: true}}, withoutTimes(st.Controls))
	require.Contains(t, st.Error, "by carol: error rate up")

	// Temporal itself records who sent the abort: the starter's identity.
	var identities []string
	for _, ev := range fetchHistory(t, id, "").GetEvents() {
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			identities = append(identities, a.GetAcceptedRequest().GetMeta().GetIdentity())
		}
	}
	require.NotEmpty(t, identities)
	for _, who := range identities {
		require.True(t, strings.HasPrefix(who, "stagecraft-starter "), "update sent by %q", who)
	}
}

func withoutTimes(cs []api.ControlRecord) []api.ControlRecord {
	out := make([]api.ControlRecord, len(cs))
	for i, c := range cs {
		c.At = time.Time{}
		out[i] = c
	}
	return out
}

// TestCLIApprove: a canary whose 100% stage needs approval waits in phase
// awaiting_approval, shown by watch and status, until `starter approve`.
func TestCLIApprove(t *testing.T) {
	startWorkerProcess(t)
	service := itest.Name("e2e-approve")
	cleanup(t, service)
	s := demoSpec(service, "stagecraft-demo:v1", spec.Canary, 2)
	s.Strategy.Steps = []int{50, 100}
	s.Strategy.Bake = spec.Duration(time.Second)
	s.Approval = &spec.Approval{Before: []int{100}, Timeout: spec.Duration(2 * time.Minute)}
	s = s.WithDefaults()
	id := s.WorkflowID()
	_, errOut, code := cli(t, "deploy", "-f", writeSpec(t, s))
	require.Equal(t, 0, code, errOut)
	watch := startCLI(t, "watch", id, "--poll", "250ms")

	st := waitForPhase(t, id, api.PhaseAwaitingApproval)
	require.NotEmpty(t, st.Approvals)
	gate := st.Approvals[len(st.Approvals)-1]
	require.True(t, gate.Open())
	require.NotEmpty(t, gate.Name)
	out, errOut, code := cli(t, "status", id)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "approvals:")
	require.Contains(t, out, "awaiting approval for "+gate.Name)
	// The watch has shown the gate before anyone approves it.
	itest.Eventually(t, 30*time.Second, "watch shows the gate", func() bool {
		return strings.Contains(watch.out.String(), "awaiting approval for "+gate.Name)
	})

	out, errOut, code = cli(t, "approve", id, "--reason", "canary metrics fine", "--by", "dave", "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	gate = st.Approvals[len(st.Approvals)-1]
	require.False(t, gate.Open())
	require.Equal(t, "dave", gate.ApprovedBy)
	require.Equal(t, "canary metrics fine", gate.Reason)

	// No gate is open any more: refused with the workflow's reason.
	_, errOut, code = cli(t, "approve", id, "--reason", "again")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "error: cannot approve")
	require.NotContains(t, errOut, "rpc error")

	out, errOut, code = watch.wait(t)
	t.Logf("starter watch %s:\n%s", id, out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "phase awaiting_approval")
	require.Contains(t, out, "awaiting approval for "+gate.Name+", ")
	require.Contains(t, out, ", then abort (starter approve "+id)
	require.Contains(t, out, "outcome: succeeded")
}

// TestCLIWatchRelease: watch follows a release's services to its end, and
// status and the controls find it by its ID.
func TestCLIWatchRelease(t *testing.T) {
	startWorkerProcess(t)
	name := itest.Name("relcli")
	r := spec.Release{Name: name, Environment: "e2e"}
	for _, svc := range []struct {
		name, strategy string
		deps           []string
	}{{"db", spec.Recreate, nil}, {"api", spec.Canary, []string{"db"}}} {
		service := name + "-" + svc.name
		cleanup(t, service)
		installV1(t, service)
		d := demoSpec(service, "stagecraft-demo:v2", svc.strategy, 2)
		d.Strategy.Bake = spec.Duration(time.Second)
		r.Services = append(r.Services, spec.ReleaseService{Name: svc.name, DependsOn: svc.deps, Deploy: d})
	}
	b, err := yaml.Marshal(r)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "release.yaml")
	require.NoError(t, os.WriteFile(file, b, 0o644))

	out, errOut, code := cli(t, "release", "-f", file, "--json")
	require.Equal(t, 0, code, errOut)
	var started control.Started
	require.NoError(t, json.Unmarshal([]byte(out), &started))
	id := started.WorkflowID
	require.Equal(t, "release:e2e/"+name, id)

	out, errOut, code = cli(t, "watch", id)
	t.Logf("starter watch %s:\n%s", id, out)
	require.Equal(t, 0, code, errOut)
	plainLines(t, out)
	require.Contains(t, out, "release "+id+": "+name+" to e2e, 2 services")
	require.Contains(t, out, "service api: running (deploy:docker:"+name+"-api)")
	require.Contains(t, out, "service db: succeeded")
	require.Contains(t, out, "service api: succeeded")
	require.Contains(t, out, "outcome: succeeded")

	out, errOut, code = cli(t, "status", id, "--json")
	require.Equal(t, 0, code, errOut)
	var st api.ReleaseStatus
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, api.OutcomeSucceeded, st.Outcome)
	require.Len(t, st.Services, 2)

	_, errOut, code = cli(t, "pause", id, "--reason", "freeze")
	require.Equal(t, 1, code)
	// The release may still be open for a moment after its outcome (its
	// trail and notifications flush): then its own validator refuses, in
	// its words; once closed, the starter says so. Either way: finished,
	// with the outcome.
	require.Contains(t, errOut, "error: cannot pause: release "+id+" is finished (")
	require.Contains(t, errOut, "succeeded)")
}
