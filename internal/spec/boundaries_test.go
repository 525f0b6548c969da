package spec

import (
	"strings"
	"testing"
)

// TestDockerSharedNetworksAndToolLabelsRefused: a Docker spec may not join
// the engine's shared networks or another container's stack, nor set
// labels other tools act on; each is named (review finding 15). Specs
// validated under the rules before (a run started earlier, on replay) are
// not refused.
func TestDockerSharedNetworksAndToolLabelsRefused(t *testing.T) {
	const base = `
service: hello
image: stagecraft-demo:v2
platform:
  docker:
    port: 8080
    network: NETWORK
    labels: {LABEL: "x"}
strategy: {type: rolling}
`
	spec := func(network, label string) string {
		return strings.NewReplacer("NETWORK", network, "LABEL", label).Replace(base)
	}
	if _, err := Parse([]byte(spec("shop-canary", "team"))); err != nil {
		t.Fatalf("own network and a plain label refused: %v", err)
	}
	for _, n := range []string{"host", "none", "bridge", "default", "Host", "container:db"} {
		_, err := Parse([]byte(spec(`"`+n+`"`, "team")))
		if err == nil || !strings.Contains(err.Error(), "platform.docker.network: ") || !strings.Contains(err.Error(), n) {
			t.Errorf("network %q: %v; want refused, naming platform.docker.network", n, err)
		}
	}
	for _, l := range []string{
		"traefik.http.routers.shop.rule", "com.docker.compose.project", "com.centurylinklabs.watchtower.enable",
		"io.portainer.accesscontrol.public", "org.opencontainers.image.source", "stagecraft.service", "Traefik.enable",
	} {
		_, err := Parse([]byte(spec("shop-canary", `"`+l+`"`)))
		if err == nil || !strings.Contains(err.Error(), "platform.docker.labels."+l+": ") {
			t.Errorf("label %q: %v; want refused, naming the label", l, err)
		}
	}
	// Under the rules a run started before, the same spec stays valid.
	s, err := parseUnvalidated(spec("bridge", `"traefik.enable"`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateUnder(RulesBounded); err != nil {
		t.Errorf("RulesBounded refuses what it accepted before: %v", err)
	}
}

func parseUnvalidated(y string) (Spec, error) {
	s, err := Parse([]byte(strings.NewReplacer(`network: bridge`, `network: shop`, `"traefik.enable"`, `"team"`).Replace(y)))
	if err != nil {
		return Spec{}, err
	}
	s.Platform.Docker.Network = "bridge"
	s.Platform.Docker.Labels = map[string]string{"traefik.enable": "true"}
	return s, nil
}
