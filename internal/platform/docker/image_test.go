package docker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// TestRegistryAnswer sorts the engine's pull and registry errors, as
// dockerd 20.10 gave them for each case (internal/platform/docker's
// TestImageRegistryOutage asks a real engine), into the image being
// missing and the registry being unavailable.
func TestRegistryAnswer(t *testing.T) {
	const daemon = "Error response from daemon: "
	cases := []struct {
		name    string
		err     error
		missing bool
		reason  string
	}{
		{"manifest unknown", errors.New(daemon + "manifest unknown"), true, "manifest unknown"},
		{"manifest not found", errors.New(daemon + "manifest for 127.0.0.1:5000/x/y:v1 not found: manifest unknown: manifest unknown"), true, "manifest for 127.0.0.1:5000/x/y:v1 not found"},
		{"404 by code", fmt.Errorf("inspect: %w", cerrdefs.ErrNotFound.WithMessage("manifest unknown")), true, "manifest unknown"},
		{"unauthorized", errors.New(daemon + "unauthorized"), true, "unauthorized"},
		{"401 by code", cerrdefs.ErrUnauthenticated.WithMessage("authentication required"), true, "authentication required"},
		{"hub denied", errors.New(daemon + "pull access denied for stagecraft-demo, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"), true, "pull access denied"},
		{"no such host", errors.New(daemon + `Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid on 10.255.255.53:53: no such host`), true, "no such host"},
		{"bad reference", errors.New(daemon + "invalid reference format: repository name must be lowercase"), true, "invalid reference format"},
		{"no platform", errors.New(daemon + "no matching manifest for linux/amd64 in the manifest list entries"), true, "no matching manifest"},

		{"ghcr denied", errors.New(daemon + "denied"), true, "denied"},
		{"ecr no credentials", errors.New(daemon + "Head \"https://1.dkr.ecr.eu-west-1.amazonaws.com/v2/x/manifests/v1\": no basic auth credentials"), true, "no basic auth credentials"},
		{"a proxy's 404", errors.New(daemon + "error parsing HTTP 404 response body: invalid character 'p' after top-level value: \"404 page not found\\n\""), false, "404 page not found"},
		{"refused", errors.New(daemon + `Get "http://127.0.0.1:44839/v2/": dial tcp 127.0.0.1:44839: connect: connection refused`), false, "connection refused"},
		{"503", errors.New(daemon + "received unexpected HTTP status: 503 Service Unavailable"), false, "503"},
		{"500", errors.New(daemon + "received unexpected HTTP status: 500 Internal Server Error"), false, "500"},
		{"rate limited", errors.New(daemon + "toomanyrequests: slow down"), false, "toomanyrequests"},
		{"timeout", errors.New(daemon + `Get "https://r.example/v2/": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)`), false, "Client.Timeout"},
		{"dns down", errors.New(daemon + `Get "https://r.example/v2/": dial tcp: lookup r.example on 10.0.0.2:53: server misbehaving`), false, "server misbehaving"},
		{"tls", errors.New(daemon + `Get "https://r.example/v2/": tls: failed to verify certificate: x509: certificate signed by unknown authority`), false, "x509"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := registryAnswer("img:1", c.err)
			var nf *platform.ImageNotFoundError
			var ru *platform.RegistryUnavailableError
			switch {
			case c.missing && !errors.As(err, &nf):
				t.Fatalf("registryAnswer(%q) = %T %v, want an ImageNotFoundError", c.err, err, err)
			case !c.missing && !errors.As(err, &ru):
				t.Fatalf("registryAnswer(%q) = %T %v, want a RegistryUnavailableError", c.err, err, err)
			case !c.missing && platform.IsImageNotFound(err):
				t.Fatalf("an outage reads as a missing image: %v", err)
			}
			if !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), `"img:1"`) {
				t.Errorf("error %q should name the image and say %q", err, c.reason)
			}
			if strings.Contains(err.Error(), "Error response from daemon") {
				t.Errorf("error %q keeps the client's prefix", err)
			}
		})
	}
}

// TestRegistryAnswerIsBounded keeps a registry's long answer from filling
// the status, audit trail and notification, and cuts it on a rune.
func TestRegistryAnswerIsBounded(t *testing.T) {
	long := "manifest unknown: " + strings.Repeat("é", 400)
	err := registryAnswer("img:1", errors.New(long))
	var nf *platform.ImageNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("registryAnswer = %v", err)
	}
	if len(nf.Reason) > maxReason+len("…") || !strings.HasSuffix(nf.Reason, "…") || !utf8.ValidString(nf.Reason) {
		t.Errorf("reason of %d bytes, valid %v: %q", len(nf.Reason), utf8.ValidString(nf.Reason), nf.Reason)
	}
}
