//go:build integration

package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/control"
	"github.com/stagecraft/stagecraft/internal/itest"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// A plan says what deploy would do with the target's running rollout: a
// different request would be refused as busy (so the plan is not ready,
// exit 5), the same request would join it; never a mere warning that
// leaves the plan "ready".
func TestPlanSaysARunningRolloutRefusesTheStart(t *testing.T) {
	e := newUndoEnv(t)
	running := e.spec("stagecraft-demo:v1", "one")
	running.Strategy.Bake = spec.Duration(10 * time.Minute)
	started := e.start(t, running)
	t.Cleanup(func() {
		_ = e.tc.TerminateWorkflow(context.Background(), started.WorkflowID, started.RunID, "test done")
	})
	baking := func() bool {
		st, err := control.Status(context.Background(), e.tc, started.WorkflowID)
		return err == nil && st.Phase == api.PhaseValidating
	}
	require.Eventually(t, baking, 2*time.Minute, 200*time.Millisecond, "the running rollout bakes")

	file := func(s spec.Spec) string {
		raw, err := json.Marshal(s)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "spec.json")
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		return path
	}
	out, errOut, code := e.starter(t, "plan", "-f", file(e.spec("stagecraft-demo:v2", "two")))
	require.Equal(t, exitRejected, code, "plan of another request while a rollout runs: %s\n%s", out, errOut)
	require.Regexp(t, `failed\s+target\s+a start now would be refused: target is busy: rollout `+e.target()+` \(run `+started.RunID, out)
	require.Contains(t, out, "Not ready")
	require.Contains(t, errOut, "target is busy")

	out, errOut, code = e.starter(t, "plan", "-f", file(running))
	require.Equal(t, 0, code, "plan of the running request: %s\n%s", out, errOut)
	require.Regexp(t, `warning\s+target\s+a start now would join rollout `+e.target()+` \(run `+started.RunID+`\), which runs this same request`, out)
}

// A plan changes nothing, on Docker too: an image the engine does not have
// is looked for in its registry (its manifest, and the config the engine
// reads for the platforms) and said to be pulled when the rollout starts (a
// warning), not pulled. The registry here is the test's own on 127.0.0.1:
// it has the image's manifest and config but serves no layer, and counts
// what is asked of it, so a pull shows as a layer request (before, the
// worker's plan pulled). An image no registry has is refused.
func TestPlanPullsNothing(t *testing.T) {
	e := newUndoEnv(t)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}`)
	configDigest := fmt.Sprintf("sha256:%x", sha256.Sum256(config))
	layerDigest := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("a layer this registry never serves")))
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": configDigest},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32, "digest": layerDigest}},
	})
	require.NoError(t, err)
	var manifests, layers atomic.Int64
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.Contains(r.URL.Path, "/stagecraft-absent/manifests/"):
			manifests.Add(1)
			w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
			w.Header().Set("Docker-Content-Digest", fmt.Sprintf("sha256:%x", sha256.Sum256(manifest)))
			w.Header().Set("Content-Length", fmt.Sprint(len(manifest)))
			if r.Method != http.MethodHead {
				_, _ = w.Write(manifest)
			}
		case strings.HasSuffix(r.URL.Path, "/blobs/"+configDigest):
			w.Header().Set("Content-Length", fmt.Sprint(len(config)))
			if r.Method != http.MethodHead {
				_, _ = w.Write(config)
			}
		case strings.HasSuffix(r.URL.Path, "/blobs/"+layerDigest):
			layers.Add(1)
			http.NotFound(w, r)
		default:
			// A registry's own answer (distribution's error body), not
			// a bare "404 page not found", which reads as a proxy's.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
		}
	}))
	t.Cleanup(registry.Close)
	host := strings.TrimPrefix(registry.URL, "http://")
	plan := func(image string) (string, string, int) {
		raw, err := json.Marshal(e.spec(image, "absent"))
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "spec.json")
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		return e.starter(t, "plan", "-f", path)
	}

	image := host + "/stagecraft-absent:v1"
	out, errOut, code := plan(image)
	require.Equal(t, 0, code, "plan of an image only its registry has: %s\n%s", out, errOut)
	require.Regexp(t, `warning\s+image\s+`+regexp.QuoteMeta(image)+` is not on the engine; its registry has it: the rollout pulls it when it starts`, out)
	require.NotZero(t, manifests.Load(), "the registry was not asked for the image's manifest")
	require.Zero(t, layers.Load(), "the plan asked the registry for a layer %d time(s): it tried to pull %s", layers.Load(), image)

	gone := host + "/stagecraft-gone:v1"
	out, errOut, code = plan(gone)
	require.Equal(t, exitRejected, code, "plan of an image no registry has: %s\n%s", out, errOut)
	require.Regexp(t, `failed\s+image\s+image "`+regexp.QuoteMeta(gone)+`" not found`, out)
	require.Zero(t, layers.Load())

	// A release's plan looks for its services' images the same way (its
	// preflight pulled them before).
	planRelease := func(image string) (string, string, int) {
		r := spec.Release{Name: itest.Name("pull"), Environment: "test", Services: []spec.ReleaseService{{Name: "web", Deploy: e.spec(image, "absent")}}}
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "release.json")
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		return e.starter(t, "plan", "-f", path)
	}
	out, errOut, code = planRelease(image)
	require.Equal(t, 0, code, "release plan of an image only its registry has: %s\n%s", out, errOut)
	require.Zero(t, layers.Load(), "the release plan asked the registry for a layer %d time(s): it tried to pull %s", layers.Load(), image)
	out, errOut, code = planRelease(gone)
	require.Equal(t, exitRejected, code, "release plan of an image no registry has: %s\n%s", out, errOut)
	require.Contains(t, out+errOut, `image "`+gone+`" not found`)
	require.Zero(t, layers.Load())
}
