package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSecretEnv(t *testing.T) {
	const dockerBase = `
service: hello
image: stagecraft-demo:v2
platform:
  docker:
    port: 8080
    env: {GREETING: hi}
    secretEnv:
      DB_PASSWORD: {fromEnv: APP_DB_PASSWORD}
      API_TOKEN: {fromFile: /run/secrets/api-token}
strategy: {type: rolling}
`
	const kubeBase = `
service: payment
image: registry.local/payment:v2
platform:
  kubernetes:
    deployment: payment
    secretEnv:
      DB_PASSWORD: {secretKeyRef: {name: payment-db, key: password}}
strategy: {type: canary}
`
	for _, base := range []string{dockerBase, kubeBase} {
		if _, err := Parse([]byte(base)); err != nil {
			t.Fatalf("valid spec rejected: %v", err)
		}
	}
	s, _ := Parse([]byte(dockerBase))
	if got := s.Platform.Docker.SecretEnv["DB_PASSWORD"]; got.FromEnv != "APP_DB_PASSWORD" || got.String() != `environment variable "APP_DB_PASSWORD"` {
		t.Errorf("secretEnv.DB_PASSWORD = %+v (%s)", got, got)
	}

	for _, c := range []struct {
		name, base, replace, with string
		fields                    []string
		substr                    string
	}{
		{"bad name", dockerBase, "DB_PASSWORD:", "1DB:", []string{"platform.docker.secretEnv.1DB"}, "valid environment variable name"},
		{"no source", dockerBase, "{fromEnv: APP_DB_PASSWORD}", "{}", []string{"platform.docker.secretEnv.DB_PASSWORD"}, "exactly one source"},
		{"two sources", dockerBase, "{fromEnv: APP_DB_PASSWORD}", "{fromEnv: A, fromFile: /a}", []string{"platform.docker.secretEnv.DB_PASSWORD"}, "fromEnv and fromFile"},
		{"bad variable", dockerBase, "fromEnv: APP_DB_PASSWORD", "fromEnv: APP-DB", []string{"platform.docker.secretEnv.DB_PASSWORD.fromEnv"}, "APP-DB"},
		{"relative path", dockerBase, "/run/secrets/api-token", "secrets/api-token", []string{"platform.docker.secretEnv.API_TOKEN.fromFile"}, "absolute path"},
		{"unclean path", dockerBase, "/run/secrets/api-token", "/run/../etc/passwd", []string{"platform.docker.secretEnv.API_TOKEN.fromFile"}, "absolute path"},
		{"clash with env", dockerBase, "DB_PASSWORD:", "GREETING:", []string{"platform.docker.secretEnv.GREETING"}, "also set in platform.docker.env"},
		{"secretKeyRef on docker", dockerBase, "{fromEnv: APP_DB_PASSWORD}", "{secretKeyRef: {name: db, key: pw}}", []string{"platform.docker.secretEnv.DB_PASSWORD.secretKeyRef"}, "only applies to kubernetes"},
		{"fromEnv on kubernetes", kubeBase, "{secretKeyRef: {name: payment-db, key: password}}", "{fromEnv: APP_DB_PASSWORD}", []string{"platform.kubernetes.secretEnv.DB_PASSWORD.fromEnv"}, "workflow history"},
		{"fromFile on kubernetes", kubeBase, "{secretKeyRef: {name: payment-db, key: password}}", "{fromFile: /run/pw}", []string{"platform.kubernetes.secretEnv.DB_PASSWORD.fromFile"}, "use secretKeyRef"},
		{"no source on kubernetes", kubeBase, "{secretKeyRef: {name: payment-db, key: password}}", "{}", []string{"platform.kubernetes.secretEnv.DB_PASSWORD"}, "secretKeyRef"},
		{"secret name missing", kubeBase, "name: payment-db, ", "", []string{"platform.kubernetes.secretEnv.DB_PASSWORD.secretKeyRef.name"}, "required"},
		{"bad secret name", kubeBase, "name: payment-db", "name: Payment_DB", []string{"platform.kubernetes.secretEnv.DB_PASSWORD.secretKeyRef.name"}, "Payment_DB"},
		{"bad secret key", kubeBase, "key: password", "key: 'pass word'", []string{"platform.kubernetes.secretEnv.DB_PASSWORD.secretKeyRef.key"}, "not a valid Secret key"},
		{"bad kubernetes name", kubeBase, "DB_PASSWORD:", "DB PASSWORD:", []string{"platform.kubernetes.secretEnv.DB PASSWORD"}, "valid environment variable name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(c.base, c.replace, c.with, 1)
			if doc == c.base {
				t.Fatalf("replacement %q not found", c.replace)
			}
			_, err := Parse([]byte(doc))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Field)
				if slices.Contains(c.fields, p.Field) && !strings.Contains(p.Message, c.substr) {
					t.Errorf("%s: message %q lacks %q", p.Field, p.Message, c.substr)
				}
			}
			if !slices.Equal(got, c.fields) {
				t.Errorf("problems at %v, want %v (%v)", got, c.fields, err)
			}
		})
	}
}

func TestReleaseConfigLeavesSecretEnv(t *testing.T) {
	r := Release{
		Config: map[string]string{"DB_PASSWORD": "plain", "REGION": "eu"},
		Services: []ReleaseService{{Name: "api", Deploy: Spec{Service: "api", Platform: Platform{Docker: &Docker{
			SecretEnv: map[string]SecretRef{"DB_PASSWORD": {FromEnv: "API_DB_PASSWORD"}},
		}}}}},
	}
	d := r.configure(r.Services[0]).Platform.Docker
	if _, ok := d.Env["DB_PASSWORD"]; ok || d.Env["REGION"] != "eu" {
		t.Errorf("env = %v; want REGION only, DB_PASSWORD left to secretEnv", d.Env)
	}
}
