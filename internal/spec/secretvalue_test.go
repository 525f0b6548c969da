package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

// secretRefSpec gives a check header, a webhook's URL and header and a
// Slack URL as references the worker resolves (review finding 14).
const secretRefSpec = `
service: hello
image: stagecraft-demo:v2
platform:
  docker: {port: 8080}
strategy: {type: rolling}
health:
  checks:
    - name: healthz
      http:
        url: http://{{.Address}}/healthz
        headers:
          X-Probe: stagecraft
          Authorization: {fromEnv: PROBE_TOKEN}
notifications:
  - webhookFrom: {fromFile: /run/secrets/hook-url}
    headers:
      Authorization: {fromEnv: HOOK_TOKEN}
      X-Team: payments
  - slackFrom: {fromEnv: SLACK_URL}
`

// TestSecretReferencesInSpec: header values and notification URLs may be
// references; a plain header stays a plain string in JSON, so existing
// specs and histories read the same; only the reference is encoded.
func TestSecretReferencesInSpec(t *testing.T) {
	s, err := Parse([]byte(secretRefSpec))
	if err != nil {
		t.Fatalf("spec with secret references rejected: %v", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"X-Probe":"stagecraft"`,
		`"Authorization":{"fromEnv":"PROBE_TOKEN"}`,
		`"webhookFrom":{"fromFile":"/run/secrets/hook-url"}`,
		`"Authorization":{"fromEnv":"HOOK_TOKEN"}`,
		`"X-Team":"payments"`,
		`"slackFrom":{"fromEnv":"SLACK_URL"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoded spec lacks %s: %s", want, b)
		}
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode the encoded spec: %v", err)
	}
	b2, _ := json.Marshal(back)
	if string(b2) != string(b) {
		t.Errorf("round trip changed the spec:\n%s\n%s", b, b2)
	}
}

func TestSecretReferenceProblems(t *testing.T) {
	tests := []struct {
		name, yaml, field, msg string
	}{
		{"bad env name", `{fromEnv: "1X"}`, "health.checks[0].http.headers.Authorization.fromEnv", "not a valid environment variable name"},
		{"relative file", `{fromFile: run/token}`, "health.checks[0].http.headers.Authorization.fromFile", "clean absolute path"},
		{"two sources", `{fromEnv: A, fromFile: /a}`, "health.checks[0].http.headers.Authorization", "exactly one source"},
		{"secretKeyRef", `{secretKeyRef: {name: a, key: b}}`, "health.checks[0].http.headers.Authorization.secretKeyRef", "does not apply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.Replace(secretRefSpec, "{fromEnv: PROBE_TOKEN}", tt.yaml, 1)
			_, err := Parse([]byte(y))
			if err == nil || !strings.Contains(err.Error(), tt.field+": ") || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Parse: %v; want %s: …%s…", err, tt.field, tt.msg)
			}
		})
	}
	t.Run("unknown field", func(t *testing.T) {
		y := strings.Replace(secretRefSpec, "{fromEnv: PROBE_TOKEN}", "{fromEnvv: X}", 1)
		if _, err := Parse([]byte(y)); err == nil {
			t.Fatal("a reference with an unknown field was accepted")
		}
	})
	t.Run("two targets", func(t *testing.T) {
		y := strings.Replace(secretRefSpec, "  - slackFrom: {fromEnv: SLACK_URL}", "  - slackFrom: {fromEnv: SLACK_URL}\n    webhook: https://hooks.example.com/x", 1)
		_, err := Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), "notifications[1]: only one of webhook, webhookFrom, slack and slackFrom") {
			t.Fatalf("Parse: %v; want the two targets named", err)
		}
	})
}

// TestSignatureHeadersReserved: a spec cannot set the headers the sender
// signs with.
func TestSignatureHeadersReserved(t *testing.T) {
	for _, h := range []string{"X-Stagecraft-Signature", "x-stagecraft-timestamp"} {
		y := strings.Replace(secretRefSpec, "      X-Team: payments", "      X-Team: payments\n      "+h+": v1=00", 1)
		_, err := Parse([]byte(y))
		if err == nil || !strings.Contains(err.Error(), "notifications[0].headers."+h+": is set by stagecraft") {
			t.Errorf("header %s: %v; want it refused as set by stagecraft", h, err)
		}
	}
}
