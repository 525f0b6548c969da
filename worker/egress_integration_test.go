//go:build integration

package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestEgressPolicyAndSecretReferences runs the worker binary with
// --egress-allow 127.0.0.1 on a real dev server and Docker engine (review
// findings 6 and 14): the rollout's instance checks reach the containers'
// published ports; a fixed-target dependency on 127.0.0.2 (loopback not
// listed) is refused by the dialer and never reached, so the round is
// degraded saying why; the webhook on 127.0.0.1 gets its Authorization
// header from the worker's environment; and that value is in no event of
// the stored history.
func TestEgressPolicyAndSecretReferences(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := itest.Build(dir, "worker")
	require.NoError(t, err)

	out, err := exec.Command(bin, "--address", "127.0.0.1:1", "--egress-allow", "http://x").CombinedOutput()
	require.Error(t, err, "a worker with a bad --egress-allow starts:\n%s", out)
	require.Contains(t, string(out), `egress allow "http://x"`)

	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	defer func() { _ = server.Stop() }()
	tc := server.Client()
	dc, err := itest.Docker()
	require.NoError(t, err)

	// The internal service a spec must not reach: on 127.0.0.2.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	var internalHits atomic.Int32
	internal := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		internalHits.Add(1)
		_, _ = w.Write([]byte(`{"access_token":"internal-secret"}`))
	}))
	internal.Listener = l
	internal.Start()
	defer internal.Close()

	const token = "Bearer hook-token-0123456789-planted"
	var (
		mu    sync.Mutex
		auths []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auths = append(auths, r.Header.Get("Authorization"))
	}))
	defer recv.Close()

	s := itest.DemoSpec(itest.Name("egress"), "stagecraft-demo:v1", spec.Recreate, 1)
	s.Health.Dependencies = []spec.Check{{Name: "internal", HTTP: &spec.HTTPCheck{
		URL: "http://" + l.Addr().String() + "/token", ExpectStatus: spec.StatusSet{"200"},
		Headers: map[string]spec.SecretValue{"Authorization": {Ref: &spec.SecretRef{FromEnv: "STAGECRAFT_E2E_HOOK_TOKEN"}}},
	}}}
	s.Notifications = []spec.Notification{{Name: "ops", Webhook: recv.URL + "/hook",
		Headers: map[string]spec.SecretValue{"Authorization": {Ref: &spec.SecretRef{FromEnv: "STAGECRAFT_E2E_HOOK_TOKEN"}}}}}
	s = s.WithDefaults()
	require.NoError(t, s.Validate())
	itest.RemoveService(t, dc, s.Service)

	var logs bytes.Buffer
	w := exec.Command(bin, "--address", server.FrontendHostPort(), "--egress-allow", "127.0.0.1", "--secret-env-prefix", "STAGECRAFT_E2E_")
	w.Env = append(os.Environ(), "STAGECRAFT_E2E_HOOK_TOKEN="+token)
	w.Stdout, w.Stderr = &logs, &logs
	require.NoError(t, w.Start())
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()

	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err, "worker log:\n%s", logs.String())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

	require.Zero(t, internalHits.Load(), "the fixed target off the allowlist was reached")
	mu.Lock()
	require.NotEmpty(t, auths, "webhook deliveries")
	for _, a := range auths {
		require.Equal(t, token, a, "the webhook's Authorization header")
	}
	mu.Unlock()

	var sawRefusal bool
	iter := tc.GetWorkflowHistory(ctx, started.WorkflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		raw, err := proto.Marshal(ev)
		require.NoError(t, err)
		require.False(t, bytes.Contains(raw, []byte("hook-token-0123456789")), "event %d (%s) holds the resolved header", ev.EventId, ev.EventType)
		require.False(t, bytes.Contains(raw, []byte("internal-secret")), "event %d (%s) holds the internal service's body", ev.EventId, ev.EventType)
		sawRefusal = sawRefusal || bytes.Contains(raw, []byte("egress policy: 127.0.0.2"))
	}
	require.True(t, sawRefusal, "no event says the dependency was refused by the egress policy")
}
