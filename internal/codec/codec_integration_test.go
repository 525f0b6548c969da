//go:build integration

package codec_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/proto"

	"github.com/stagecraft/stagecraft/internal/codec"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

var payloadData = regexp.MustCompile(`"data":\s*"([A-Za-z0-9+/=]+)"`)

// TestCodecSealsEveryPayloadOnTheServer runs a real rollout (worker and
// starter binaries with the codec's keys, a dev server, Docker) whose spec
// carries a planted value in plain env. The value is in no byte of the
// history as the server stores it, nor in the run's memo or search
// attributes; the stock temporal CLI shows it only through the codec
// server, and only with the server's token.
func TestCodecSealsEveryPayloadOnTheServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	worker, err := itest.Build(dir, "worker")
	require.NoError(t, err)
	starter, err := itest.Build(dir, "starter")
	require.NoError(t, err)
	server, err := itest.DevServer(ctx)
	require.NoError(t, err)
	defer func() { _ = server.Stop() }()
	raw := server.Client() // no codec: what the server stores
	dc, err := itest.Docker()
	require.NoError(t, err)

	secret := make([]byte, codec.KeySize)
	_, _ = rand.Read(secret)
	keys := filepath.Join(dir, "codec.keys")
	require.NoError(t, os.WriteFile(keys, []byte("k1="+base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600))
	token := hex.EncodeToString(secret[:12])
	tokenFile := filepath.Join(dir, "codec.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	planted := "planted-" + hex.EncodeToString(secret[12:20])

	s := itest.DemoSpec(itest.Name("codec"), "stagecraft-demo:v1", spec.Recreate, 1)
	s.Platform.Docker.Env["PLANTED"] = planted
	itest.RemoveService(t, dc, s.Service)
	specFile := filepath.Join(dir, "spec.json")
	b, err := json.Marshal(s)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(specFile, b, 0o600))

	env := append(os.Environ(), codec.EnvKeyFile+"="+keys)
	var wlog bytes.Buffer
	w := exec.Command(worker, "--address", server.FrontendHostPort())
	w.Env, w.Stdout, w.Stderr = env, &wlog, &wlog
	require.NoError(t, w.Start())
	defer func() { _ = w.Process.Kill(); _ = w.Wait() }()

	starterRun := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, starter, append([]string{"--address", server.FrontendHostPort()}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := starterRun("deploy", "-f", specFile)
	require.NoError(t, err, "starter deploy:\n%s\nworker:\n%s", out, wlog.String())
	// The same request again joins: the starter reads the running
	// rollout's sealed memo (its request ID and spec fingerprint).
	out, err = starterRun("deploy", "-f", specFile)
	require.NoError(t, err, "starter deploy, the same request again:\n%s", out)
	require.Contains(t, out, "joined")
	wid := s.WorkflowID()
	out, err = starterRun("watch", wid)
	require.NoError(t, err, "starter watch:\n%s\nworker:\n%s", out, wlog.String())

	// The starter decodes what it reads (queries, results) with the keys.
	out, err = starterRun("status", wid)
	require.NoError(t, err, "%s", out)
	require.Contains(t, out, "succeeded")

	// Every event as stored, in the server's own encoding.
	var events int
	it := raw.GetWorkflowHistory(ctx, wid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		bs, err := proto.Marshal(e)
		require.NoError(t, err)
		require.False(t, bytes.Contains(bs, []byte(planted)), "event %d (%s) holds the planted value in the clear", e.GetEventId(), e.GetEventType())
		events++
	}
	require.Greater(t, events, 10)
	d, err := raw.DescribeWorkflowExecution(ctx, wid, "")
	require.NoError(t, err)
	bs, err := proto.Marshal(d)
	require.NoError(t, err)
	require.False(t, bytes.Contains(bs, []byte(planted)), "the run's description (memo, search attributes) holds the planted value")

	// The stock CLI through the codec server: with the token it reads the
	// value; without it, it does not.
	cs := exec.Command(worker, "codec-server", "--listen", "127.0.0.1:0", "--auth-token-file", tokenFile)
	cs.Env = env
	stdout, err := cs.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cs.Start())
	defer func() { _ = cs.Process.Kill(); _ = cs.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	endpoint := strings.Fields(strings.TrimPrefix(line, "codec server on "))[0]
	require.True(t, strings.HasPrefix(endpoint, "http://127.0.0.1:"), line)

	show := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, os.Getenv(itest.TemporalBinEnv), append([]string{"workflow", "show", "-w", wid,
			"--address", server.FrontendHostPort(), "-o", "json", "--codec-endpoint", endpoint}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// reads reports whether the CLI's JSON shows the value in a payload
	// (proto JSON prints a payload's data as base64).
	reads := func(out string) bool {
		for _, m := range payloadData.FindAllStringSubmatch(out, -1) {
			if b, err := base64.StdEncoding.DecodeString(m[1]); err == nil && bytes.Contains(b, []byte(planted)) {
				return true
			}
		}
		return strings.Contains(out, planted)
	}
	out2, err := show("--codec-auth", "Bearer "+token)
	require.NoError(t, err, "%.2000s", out2)
	require.True(t, reads(out2), "the CLI with the codec server's token does not read the value:\n%.3000s", out2)
	out3, _ := show()
	require.False(t, reads(out3), "the CLI without the token reads the value")
	out4, _ := show("--codec-auth", "Bearer wrong-token-0000000")
	require.False(t, reads(out4), "the CLI with a wrong token reads the value")
	t.Logf("without the token the CLI says: %.300s", out3)
	t.Logf("%d events stored sealed; the CLI decodes them through %s only with the token", events, endpoint)
}
