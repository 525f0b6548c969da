package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stagecraft/stagecraft/internal/api"
	"github.com/stagecraft/stagecraft/internal/spec"
)

func demo() spec.Spec {
	return spec.Spec{Service: "hello", Image: "stagecraft-demo:v2",
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 3}},
		Strategy: spec.Strategy{Type: spec.Canary}}.WithDefaults()
}

// A rollout's input is the spec's own JSON object, with release and resume
// last, where spec.Spec kept them before they left it: a plain spec, any
// Temporal client's JSON and every recorded history decode into it, and
// what the workflow sends on (continue-as-new, a release's children) is
// byte for byte what it sent before.
func TestRolloutInputIsTheSpecsJSON(t *testing.T) {
	s := demo()
	plain, err := json.Marshal(s)
	require.NoError(t, err)
	in, err := json.Marshal(api.RolloutInput{Spec: s})
	require.NoError(t, err)
	require.Equal(t, string(plain), string(in))

	in, err = json.Marshal(api.RolloutInput{Spec: s, Release: "release:prod/shop", Resume: json.RawMessage(`{"next":2}`)})
	require.NoError(t, err)
	want := strings.TrimSuffix(string(plain), "}") + `,"release":"release:prod/shop","resume":{"next":2}}`
	require.Equal(t, want, string(in))

	var back api.RolloutInput
	require.NoError(t, json.Unmarshal(in, &back))
	require.Equal(t, "release:prod/shop", back.Release)
	require.JSONEq(t, `{"next":2}`, string(back.Resume))
	require.Equal(t, s.Service, back.Service)
}

// The request ID of a release's rollout hashes the spec with its release,
// as it did when the release was a field of the spec; the caller's
// execution ID wins.
func TestRolloutInputRequestID(t *testing.T) {
	s := demo()
	in := api.RolloutInput{Spec: s, Release: "release:prod/shop"}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	b = append(b[:len(b)-1], []byte(`,"release":"release:prod/shop"}`)...)
	sum := sha256.Sum256(b)
	require.Equal(t, "spec-"+hex.EncodeToString(sum[:8]), in.RequestID())
	require.Equal(t, s.RequestID(), api.RolloutInput{Spec: s}.RequestID(), "a plain rollout's ID is its spec's")
	require.Equal(t, in.RequestID(), api.RolloutInput{Spec: s, Release: in.Release, Resume: json.RawMessage(`{}`)}.RequestID(), "carried state is not part of the request")
	s.ExecutionID = "req-42"
	require.Equal(t, "req-42", api.RolloutInput{Spec: s, Release: "x"}.RequestID())
}

// A release's input is the release's own JSON; decoding notes the
// workflow-only fields a service's spec set, which the workflow refuses.
func TestReleaseInputIsTheReleasesJSON(t *testing.T) {
	r := spec.Release{Name: "shop", Environment: "prod", Services: []spec.ReleaseService{{Name: "api", Deploy: demo()}, {Name: "web", Deploy: demo()}}}
	plain, err := json.Marshal(r)
	require.NoError(t, err)
	in, err := json.Marshal(api.ReleaseInput{Release: r})
	require.NoError(t, err)
	require.Equal(t, string(plain), string(in))

	var got api.ReleaseInput
	require.NoError(t, json.Unmarshal(plain, &got))
	require.Equal(t, r, got.Release)
	require.Empty(t, got.Reserved())

	forged := strings.Replace(string(plain), `"deploy":{`, `"deploy":{"release":"release:prod/other","resume":{},`, 1)
	require.NoError(t, json.Unmarshal([]byte(forged), &got))
	require.Equal(t, []spec.FieldError{
		{Field: "services[0].deploy.resume", Message: "is set by the rollout itself when it continues as new"},
		{Field: "services[0].deploy.release", Message: "is set by the release itself"},
	}, got.Reserved())
}
