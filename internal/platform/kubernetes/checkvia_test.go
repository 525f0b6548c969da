package kubernetes

import (
	"encoding/json"
	"testing"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// TestCheckModeSpecWins: the spec's platform.kubernetes.checkVia, when set,
// decides over the worker's setting (whichever it is, auto included, in the
// cluster or not); unset, the worker's setting decides as before.
func TestCheckModeSpecWins(t *testing.T) {
	for _, tc := range []struct {
		name, setting, field, envService, want string
	}{
		{name: "spec portForward over zero value", field: "portForward", want: CheckViaPortForward},
		{name: "spec portForward over podIP", setting: CheckViaPodIP, field: "portForward", want: CheckViaPortForward},
		{name: "spec portForward over auto in cluster", setting: CheckViaAuto, field: "portForward", envService: "10.96.0.1", want: CheckViaPortForward},
		{name: "spec podIP over portForward", setting: CheckViaPortForward, field: "podIP", want: CheckViaPodIP},
		{name: "spec podIP over auto outside", setting: CheckViaAuto, field: "podIP", want: CheckViaPodIP},
		{name: "unset: worker portForward", setting: CheckViaPortForward, want: CheckViaPortForward},
		{name: "unset: worker podIP", setting: CheckViaPodIP, want: CheckViaPodIP},
		{name: "unset: worker auto outside", setting: CheckViaAuto, want: CheckViaPortForward},
		{name: "unset: worker auto in cluster", setting: CheckViaAuto, envService: "10.96.0.1", want: CheckViaPodIP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", "")
			t.Setenv("KUBERNETES_SERVICE_HOST", tc.envService)
			p := New(nil)
			p.CheckVia = tc.setting
			// As a workflow receives it: JSON.
			k := map[string]string{"deployment": "web"}
			if tc.field != "" {
				k["checkVia"] = tc.field
			}
			b, err := json.Marshal(map[string]any{"service": "web", "platform": map[string]any{"kubernetes": k}})
			if err != nil {
				t.Fatal(err)
			}
			var s spec.Spec
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			if got := p.checkMode(s); got != tc.want {
				t.Fatalf("check mode with worker %q and spec checkVia %q = %q; want %q", tc.setting, tc.field, got, tc.want)
			}
		})
	}
}
