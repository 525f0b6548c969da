package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// seedYAML is the product's example spec, verbatim.
const seedYAML = `service: hello
image: stagecraft-demo:v2
platform:
  docker:
    replicas: 4
    port: 8080
    env:
      GREETING: hello
strategy:
  type: canary        # canary | blue-green | rolling | recreate
  steps: [25, 50, 100]
  bake: 20s
health:
  interval: 2s
  checks:
    - name: healthz
      http:
        url: http://{{.Address}}/healthz
        expectStatus: 200
`

// seedWant is seedYAML parsed, with defaults applied.
func seedWant() Spec {
	return Spec{
		Service: "hello",
		Image:   "stagecraft-demo:v2",
		Platform: Platform{Docker: &Docker{
			Replicas: 4,
			Port:     8080,
			Env:      map[string]string{"GREETING": "hello"},
			Network:  "stagecraft",
		}},
		Strategy: Strategy{Type: Canary, Steps: []int{25, 50, 100}, Bake: Duration(20 * time.Second)},
		Health: Health{
			Interval:         Duration(2 * time.Second),
			Timeout:          Duration(10 * time.Second),
			FailureThreshold: 1,
			MinSamples:       1,
			OnNoData:         NoDataFail,
			OnDegraded:       DegradedContinue,
			Checks: []Check{{
				Name: "healthz",
				HTTP: &HTTPCheck{
					URL:          "http://{{.Address}}/healthz",
					ExpectStatus: StatusSet{"200"},
					Timeout:      Duration(10 * time.Second),
				},
			}},
		},
		Timeout: Duration(2 * time.Hour),
	}
}

func TestParseSeed(t *testing.T) {
	jsonSeed := `{
	  "service": "hello",
	  "image": "stagecraft-demo:v2",
	  "platform": {"docker": {"replicas": 4, "port": 8080, "env": {"GREETING": "hello"}}},
	  "strategy": {"type": "canary", "steps": [25, 50, 100], "bake": "20s"},
	  "health": {"interval": "2s", "checks": [
	    {"name": "healthz", "http": {"url": "http://{{.Address}}/healthz", "expectStatus": 200}}
	  ]}
	}`
	tests := []struct {
		name  string
		input string
	}{
		{name: "yaml", input: seedYAML},
		{name: "json", input: jsonSeed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if want := seedWant(); !reflect.DeepEqual(got, want) {
				t.Errorf("Parse mismatch\n got: %s\nwant: %s", mustJSON(t, got), mustJSON(t, want))
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	const head = `service: hello
image: stagecraft-demo:v2
platform:
  docker:
    port: 8080
`
	tests := []struct {
		name     string
		strategy string
		want     Strategy
	}{
		{
			name:     "canary",
			strategy: "strategy: {type: canary}\n",
			want:     Strategy{Type: Canary, Steps: []int{5, 25, 50, 100}, Bake: Duration(5 * time.Minute)},
		},
		{
			name:     "blue-green",
			strategy: "strategy: {type: blue-green}\n",
			want: Strategy{Type: BlueGreen, BakeBeforeSwitch: Duration(3 * time.Minute),
				BakeAfterSwitch: Duration(3 * time.Minute)},
		},
		{
			name:     "rolling",
			strategy: "strategy: {type: rolling}\n",
			want:     Strategy{Type: Rolling, BatchSize: 1, Bake: Duration(2 * time.Minute)},
		},
		{
			name:     "recreate",
			strategy: "strategy: {type: recreate}\n",
			want:     Strategy{Type: Recreate, Bake: Duration(2 * time.Minute)},
		},
		{
			name:     "canary keeps given values",
			strategy: "strategy: {type: canary, steps: [10, 100], bake: 1m}\n",
			want:     Strategy{Type: Canary, Steps: []int{10, 100}, Bake: Duration(time.Minute)},
		},
		{
			name:     "rolling keeps given values",
			strategy: "strategy: {type: rolling, batchSize: 3, bake: 90}\n",
			want:     Strategy{Type: Rolling, BatchSize: 3, Bake: Duration(90 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(head + tt.strategy))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got.Strategy, tt.want) {
				t.Errorf("Strategy = %+v, want %+v", got.Strategy, tt.want)
			}
			if got.Health.Interval != Duration(30*time.Second) {
				t.Errorf("Health.Interval = %v, want 30s", got.Health.Interval.D())
			}
			if got.Health.Timeout != Duration(10*time.Second) {
				t.Errorf("Health.Timeout = %v, want 10s", got.Health.Timeout.D())
			}
			if got.Timeout != Duration(2*time.Hour) {
				t.Errorf("Timeout = %v, want 2h", got.Timeout.D())
			}
			if d := got.Platform.Docker; d.Replicas != 1 || d.Network != "stagecraft" {
				t.Errorf("Docker = %+v, want replicas 1, network stagecraft", *d)
			}
		})
	}
}

func TestWithDefaultsChecks(t *testing.T) {
	s := Spec{Health: Health{
		Timeout: Duration(3 * time.Second),
		Checks: []Check{
			{Name: "a", HTTP: &HTTPCheck{URL: "http://x/"}},
			{Name: "b", HTTP: &HTTPCheck{URL: "http://x/", ExpectStatus: StatusSet{"204"}, Timeout: Duration(time.Second)}},
			{Name: "c", TCP: &TCPCheck{Address: AddressPlaceholder}},
		},
	}}
	got := s.WithDefaults()
	tests := []struct {
		name        string
		gotTimeout  Duration
		wantTimeout Duration
		gotStatus   string
		wantStatus  string
	}{
		{"http defaults", got.Health.Checks[0].HTTP.Timeout, Duration(3 * time.Second), got.Health.Checks[0].HTTP.ExpectStatus.String(), "200"},
		{"http explicit", got.Health.Checks[1].HTTP.Timeout, Duration(time.Second), got.Health.Checks[1].HTTP.ExpectStatus.String(), "204"},
		{"tcp defaults", got.Health.Checks[2].TCP.Timeout, Duration(3 * time.Second), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gotTimeout != tt.wantTimeout {
				t.Errorf("timeout = %v, want %v", tt.gotTimeout.D(), tt.wantTimeout.D())
			}
			if tt.gotStatus != tt.wantStatus {
				t.Errorf("expectStatus = %s, want %s", tt.gotStatus, tt.wantStatus)
			}
		})
	}
	t.Run("input not mutated", func(t *testing.T) {
		if s.Health.Checks[0].HTTP.ExpectStatus != nil || s.Health.Checks[2].TCP.Timeout != 0 {
			t.Errorf("WithDefaults mutated its receiver's checks: %+v", s.Health.Checks)
		}
	})
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(m map[string]any)
		raw    string // used instead of edit when set
		field  string
		substr string // optional, in the problem's message
		absent string // optional, a field that must not be reported
	}{
		{name: "service missing", edit: func(m map[string]any) { delete(m, "service") }, field: "service", substr: "required"},
		{name: "service uppercase", edit: func(m map[string]any) { m["service"] = "Hello" }, field: "service"},
		{name: "service too long", edit: func(m map[string]any) { m["service"] = strings.Repeat("a", 64) }, field: "service"},
		{name: "image missing", edit: func(m map[string]any) { delete(m, "image") }, field: "image", substr: "required"},
		{name: "image malformed", edit: func(m map[string]any) { m["image"] = "Bad Image" }, field: "image"},
		{name: "execution id too long", edit: func(m map[string]any) { m["executionId"] = strings.Repeat("x", 201) }, field: "executionId"},
		{name: "negative timeout", edit: func(m map[string]any) { m["timeout"] = "-1s" }, field: "timeout"},
		{name: "no platform", edit: func(m map[string]any) { delete(m, "platform") }, field: "platform"},
		{name: "empty platform", edit: func(m map[string]any) { m["platform"] = map[string]any{} }, field: "platform"},
		{name: "replicas negative", edit: func(m map[string]any) { docker(m)["replicas"] = -1 }, field: "platform.docker.replicas"},
		{name: "replicas too many", edit: func(m map[string]any) { docker(m)["replicas"] = MaxReplicas + 1 }, field: "platform.docker.replicas"},
		{name: "port missing", edit: func(m map[string]any) { delete(docker(m), "port") }, field: "platform.docker.port"},
		{name: "port too high", edit: func(m map[string]any) { docker(m)["port"] = 65536 }, field: "platform.docker.port"},
		{name: "env key", edit: func(m map[string]any) { docker(m)["env"] = map[string]any{"1BAD": "x"} }, field: "platform.docker.env.1BAD"},
		{name: "reserved label prefix", edit: func(m map[string]any) {
			docker(m)["labels"] = map[string]any{"stagecraft.role": "x"}
		}, field: "platform.docker.labels.stagecraft.role", substr: "reserved"},
		{name: "network", edit: func(m map[string]any) { docker(m)["network"] = "bad net" }, field: "platform.docker.network"},
		{name: "strategy type missing", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{}
		}, field: "strategy.type", substr: "required", absent: "strategy.bake"},
		{name: "strategy type unknown", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{"type": "big-bang"}
		}, field: "strategy.type", absent: "strategy.bake"},
		{name: "steps not increasing", edit: func(m map[string]any) { strategy(m)["steps"] = []int{50, 25, 100} }, field: "strategy.steps[1]"},
		{name: "step over 100", edit: func(m map[string]any) { strategy(m)["steps"] = []int{50, 150} }, field: "strategy.steps[1]"},
		{name: "step zero", edit: func(m map[string]any) { strategy(m)["steps"] = []int{0, 100} }, field: "strategy.steps[0]"},
		{name: "last step not 100", edit: func(m map[string]any) { strategy(m)["steps"] = []int{25, 50} }, field: "strategy.steps", substr: "last step"},
		{name: "steps on rolling", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{"type": "rolling", "steps": []int{100}}
		}, field: "strategy.steps", substr: "only applies to canary"},
		{name: "batch size negative", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{"type": "rolling", "batchSize": -1}
		}, field: "strategy.batchSize"},
		{name: "batch size on canary", edit: func(m map[string]any) { strategy(m)["batchSize"] = 2 }, field: "strategy.batchSize", substr: "only applies to rolling"},
		{name: "bake negative", edit: func(m map[string]any) { strategy(m)["bake"] = "-20s" }, field: "strategy.bake"},
		{name: "recreate bake negative", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{"type": "recreate", "bake": "-1m"}
		}, field: "strategy.bake"},
		{name: "bake before switch negative", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{"type": "blue-green", "bakeBeforeSwitch": "-1m"}
		}, field: "strategy.bakeBeforeSwitch"},
		{name: "bake after switch negative", edit: func(m map[string]any) {
			m["strategy"] = map[string]any{"type": "blue-green", "bakeAfterSwitch": "-1m"}
		}, field: "strategy.bakeAfterSwitch"},
		{name: "health interval too short", edit: func(m map[string]any) { health(m)["interval"] = "50ms" }, field: "health.interval"},
		{name: "health timeout negative", edit: func(m map[string]any) { health(m)["timeout"] = "-1s" }, field: "health.timeout"},
		{name: "check name missing", edit: func(m map[string]any) { check(m, 0)["name"] = "" }, field: "health.checks[0].name", substr: "required"},
		{name: "check name duplicate", edit: func(m map[string]any) {
			health(m)["checks"] = append(health(m)["checks"].([]any), map[string]any{
				"name": "healthz", "tcp": map[string]any{"address": "{{.Address}}"}})
		}, field: "health.checks[1].name", substr: "twice"},
		{name: "check without kind", edit: func(m map[string]any) { delete(check(m, 0), "http") }, field: "health.checks[0]", substr: "one of http, tcp, command or prometheus"},
		{name: "check with both kinds", edit: func(m map[string]any) {
			check(m, 0)["tcp"] = map[string]any{"address": "{{.Address}}"}
		}, field: "health.checks[0]", substr: "only one"},
		{name: "http url missing", edit: func(m map[string]any) { httpCheck(m)["url"] = "" }, field: "health.checks[0].http.url", substr: "required"},
		{name: "http url not http", edit: func(m map[string]any) { httpCheck(m)["url"] = "ftp://{{.Address}}/" }, field: "health.checks[0].http.url"},
		{name: "http url no host", edit: func(m map[string]any) { httpCheck(m)["url"] = "/healthz" }, field: "health.checks[0].http.url"},
		{name: "expect status too high", edit: func(m map[string]any) { httpCheck(m)["expectStatus"] = 600 }, field: "health.checks[0].http.expectStatus"},
		{name: "expect status too low", edit: func(m map[string]any) { httpCheck(m)["expectStatus"] = 99 }, field: "health.checks[0].http.expectStatus"},
		{name: "http timeout negative", edit: func(m map[string]any) { httpCheck(m)["timeout"] = "-1s" }, field: "health.checks[0].http.timeout"},
		{name: "tcp address", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "port", "tcp": map[string]any{"address": "localhost"}}}
		}, field: "health.checks[0].tcp.address"},
		{name: "tcp timeout negative", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "port", "tcp": map[string]any{"address": "{{.Address}}", "timeout": "-1s"}}}
		}, field: "health.checks[0].tcp.timeout"},
		{name: "expect status class bad", edit: func(m map[string]any) { httpCheck(m)["expectStatus"] = "6xx" }, field: "health.checks[0].http.expectStatus"},
		{name: "expect status not a status", edit: func(m map[string]any) { httpCheck(m)["expectStatus"] = true }, field: "spec", substr: "expectStatus"},
		{name: "body regex", edit: func(m map[string]any) { httpCheck(m)["bodyRegex"] = "([a-z" }, field: "health.checks[0].http.bodyRegex", substr: "does not compile"},
		{name: "json path missing", edit: func(m map[string]any) {
			httpCheck(m)["json"] = []any{map[string]any{"equals": "ok"}}
		}, field: "health.checks[0].http.json[0].path"},
		{name: "header name", edit: func(m map[string]any) { httpCheck(m)["headers"] = map[string]any{"X Bad": "1"} }, field: "health.checks[0].http.headers"},
		{name: "max latency negative", edit: func(m map[string]any) { httpCheck(m)["maxLatency"] = "-1s" }, field: "health.checks[0].http.maxLatency"},
		{name: "failure threshold", edit: func(m map[string]any) { health(m)["failureThreshold"] = -1 }, field: "health.failureThreshold"},
		{name: "min samples", edit: func(m map[string]any) { health(m)["minSamples"] = -2 }, field: "health.minSamples"},
		{name: "on no data", edit: func(m map[string]any) { health(m)["onNoData"] = "ignore" }, field: "health.onNoData", substr: "fail, hold, pass"},
		{name: "on degraded", edit: func(m map[string]any) { health(m)["onDegraded"] = "panic" }, field: "health.onDegraded", substr: "continue, pause, fail"},
		{name: "verify window negative", edit: func(m map[string]any) { health(m)["verifyWindow"] = "-1m" }, field: "health.verifyWindow"},
		{name: "command argv missing", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "cmd", "command": map[string]any{}}}
		}, field: "health.checks[0].command.argv", substr: "required"},
		{name: "command relative path", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "cmd", "command": map[string]any{"argv": []any{"curl", "-f", "x"}}}}
		}, field: "health.checks[0].command.argv[0]", substr: "absolute path"},
		{name: "command exit code", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "cmd", "command": map[string]any{"argv": []any{"/bin/true"}, "expectExit": 300}}}
		}, field: "health.checks[0].command.expectExit"},
		{name: "prometheus url", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "p", "prometheus": map[string]any{"url": "prom:9090", "query": "up", "op": "<", "threshold": 1}}}
		}, field: "health.checks[0].prometheus.url"},
		{name: "prometheus query", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "p", "prometheus": map[string]any{"url": "http://127.0.0.1:9090", "query": " ", "op": "<", "threshold": 1}}}
		}, field: "health.checks[0].prometheus.query", substr: "required"},
		{name: "prometheus op", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "p", "prometheus": map[string]any{"url": "http://127.0.0.1:9090", "query": "up", "op": "=<", "threshold": 1}}}
		}, field: "health.checks[0].prometheus.op"},
		{name: "prometheus on empty", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "p", "prometheus": map[string]any{"url": "http://127.0.0.1:9090", "query": "up", "op": "<", "threshold": 1, "onEmpty": "hold"}}}
		}, field: "health.checks[0].prometheus.onEmpty"},
		{name: "dependency without kind", edit: func(m map[string]any) {
			health(m)["dependencies"] = []any{map[string]any{"name": "db"}}
		}, field: "health.dependencies[0]", substr: "one of"},
		{name: "dependency name clashes with a check", edit: func(m map[string]any) {
			health(m)["dependencies"] = []any{map[string]any{"name": "healthz", "tcp": map[string]any{"address": "127.0.0.1:5432"}}}
		}, field: "health.dependencies[0].name", substr: "twice"},
		{name: "baseline unknown check", edit: func(m map[string]any) {
			health(m)["baselines"] = []any{map[string]any{"check": "nope", "max": "200ms"}}
		}, field: "health.baselines[0].check", substr: "http check"},
		{name: "baseline percentile", edit: func(m map[string]any) {
			health(m)["baselines"] = []any{map[string]any{"check": "healthz", "max": "200ms", "percentile": 120}}
		}, field: "health.baselines[0].percentile"},
		{name: "baseline max", edit: func(m map[string]any) {
			health(m)["baselines"] = []any{map[string]any{"check": "healthz"}}
		}, field: "health.baselines[0].max"},
		{name: "unknown top-level field", edit: func(m map[string]any) { m["replicas"] = 3 }, field: "spec", substr: "unknown field"},
		{name: "unknown nested field", edit: func(m map[string]any) { httpCheck(m)["expect_status"] = 200 }, field: "spec", substr: "unknown field"},
		{name: "bad duration string", edit: func(m map[string]any) { strategy(m)["bake"] = "twenty seconds" }, field: "spec", substr: "invalid duration"},
		{name: "wrong type", edit: func(m map[string]any) { docker(m)["replicas"] = "four" }, field: "spec"},
		{name: "not yaml", raw: "service: [unclosed", field: "spec"},
		{name: "empty document", raw: "", field: "service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := []byte(tt.raw)
			if tt.raw == "" && tt.edit != nil {
				m := seedMap()
				tt.edit(m)
				input = mustJSONBytes(t, m)
			}
			_, err := Parse(input)
			ve := validationError(t, err)
			p, ok := problemFor(ve, tt.field)
			if !ok {
				t.Fatalf("no problem for field %q; got %v", tt.field, ve.Problems)
			}
			if tt.substr != "" && !strings.Contains(p.Message, tt.substr) {
				t.Errorf("problem %q: message %q does not contain %q", p.Field, p.Message, tt.substr)
			}
			if tt.absent != "" {
				if p, ok := problemFor(ve, tt.absent); ok {
					t.Errorf("spurious problem %v", p)
				}
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	input := `service: Bad_Name
image: ""
platform:
  docker:
    replicas: 0
    port: 0
    env: {1BAD: x}
strategy:
  type: canary
  steps: [50, 25]
health:
  interval: 10ms
  checks:
    - name: a
    - name: a
      http: {url: "ftp://x", expectStatus: 700}
`
	_, err := Parse([]byte(input))
	ve := validationError(t, err)
	want := []string{
		"service",
		"image",
		"platform.docker.port", // replicas 0 is defaulted to 1
		"platform.docker.env.1BAD",
		"strategy.steps[1]",
		"strategy.steps",
		"health.interval",
		"health.checks[0]",
		"health.checks[1].name",
		"health.checks[1].http.url",
		"health.checks[1].http.expectStatus",
	}
	for _, f := range want {
		t.Run(f, func(t *testing.T) {
			if _, ok := problemFor(ve, f); !ok {
				t.Errorf("no problem for %q; got %v", f, ve.Problems)
			}
		})
	}
	t.Run("error text lists every problem", func(t *testing.T) {
		msg := err.Error()
		if !strings.HasPrefix(msg, "invalid spec: ") {
			t.Errorf("Error() = %q, want prefix %q", msg, "invalid spec: ")
		}
		for _, p := range ve.Problems {
			if !strings.Contains(msg, p.Field+": "+p.Message) {
				t.Errorf("Error() = %q, missing %q", msg, p.Error())
			}
		}
	})
}

func TestValidateAcceptsValid(t *testing.T) {
	tests := []struct {
		name string
		edit func(m map[string]any)
	}{
		{name: "seed", edit: func(map[string]any) {}},
		{name: "registry image with port and digest", edit: func(m map[string]any) {
			m["image"] = "registry.local:5000/team/app:1.2.3@sha256:" + strings.Repeat("a", 64)
		}},
		{name: "uppercase tag", edit: func(m map[string]any) { m["image"] = "app:V2_rc.1" }},
		{name: "single step", edit: func(m map[string]any) { strategy(m)["steps"] = []int{100} }},
		{name: "tcp host port", edit: func(m map[string]any) {
			health(m)["checks"] = []any{map[string]any{"name": "db", "tcp": map[string]any{"address": "127.0.0.1:5432"}}}
		}},
		{name: "https check with body", edit: func(m map[string]any) {
			httpCheck(m)["url"] = "https://{{.Address}}/ready"
			httpCheck(m)["bodyContains"] = "ok"
		}},
		{name: "no checks", edit: func(m map[string]any) { delete(health(m), "checks") }},
		{name: "durations as seconds", edit: func(m map[string]any) {
			strategy(m)["bake"] = 1.5
			health(m)["interval"] = 1
		}},
		{name: "labels without reserved prefix", edit: func(m map[string]any) {
			docker(m)["labels"] = map[string]any{"team": "web", "stagecraftish": "ok"}
		}},
		{name: "max replicas", edit: func(m map[string]any) { docker(m)["replicas"] = MaxReplicas }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := seedMap()
			tt.edit(m)
			if _, err := Parse(mustJSONBytes(t, m)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	base := mustParse(t, seedYAML)

	otherImage := base
	otherImage.Image = "stagecraft-demo:v3"

	withExec := base
	withExec.ExecutionID = "release-42"

	// An unnormalized spec and its parsed form are the same request.
	raw := Spec{Service: "hello", Image: "stagecraft-demo:v2",
		Platform: Platform{Docker: &Docker{Replicas: 4, Port: 8080, Env: map[string]string{"GREETING": "hello"}}},
		Strategy: Strategy{Type: Canary, Steps: []int{25, 50, 100}, Bake: Duration(20 * time.Second)},
		Health: Health{Interval: Duration(2 * time.Second), Checks: []Check{{Name: "healthz",
			HTTP: &HTTPCheck{URL: "http://{{.Address}}/healthz"}}}},
	}

	tests := []struct {
		name  string
		a, b  Spec
		equal bool
	}{
		{name: "equal specs", a: base, b: mustParse(t, seedYAML), equal: true},
		{name: "defaults do not change the id", a: base, b: raw, equal: true},
		{name: "image differs", a: base, b: otherImage, equal: false},
	}
	for _, tt := range tests {
		t.Run("RequestID/"+tt.name, func(t *testing.T) {
			a, b := tt.a.RequestID(), tt.b.RequestID()
			if !strings.HasPrefix(a, "spec-") {
				t.Errorf("RequestID = %q, want prefix spec-", a)
			}
			if (a == b) != tt.equal {
				t.Errorf("RequestID %q vs %q: equal = %v, want %v", a, b, a == b, tt.equal)
			}
		})
	}
	t.Run("RequestID/execution id", func(t *testing.T) {
		if got := withExec.RequestID(); got != "release-42" {
			t.Errorf("RequestID = %q, want the execution ID", got)
		}
	})
	t.Run("WorkflowID", func(t *testing.T) {
		if got := base.WorkflowID(); got != "deploy:docker:hello" {
			t.Errorf("WorkflowID = %q, want deploy:docker:hello", got)
		}
		if got := base.TargetKey(); got != "docker:hello" {
			t.Errorf("TargetKey = %q, want docker:hello", got)
		}
	})
	t.Run("PlatformName none", func(t *testing.T) {
		if got := (Spec{}).PlatformName(); got != "" {
			t.Errorf("PlatformName = %q, want empty", got)
		}
	})
	t.Run("spec JSON round trip", func(t *testing.T) {
		var back Spec
		if err := json.Unmarshal(mustJSONBytes(t, base), &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, base) {
			t.Errorf("round trip mismatch\n got: %s\nwant: %s", mustJSON(t, back), mustJSON(t, base))
		}
		if back.RequestID() != base.RequestID() {
			t.Errorf("RequestID changed across a JSON round trip")
		}
	})
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Duration
		out     string // expected re-marshalled form
		wantErr bool
	}{
		{name: "seconds string", in: `"20s"`, want: Duration(20 * time.Second), out: `"20s"`},
		{name: "minutes string", in: `"5m"`, want: Duration(5 * time.Minute), out: `"5m0s"`},
		{name: "compound", in: `"1h30m"`, want: Duration(90 * time.Minute), out: `"1h30m0s"`},
		{name: "milliseconds", in: `"250ms"`, want: Duration(250 * time.Millisecond), out: `"250ms"`},
		{name: "zero", in: `"0s"`, want: 0, out: `"0s"`},
		{name: "number of seconds", in: `30`, want: Duration(30 * time.Second), out: `"30s"`},
		{name: "fractional seconds", in: `1.5`, want: Duration(1500 * time.Millisecond), out: `"1.5s"`},
		{name: "bad string", in: `"soon"`, wantErr: true},
		{name: "missing unit", in: `"20"`, wantErr: true},
		{name: "bool", in: `true`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, want error", tt.in, d.D())
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if d != tt.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tt.in, d.D(), tt.want.D())
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.out {
				t.Errorf("Marshal = %s, want %s", b, tt.out)
			}
			var back Duration
			if err := json.Unmarshal(b, &back); err != nil || back != d {
				t.Errorf("round trip = %v, %v; want %v", back.D(), err, d.D())
			}
		})
	}
}

// seedMap is seedYAML as written (no defaults) as a fresh generic map, for
// building variants; clearing a field is then not masked by a filled default.
func seedMap() map[string]any {
	return map[string]any{
		"service": "hello",
		"image":   "stagecraft-demo:v2",
		"platform": map[string]any{"docker": map[string]any{
			"replicas": 4, "port": 8080, "env": map[string]any{"GREETING": "hello"},
		}},
		"strategy": map[string]any{"type": "canary", "steps": []any{25, 50, 100}, "bake": "20s"},
		"health": map[string]any{"interval": "2s", "checks": []any{
			map[string]any{"name": "healthz", "http": map[string]any{
				"url": "http://{{.Address}}/healthz", "expectStatus": 200,
			}},
		}},
	}
}

func docker(m map[string]any) map[string]any {
	return m["platform"].(map[string]any)["docker"].(map[string]any)
}
func strategy(m map[string]any) map[string]any { return m["strategy"].(map[string]any) }
func health(m map[string]any) map[string]any   { return m["health"].(map[string]any) }
func check(m map[string]any, i int) map[string]any {
	return health(m)["checks"].([]any)[i].(map[string]any)
}
func httpCheck(m map[string]any) map[string]any { return check(m, 0)["http"].(map[string]any) }

func mustParse(t *testing.T, in string) Spec {
	t.Helper()
	s, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

func validationError(t *testing.T, err error) *ValidationError {
	t.Helper()
	if err == nil {
		t.Fatal("Parse succeeded, want a *ValidationError")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatal("ValidationError has no problems")
	}
	return ve
}

func problemFor(ve *ValidationError, field string) (FieldError, bool) {
	for _, p := range ve.Problems {
		if p.Field == field {
			return p, true
		}
	}
	return FieldError{}, false
}

func mustJSONBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t *testing.T, v any) string { return string(mustJSONBytes(t, v)) }

func TestExpectStatusForms(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		matches []int
		misses  []int
	}{
		{`200`, `[200]`, []int{200}, []int{201}},
		{`"2xx"`, `["2xx"]`, []int{200, 204, 299}, []int{300, 500}},
		{`[200, "3XX", 404]`, `[200,"3xx",404]`, []int{200, 301, 404}, []int{201, 500}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var s StatusSet
			if err := json.Unmarshal([]byte(tt.in), &s); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(s)
			if string(b) != tt.want {
				t.Errorf("round trip = %s, want %s", b, tt.want)
			}
			for _, c := range tt.matches {
				if !s.Contains(c) {
					t.Errorf("%v does not contain %d", s, c)
				}
			}
			for _, c := range tt.misses {
				if s.Contains(c) {
					t.Errorf("%v contains %d", s, c)
				}
			}
		})
	}
}

func TestHealthDefaults(t *testing.T) {
	s := Spec{Health: Health{
		Checks:       []Check{{Name: "p", Prometheus: &PrometheusCheck{URL: "http://127.0.0.1:9090", Query: "up", Op: ">", Threshold: 0}}},
		Dependencies: []Check{{Name: "c", Command: &CommandCheck{Argv: []string{"/bin/true"}}}},
		Baselines:    []Baseline{{Check: "x", Max: Duration(time.Second)}},
	}}.WithDefaults().Health
	got := fmt.Sprintf("%d %d %s %s %s %s %s %g %d", s.FailureThreshold, s.MinSamples, s.OnNoData, s.OnDegraded,
		s.Checks[0].Prometheus.OnEmpty, s.Checks[0].Prometheus.Timeout.D(), s.Dependencies[0].Command.Timeout.D(),
		s.Baselines[0].Percentile, s.Baselines[0].Window)
	if want := "1 1 fail continue no-data 10s 10s 95 20"; got != want {
		t.Errorf("defaults = %q, want %q", got, want)
	}
}
