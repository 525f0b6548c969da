//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestWebhooksAreSignedByTheWorker runs the worker binary with a signing
// key file on a real dev server and Docker engine: every delivery of a
// rollout's webhook verifies against that key at a receiver that refuses
// anything else, and a worker given a key too short refuses to start,
// naming the file.
func TestWebhooksAreSignedByTheWorker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := itest.Build(dir, "worker")
	require.NoError(t, err)

	short := filepath.Join(dir, "short.key")
	require.NoError(t, os.WriteFile(short, []byte("too short\n"), 0o600))
	out, err := exec.Command(bin, "--address", "127.0.0.1:1", "--webhook-signing-key-file", short).CombinedOutput()
	require.Error(t, err, "a worker with a short signing key starts:\n%s", out)
	require.Contains(t, string(out), "webhook signing key "+short+": 9 bytes, want at least 32")

	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	defer func() { _ = server.Stop() }()
	tc := server.Client()
	dc, err := itest.Docker()
	require.NoError(t, err)

	secret := bytes.Repeat([]byte("s"), 48)
	keyFile := filepath.Join(dir, "webhook.key")
	require.NoError(t, os.WriteFile(keyFile, append(secret, '\n'), 0o600))

	var (
		mu       sync.Mutex
		verified []string
		refused  []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := notify.Verify([][]byte{secret}, r.Header, body, time.Now(), notify.DefaultTolerance); err != nil {
			refused = append(refused, err.Error())
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev notify.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		verified = append(verified, ev.Kind)
	}))
	defer recv.Close()

	s := itest.DemoSpec(itest.Name("signed"), "stagecraft-demo:v1", spec.Recreate, 1)
	s.Notifications = []spec.Notification{{Name: "ops", Webhook: recv.URL + "/hook"}}
	itest.RemoveService(t, dc, s.Service)

	var logs bytes.Buffer
	w := exec.Command(bin, "--address", server.FrontendHostPort(), "--webhook-signing-key-file", keyFile)
	w.Stdout, w.Stderr = &logs, &logs
	require.NoError(t, w.Start())
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()

	started, err := control.Start(ctx, tc, s)
	require.NoError(t, err)
	res, err := control.Wait(ctx, tc, started.WorkflowID, started.RunID, time.Second, nil)
	require.NoError(t, err, "worker log:\n%s", logs.String())
	require.Equal(t, api.OutcomeSucceeded, res.Outcome, res.Error)

	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, refused, "deliveries the receiver refused")
	require.Equal(t, []string{spec.EventStarted, spec.EventSucceeded}, verified, "verified deliveries")
	require.NotContains(t, logs.String(), "webhook deliveries are unsigned")
	require.False(t, strings.Contains(logs.String(), string(secret)), "the worker logs its secret")
}
