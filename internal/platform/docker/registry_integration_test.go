//go:build integration

package docker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
)

// fakeRegistry serves the registry API's version check and answers every
// other request with status and body, counting them: what the engine asks
// a registry on 127.0.0.1 (an insecure registry by default, so plain HTTP).
func fakeRegistry(t *testing.T, status int, body string) (host string, asked *atomic.Int32) {
	asked = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), asked
}

// TestImageRegistryOutage asks a real engine for images whose registry
// answers that it has no such image, refuses it, is down, or has a host
// name that does not exist. An answer is a missing image (the rollout is
// refused at once); an outage is not (the step is retried, and a converge
// changes nothing meanwhile). Before registryAnswer every one of them was
// "image not found", so a registry's restart failed rollouts, and
// rollbacks, that a retry would have carried.
func TestImageRegistryOutage(t *testing.T) {
	e := newEnv(t)
	missing, askedMissing := fakeRegistry(t, http.StatusNotFound, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
	private, _ := fakeRegistry(t, http.StatusUnauthorized, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	down, askedDown := fakeRegistry(t, http.StatusServiceUnavailable, "restarting")
	// A proxy in front of a registry that is restarting: its own 404 page.
	proxy, _ := fakeRegistry(t, http.StatusNotFound, "404 page not found\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	cases := []struct {
		name, image string
		missing     bool
		says        string
	}{
		{"manifest unknown", missing + "/stagecraft/demo:v9", true, "manifest unknown"},
		{"unauthorized", private + "/stagecraft/demo:v9", true, "unauthorized"},
		{"no such host", "registry.invalid/stagecraft/demo:v9", true, "no such host"},
		{"503", down + "/stagecraft/demo:v9", false, "503"},
		{"a proxy's 404", proxy + "/stagecraft/demo:v9", false, "404 page not found"},
		{"connection refused", closed + "/stagecraft/demo:v9", false, "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, look := range []struct {
				name string
				call func() error
			}{
				{"CheckImage", func() error { return e.p.CheckImage(e.ctx, c.image) }},
				{"FindImage", func() error { _, err := e.p.FindImage(e.ctx, c.image); return err }},
			} {
				err := look.call()
				var ru *platform.RegistryUnavailableError
				switch {
				case c.missing && !platform.IsImageNotFound(err):
					t.Errorf("%s(%s) = %v, want an ImageNotFoundError", look.name, c.image, err)
				case !c.missing && platform.IsImageNotFound(err):
					t.Errorf("%s(%s) = %v: an outage read as a missing image", look.name, c.image, err)
				case !c.missing && !errors.As(err, &ru):
					t.Errorf("%s(%s) = %T %v, want a RegistryUnavailableError", look.name, c.image, err, err)
				case !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), c.image):
					t.Errorf("%s(%s) = %q: should name the image and say %q", look.name, c.image, err, c.says)
				}
			}
		})
	}
	if askedMissing.Load() == 0 || askedDown.Load() == 0 {
		t.Errorf("the registries were not asked (missing %d, down %d): the engine did not reach them", askedMissing.Load(), askedDown.Load())
	}

	// A converge to an image whose registry is down fails retryably and
	// changes nothing.
	e.converge(e.spec(imageV1), "r1", platform.Snapshot{}, plan.Desired{New: 1, Traffic: plan.TrafficNew})
	snap := e.snapshot()
	_, err = e.p.Converge(e.ctx, platform.ConvergeRequest{Spec: e.spec(down + "/stagecraft/demo:v9"), Rollout: "r2", Snapshot: snap,
		Desired: plan.Desired{New: 1, Old: 0, Traffic: plan.TrafficNew, Order: plan.StopFirst}})
	var ru *platform.RegistryUnavailableError
	if !errors.As(err, &ru) || platform.IsImageNotFound(err) {
		t.Fatalf("converge with the registry down = %v, want a RegistryUnavailableError", err)
	}
	if got := e.snapshot(); !reflect.DeepEqual(got, snap) {
		t.Errorf("a converge refused for the registry changed the service: %+v", got)
	}
}
