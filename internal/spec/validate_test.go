package spec

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// boundsSpec is a valid canary (steps 25/50/100, bake 5m, interval 30s)
// with one HTTP check, defaults not applied.
func boundsSpec() Spec {
	return Spec{
		Service:  "hello",
		Image:    "stagecraft-demo:v2",
		Platform: Platform{Docker: &Docker{Replicas: 4, Port: 8080}},
		Strategy: Strategy{Type: Canary, Steps: []int{25, 50, 100}, Bake: Duration(5 * time.Minute)},
		Health: Health{Interval: Duration(30 * time.Second), Checks: []Check{
			{Name: "healthz", HTTP: &HTTPCheck{URL: "http://{{.Address}}/healthz"}},
		}},
	}
}

// wantProblem checks that err refuses field with a message holding msg,
// without repeating the value; field "" wants err nil.
func wantProblem(t *testing.T, err error, field, msg string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("want valid, got %v", err)
		}
		return
	}
	ve := validationError(t, err)
	p, ok := problemFor(ve, field)
	if !ok {
		t.Fatalf("want a problem on %s, got %v", field, err)
	}
	if !strings.Contains(p.Message, msg) {
		t.Fatalf("%s: %q does not say %q", field, p.Message, msg)
	}
	if len(p.Message) > 1000 || len(p.Field) > 200 {
		t.Fatalf("the problem repeats the value: %d-byte field, %d-byte message", len(p.Field), len(p.Message))
	}
}

// TestApprovalWindowsFitTimeout (finding 12): a gate's whole window and
// the bakes fit in the rollout's timeout, so onTimeout applies. Without an
// explicit timeout the default fits the gates; an explicit one too short
// is refused, naming approval.timeout and timeout. Without approval the
// default timeout is 2h as before.
func TestApprovalWindowsFitTimeout(t *testing.T) {
	gated := func(edit func(s *Spec)) Spec {
		s := boundsSpec()
		s.Approval = &Approval{Before: []int{100}, OnTimeout: OnTimeoutProceed}
		if edit != nil {
			edit(&s)
		}
		return s
	}
	t.Run("default timeout fits the default window", func(t *testing.T) {
		s := gated(nil).WithDefaults()
		// 24h window + 3 bakes of 5m + 2h for the rest.
		if want := 24*time.Hour + 15*time.Minute + 2*time.Hour; s.Timeout.D() != want {
			t.Fatalf("timeout %s, want %s so the 24h gate can time out and proceed", s.Timeout.D(), want)
		}
		if s.Timeout.D() < s.Approval.Timeout.D() {
			t.Fatalf("timeout %s is shorter than the approval window %s: onTimeout never applies", s.Timeout.D(), s.Approval.Timeout.D())
		}
		wantProblem(t, s.Validate(), "", "")
	})
	t.Run("parsed with every default", func(t *testing.T) {
		s := mustParse(t, `service: hello
image: stagecraft-demo:v2
platform: {docker: {replicas: 4, port: 8080}}
strategy: {type: canary}
approval: {before: [100], onTimeout: proceed}
`)
		// 24h + 4 default bakes of 5m + 2h.
		if want := 26*time.Hour + 20*time.Minute; s.Timeout.D() != want {
			t.Fatalf("timeout %s, want %s", s.Timeout.D(), want)
		}
	})
	t.Run("explicit timeout too short for the default window", func(t *testing.T) {
		s := gated(func(s *Spec) { s.Timeout = Duration(2 * time.Hour) })
		err := s.WithDefaults().Validate()
		wantProblem(t, err, "approval.timeout", "more than timeout 2h0m0s")
		wantProblem(t, err, "approval.timeout", `onTimeout "proceed" would never apply`)
	})
	t.Run("explicit timeout that fits exactly", func(t *testing.T) {
		s := gated(func(s *Spec) {
			s.Approval.Timeout = Duration(time.Hour)
			s.Timeout = Duration(time.Hour + 15*time.Minute)
		})
		wantProblem(t, s.WithDefaults().Validate(), "", "")
		s.Timeout--
		wantProblem(t, s.WithDefaults().Validate(), "approval.timeout", "needs 1h15m0s, more than timeout 1h14m59.999999999s")
	})
	t.Run("every gate counts", func(t *testing.T) {
		s := gated(func(s *Spec) {
			s.Approval.Before = []int{25, 50, 100}
			s.Approval.Timeout = Duration(time.Hour)
			s.Timeout = Duration(3 * time.Hour)
		})
		wantProblem(t, s.WithDefaults().Validate(), "approval.timeout", "for each of 3 gate(s), with the bakes, needs 3h15m0s")
		s.Timeout = 0
		if got, want := s.WithDefaults().Timeout.D(), 5*time.Hour+15*time.Minute; got != want {
			t.Fatalf("default timeout %s, want %s", got, want)
		}
	})
	t.Run("rolling batches and blue-green's keep time count", func(t *testing.T) {
		r := boundsSpec()
		r.Strategy = Strategy{Type: Rolling, BatchSize: 1, Bake: Duration(time.Minute)}
		r.Approval = &Approval{Before: []int{25, 50, 75, 100}, Timeout: Duration(time.Hour)}
		if gates, need := r.WithDefaults().ApprovalNeeds(); gates != 4 || need != 4*time.Hour+4*time.Minute {
			t.Fatalf("rolling 4 × 1: %d gates, %s; want 4, 4h4m", gates, need)
		}
		b := boundsSpec()
		b.Strategy = Strategy{Type: BlueGreen, KeepBlueFor: Duration(time.Hour)}
		b.Approval = &Approval{Before: []int{100}, Timeout: Duration(time.Hour)}
		if gates, need := b.WithDefaults().ApprovalNeeds(); gates != 1 || need != 2*time.Hour+6*time.Minute {
			t.Fatalf("blue-green: %d gates, %s; want 1, 2h6m", gates, need)
		}
	})
	t.Run("without approval nothing changes", func(t *testing.T) {
		s := boundsSpec().WithDefaults()
		if s.Timeout.D() != DefaultRolloutTimeout {
			t.Fatalf("timeout %s, want the default %s", s.Timeout.D(), DefaultRolloutTimeout)
		}
		// Bakes beyond the timeout are the caller's to promote through.
		s.Timeout = Duration(8 * time.Minute)
		wantProblem(t, s.Validate(), "", "")
	})
	t.Run("an explicit timeout is kept", func(t *testing.T) {
		s := gated(func(s *Spec) { s.Timeout = Duration(48 * time.Hour) }).WithDefaults()
		if s.Timeout.D() != 48*time.Hour {
			t.Fatalf("timeout %s, want 48h as given", s.Timeout.D())
		}
	})
}

// TestBounds (finding 13): every duration, count and length has an upper
// bound, and durations fit the rollout's timeout: each value at its limit
// is accepted, just past it refused, naming the field and the limit.
func TestBounds(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	image := func(n int) string { return "r/" + long(n-5) + ":v2" } // n bytes
	env := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("K%d", i)] = "v"
		}
		return m
	}
	checks := func(n int) []Check {
		out := make([]Check, n)
		for i := range out {
			out[i] = Check{Name: fmt.Sprint("c", i), TCP: &TCPCheck{Address: "{{.Address}}"}}
		}
		return out
	}
	notes := func(n int) []Notification {
		out := make([]Notification, n)
		for i := range out {
			out[i] = Notification{Webhook: "https://hooks.example.com/x"}
		}
		return out
	}
	const day = 24 * time.Hour
	tests := []struct {
		name  string
		edit  func(s *Spec)
		field string // "" when valid
		msg   string
	}{
		{"timeout at 30 days", func(s *Spec) { s.Timeout = Duration(MaxTimeout) }, "", ""},
		{"timeout past 30 days", func(s *Spec) { s.Timeout = Duration(MaxTimeout + 1) }, "timeout", "more than 720h0m0s (30 days)"},
		{"bake at the timeout", func(s *Spec) { s.Strategy.Bake = Duration(2 * time.Hour) }, "", ""},
		{"bake past the timeout", func(s *Spec) { s.Strategy.Bake = Duration(2*time.Hour + 1) }, "strategy.bake", "longer than timeout 2h0m0s"},
		{"bake past 30 days", func(s *Spec) { s.Strategy.Bake = Duration(MaxTimeout + 1) }, "strategy.bake", "30 days"},
		{"interval at 1h", func(s *Spec) { s.Health.Interval = Duration(time.Hour) }, "", ""},
		{"interval past 1h", func(s *Spec) { s.Health.Interval = Duration(time.Hour + 1) }, "health.interval", "more than 1h0m0s"},
		{"interval past the timeout", func(s *Spec) {
			s.Timeout, s.Strategy.Bake, s.Health.Interval = Duration(time.Minute), Duration(time.Minute), Duration(time.Minute+1)
		}, "health.interval", "longer than timeout 1m0s"},
		{"minSamples rounds within the timeout", func(s *Spec) { s.Health.MinSamples = 240 }, "", ""},
		{"minSamples rounds past the timeout", func(s *Spec) { s.Health.MinSamples = 241 }, "health.minSamples", "longer than timeout 2h0m0s"},
		{"minSamples past 1000", func(s *Spec) { s.Timeout, s.Health.MinSamples = Duration(MaxTimeout), MaxRounds+1 }, "health.minSamples", "at most 1000"},
		{"failureThreshold past 1000", func(s *Spec) { s.Health.FailureThreshold = MaxRounds + 1 }, "health.failureThreshold", "at most 1000"},
		{"verifyWindow at the timeout", func(s *Spec) { s.Health.VerifyWindow = Duration(2 * time.Hour) }, "", ""},
		{"verifyWindow past the timeout", func(s *Spec) { s.Health.VerifyWindow = Duration(2*time.Hour + 1) }, "health.verifyWindow", "longer than timeout"},
		{"check timeout at 5m", func(s *Spec) { s.Health.Timeout = Duration(MaxCheckTimeout) }, "", ""},
		{"check timeout past 5m", func(s *Spec) { s.Health.Timeout = Duration(MaxCheckTimeout + 1) }, "health.timeout", "more than 5m0s"},
		{"an http check's timeout past 5m", func(s *Spec) { s.Health.Checks[0].HTTP.Timeout = Duration(MaxCheckTimeout + 1) }, "health.checks[0].http.timeout", "more than 5m0s"},
		{"maxLatency past 5m", func(s *Spec) { s.Health.Checks[0].HTTP.MaxLatency = Duration(MaxCheckTimeout + 1) }, "health.checks[0].http.maxLatency", "more than 5m0s"},
		{"keepBlueFor past the timeout", func(s *Spec) {
			s.Strategy = Strategy{Type: BlueGreen, KeepBlueFor: Duration(2*time.Hour + 1)}
		}, "strategy.keepBlueFor", "longer than timeout"},
		{"keepBlueFor at the timeout", func(s *Spec) { s.Strategy = Strategy{Type: BlueGreen, KeepBlueFor: Duration(2 * time.Hour)} }, "", ""},
		{"approval window at 30 days", func(s *Spec) {
			s.Approval = &Approval{Before: []int{100}, Timeout: Duration(MaxTimeout - 15*time.Minute)}
			s.Timeout = Duration(MaxTimeout)
		}, "", ""},
		{"approval window past 30 days", func(s *Spec) {
			s.Approval = &Approval{Before: []int{100}, Timeout: Duration(MaxTimeout + 1)}
		}, "approval.timeout", "30 days"},
		{"progressDeadline at 6h", func(s *Spec) {
			s.Platform = Platform{Kubernetes: &Kubernetes{Deployment: "hello", ProgressDeadline: Duration(MaxProgressDeadline)}}
		}, "", ""},
		{"progressDeadline past 6h", func(s *Spec) {
			s.Platform = Platform{Kubernetes: &Kubernetes{Deployment: "hello", ProgressDeadline: Duration(MaxProgressDeadline + 1)}}
		}, "platform.kubernetes.progressDeadline", "more than 6h0m0s"},
		{"batchSize past 1000", func(s *Spec) { s.Strategy = Strategy{Type: Rolling, BatchSize: MaxReplicas + 1} }, "strategy.batchSize", "at most 1000"},
		{"image at 512 bytes", func(s *Spec) { s.Image = image(MaxImageLength) }, "", ""},
		{"image past 512 bytes", func(s *Spec) { s.Image = image(MaxImageLength + 1) }, "image", "513 bytes long, more than the 512 allowed"},
		{"environment at 63 bytes", func(s *Spec) { s.Environment = long(63) }, "", ""},
		{"environment past 63 bytes", func(s *Spec) { s.Environment = long(64) }, "environment", "more than the 63 allowed"},
		{"environment not a name", func(s *Spec) { s.Environment = "Prod EU" }, "environment", "lowercase letters"},
		{"executionId at 200 bytes", func(s *Spec) { s.ExecutionID = long(MaxExecutionIDLength) }, "", ""},
		{"executionId past 200 bytes", func(s *Spec) { s.ExecutionID = long(MaxExecutionIDLength + 1) }, "executionId", "more than the 200 allowed"},
		{"executionId with a line break", func(s *Spec) { s.ExecutionID = "a\nb" }, "executionId", "printable"},
		{"env at 1000 entries", func(s *Spec) { s.Platform.Docker.Env = env(MaxEntries) }, "", ""},
		{"env past 1000 entries", func(s *Spec) { s.Platform.Docker.Env = env(MaxEntries + 1) }, "platform.docker.env", "1001 entries, more than the 1000 allowed"},
		{"env value at 64 KiB", func(s *Spec) { s.Platform.Docker.Env = map[string]string{"A": long(MaxValueLength)} }, "", ""},
		{"env value past 64 KiB", func(s *Spec) { s.Platform.Docker.Env = map[string]string{"A": long(MaxValueLength + 1)} }, "platform.docker.env.A", "more than the 65536 allowed"},
		{"env name past 128 bytes", func(s *Spec) { s.Platform.Docker.Env = map[string]string{"A" + long(MaxNameLength): "v"} }, "platform.docker.env", "name 129 bytes long"},
		{"label value past 64 KiB", func(s *Spec) { s.Platform.Docker.Labels = map[string]string{"team": long(MaxValueLength + 1)} }, "platform.docker.labels.team", "more than the 65536 allowed"},
		{"labels past 100 entries", func(s *Spec) { s.Platform.Docker.Labels = env(MaxEntries + 1) }, "platform.docker.labels", "more than the 1000 allowed"},
		{"kubeconfig past 4096 bytes", func(s *Spec) {
			s.Platform = Platform{Kubernetes: &Kubernetes{Deployment: "hello", Kubeconfig: "/" + long(MaxPathLength)}}
		}, "platform.kubernetes.kubeconfig", "more than the 4096 allowed"},
		{"header value past 64 KiB", func(s *Spec) {
			s.Health.Checks[0].HTTP.Headers = PlainValues(map[string]string{"X": long(MaxValueLength + 1)})
		}, "health.checks[0].http.headers.X", "more than the 65536 allowed"},
		{"spec past 256 KiB", func(s *Spec) {
			s.Platform.Docker.Env = map[string]string{"A": long(MaxValueLength), "B": long(MaxValueLength), "C": long(MaxValueLength), "D": long(MaxValueLength)}
		}, "spec", "more than the 262144 bytes (256 KiB) allowed"},
		{"network past 128 bytes", func(s *Spec) { s.Platform.Docker.Network = long(MaxNameLength + 1) }, "platform.docker.network", "more than the 128 allowed"},
		{"checks at 50", func(s *Spec) { s.Health.Checks = checks(MaxChecks) }, "", ""},
		{"checks past 50", func(s *Spec) { s.Health.Checks = checks(MaxChecks + 1) }, "health.checks", "51 entries, more than the 50 allowed"},
		{"check URL past 2048 bytes", func(s *Spec) { s.Health.Checks[0].HTTP.URL = "http://{{.Address}}/" + long(MaxURLLength) }, "health.checks[0].http.url", "more than the 2048 allowed"},
		{"notifications at 20", func(s *Spec) { s.Notifications = notes(MaxNotifications) }, "", ""},
		{"notifications past 20", func(s *Spec) { s.Notifications = notes(MaxNotifications + 1) }, "notifications", "21 entries, more than the 20 allowed"},
		{"notification URL past 2048 bytes", func(s *Spec) {
			s.Notifications = []Notification{{Webhook: "https://h.example.com/" + long(MaxURLLength)}}
		}, "notifications[0].webhook", "more than the 2048 allowed"},
		{"a week's rollout with an hourly interval", func(s *Spec) {
			s.Timeout, s.Strategy.Bake, s.Health.Interval = Duration(7*day), Duration(day), Duration(time.Hour)
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := boundsSpec()
			tt.edit(&s)
			err := s.WithDefaults().Validate()
			wantProblem(t, err, tt.field, tt.msg)
			if tt.field == "" {
				if _, err := Parse(mustJSONBytes(t, s)); err != nil {
					t.Fatalf("valid but Parse refuses it: %v", err)
				}
			}
		})
	}
}

// TestReviewCrafted (finding 13): the values the review found accepted
// and breaking later are refused, each naming its field.
func TestReviewCrafted(t *testing.T) {
	tests := []struct {
		name, field string
		edit        func(s *Spec)
	}{
		{"timeout 2562047h47m", "timeout", func(s *Spec) { _ = s.Timeout.UnmarshalJSON([]byte(`"2562047h47m"`)) }},
		{"interval 1000h", "health.interval", func(s *Spec) { s.Health.Interval = Duration(1000 * time.Hour) }},
		{"verifyWindow 100000h", "health.verifyWindow", func(s *Spec) { s.Health.VerifyWindow = Duration(100000 * time.Hour) }},
		{"20,000-character image", "image", func(s *Spec) { s.Image = "r/" + strings.Repeat("a", 20000) + ":v2" }},
		{"75 KB environment", "environment", func(s *Spec) { s.Environment = strings.Repeat("e", 75_000) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := boundsSpec()
			tt.edit(&s)
			_, err := Parse(mustJSONBytes(t, s))
			ve := validationError(t, err)
			if _, ok := problemFor(ve, tt.field); !ok {
				t.Fatalf("want a problem on %s, got %v", tt.field, err)
			}
			if len(err.Error()) > 2000 {
				t.Fatalf("the error repeats the value: %d bytes", len(err.Error()))
			}
		})
	}
}

// TestReleaseBounds (finding 13): a release's durations and counts have
// upper bounds too, and its services' specs are held to theirs.
func TestReleaseBounds(t *testing.T) {
	base := func() Release {
		return Release{Name: "shop", Environment: "prod", Services: []ReleaseService{svc("db"), svc("api", "db")}}
	}
	tests := []struct {
		name  string
		edit  func(r *Release)
		field string
		msg   string
	}{
		{"timeout at 30 days", func(r *Release) { r.Timeout = Duration(MaxReleaseTimeout) }, "", ""},
		{"timeout past 30 days", func(r *Release) { r.Timeout = Duration(MaxReleaseTimeout + 1) }, "timeout", "30 days"},
		{"activation timeout past the release's", func(r *Release) {
			r.Timeout, r.ActivationTimeout = Duration(time.Hour), Duration(time.Hour+1)
		}, "activationTimeout", "longer than timeout 1h0m0s"},
		{"stage timeout past 30 days", func(r *Release) {
			r.Stages = []ReleaseStage{{Services: []string{"db"}, Timeout: Duration(MaxReleaseTimeout + 1)}, {Services: []string{"api"}}}
		}, "stages[0].timeout", "30 days"},
		{"config value past 64 KiB", func(r *Release) { r.Config = map[string]string{"A": strings.Repeat("x", MaxValueLength+1)} }, "config.A", "more than the 65536 allowed"},
		{"integration interval past 1h", func(r *Release) {
			r.Integration = &Integration{Checks: []Check{{Name: "up", TCP: &TCPCheck{Address: "127.0.0.1:80"}}}, Interval: Duration(time.Hour + 1)}
		}, "integration.interval", "more than 1h0m0s"},
		{"a service's image past 512 bytes", func(r *Release) { r.Services[0].Deploy.Image = "r/" + strings.Repeat("a", 600) }, "services[0].deploy.image", "more than the 512 allowed"},
		{"a service's timeout past 30 days", func(r *Release) { r.Services[1].Deploy.Timeout = Duration(MaxTimeout + 1) }, "services[1].deploy.timeout", "30 days"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.edit(&r)
			wantProblem(t, r.WithDefaults().Validate(), tt.field, tt.msg)
		})
	}
}

// TestRulesUnbounded: under the rules before bounds a spec is judged as it
// was, so workflow code replaying a run started then reaches the same verdict.
func TestRulesUnbounded(t *testing.T) {
	s := boundsSpec()
	s.Timeout = Duration(2 * time.Hour)
	s.Approval = &Approval{Before: []int{100}}
	s.Image = "r/" + strings.Repeat("a", 600)
	s.Health.Interval = Duration(1000 * time.Hour)
	d := s.WithDefaults()
	if err := d.ValidateUnder(RulesUnbounded); err != nil {
		t.Fatalf("under the old rules: %v", err)
	}
	ve := validationError(t, d.Validate())
	for _, f := range []string{"image", "health.interval", "approval.timeout"} {
		if _, ok := problemFor(ve, f); !ok {
			t.Errorf("current rules: no problem on %s in %v", f, ve)
		}
	}
}

func TestSaturatingArithmetic(t *testing.T) {
	const maxD = time.Duration(1<<63 - 1)
	if got := SatAdd(maxD, time.Minute); got != maxD {
		t.Errorf("SatAdd(max, 1m) = %v", got)
	}
	if got := SatAdd(-maxD, -time.Hour); got != -maxD-1 {
		t.Errorf("SatAdd(-max, -1h) = %v", got)
	}
	if got := SatAdd(time.Hour, time.Minute); got != time.Hour+time.Minute {
		t.Errorf("SatAdd(1h, 1m) = %v", got)
	}
	if got := SatMul(maxD/2, 3); got != maxD {
		t.Errorf("SatMul(max/2, 3) = %v", got)
	}
	if got := SatMul(time.Hour, 3); got != 3*time.Hour {
		t.Errorf("SatMul(1h, 3) = %v", got)
	}
}

// TestExecutionIDIsNotAWorkflowID: controls take an ID that starts with
// deploy: or release: for a workflow ID, so an execution ID spelled like
// one is refused: it could never be addressed as itself.
func TestExecutionIDIsNotAWorkflowID(t *testing.T) {
	for _, id := range []string{"deploy:docker:hello", "release:prod/shop"} {
		s := boundsSpec()
		s.ExecutionID = id
		wantProblem(t, s.WithDefaults().Validate(), "executionId", "names a workflow ID")
	}
	s := boundsSpec()
	s.ExecutionID = "build-42"
	wantProblem(t, s.WithDefaults().Validate(), "", "")
	s.ExecutionID = "deploy:docker:hello"
	if err := s.WithDefaults().ValidateUnder(RulesUnbounded); err != nil {
		t.Fatalf("a run started before the bounds keeps its execution ID: %v", err)
	}
}
