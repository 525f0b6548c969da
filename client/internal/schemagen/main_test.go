package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/spec"
)

const root = "../../.."

// TestCommittedSchemasAreCurrent regenerates the schemas in memory and
// fails when the committed files differ, so a change to the spec types
// cannot leave them behind.
func TestCommittedSchemasAreCurrent(t *testing.T) {
	files, err := Generate(root)
	require.NoError(t, err)
	require.Len(t, files, 2)
	for _, f := range files {
		committed, err := os.ReadFile(filepath.Join(root, SchemaDir, f.Name))
		require.NoError(t, err)
		if !bytes.Equal(committed, f.Data) {
			t.Errorf("%s/%s is stale: the spec types changed; run `go generate ./client` and commit the result", SchemaDir, f.Name)
		}
	}
}

// TestSchemasAcceptTheExamples checks every example the project ships
// (health-reference.yaml uses every health option) against the schemas,
// and that the schemas refuse what the parser refuses on shape.
func TestSchemasAcceptTheExamples(t *testing.T) {
	files, err := Generate(root)
	require.NoError(t, err)
	schemas := map[string]map[string]any{}
	for _, f := range files {
		var s map[string]any
		require.NoError(t, json.Unmarshal(f.Data, &s), f.Name)
		schemas[f.Name] = s
	}
	examples, err := filepath.Glob(filepath.Join(root, "deployments", "examples", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			y, err := os.ReadFile(path)
			require.NoError(t, err)
			b, err := yaml.YAMLToJSON(y)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(b, &doc))
			name := "spec.schema.json"
			if _, ok := doc["services"]; ok {
				name = "release.schema.json"
			}
			require.Empty(t, validate(schemas[name], schemas[name], doc, ""), "the example is valid; the schema must accept it")

			// And as `starter validate` prints it: every default applied.
			var parsed any
			if name == "release.schema.json" {
				parsed, err = spec.ParseRelease(y)
			} else {
				parsed, err = spec.Parse(y)
			}
			require.NoError(t, err)
			b, err = json.Marshal(parsed)
			require.NoError(t, err)
			doc = nil
			require.NoError(t, json.Unmarshal(b, &doc))
			require.Empty(t, validate(schemas[name], schemas[name], doc, ""), "with defaults: %s", b)
		})
	}

	good, err := json.Marshal(spec.Spec{
		Service: "hello", Image: "stagecraft-demo:v2",
		Platform: spec.Platform{Docker: &spec.Docker{Port: 8080}},
		Strategy: spec.Strategy{Type: spec.Canary, Bake: spec.Duration(90e9)},
		Health:   spec.Health{Checks: []spec.Check{{Name: "h", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/", ExpectStatus: spec.StatusSet{"2xx"}}}}},
	})
	require.NoError(t, err)
	for _, tt := range []struct {
		name, edit, want string
	}{
		{"valid", `{}`, ""},
		{"duration in seconds", `{"timeout": 90}`, ""},
		{"status list", `{"health": {"checks": [{"name": "h", "http": {"url": "http://x/", "expectStatus": [200, "3xx"]}}]}}`, ""},
		{"unknown field", `{"replicas": 3}`, "/replicas: unknown field"},
		{"no service", `{"service": null}`, "/service: required"},
		{"two platforms", `{"platform": {"docker": {"port": 1}, "kubernetes": {"deployment": "d"}}}`, "/platform: more than 1 properties"},
		{"unknown strategy", `{"strategy": {"type": "yolo"}}`, "/strategy/type: \"yolo\" is not one of"},
		{"bad duration", `{"timeout": "5 minutes"}`, "/timeout: matches none"},
		{"two check kinds", `{"health": {"checks": [{"name": "h", "http": {"url": "u"}, "tcp": {"address": "a:1"}}]}}`, "/health/checks/0: matches 2 of oneOf"},
		{"set by releases only", `{"release": "release:prod/x"}`, "/release: unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var doc, edit map[string]any
			require.NoError(t, json.Unmarshal(good, &doc))
			require.NoError(t, json.Unmarshal([]byte(tt.edit), &edit))
			for k, v := range edit {
				if v == nil {
					delete(doc, k)
				} else {
					doc[k] = v
				}
			}
			problems := validate(schemas["spec.schema.json"], schemas["spec.schema.json"], doc, "")
			if tt.want == "" {
				require.Empty(t, problems)
				return
			}
			require.NotEmpty(t, problems)
			require.Contains(t, strings.Join(problems, "\n"), tt.want)
		})
	}
}

// validate checks v against the subset of JSON Schema the generator
// emits, enough to catch a schema that refuses a valid example.
func validate(rootSchema map[string]any, schema, v any, at string) []string {
	s, ok := schema.(map[string]any)
	if !ok { // true or false
		if schema == false {
			return []string{at + ": not allowed"}
		}
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		def := rootSchema["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")]
		return validate(rootSchema, def, v, at)
	}
	var out []string
	fail := func(format string, args ...any) { out = append(out, at+": "+fmt.Sprintf(format, args...)) }
	if typ, ok := s["type"].(string); ok && !hasType(v, typ) {
		fail("is not %s", typ)
		return out
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		fail("%q is not one of %v", v, enum)
	}
	if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(v.(string)) {
		fail("%q does not match %s", v, p)
	}
	if m, ok := s["minimum"].(float64); ok && v.(float64) < m {
		fail("%v is less than %v", v, m)
	}
	if m, ok := s["maximum"].(float64); ok && v.(float64) > m {
		fail("%v is more than %v", v, m)
	}
	if alts, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(validate(rootSchema, a, v, at)) == 0 {
				n++
			}
		}
		switch n {
		case 0:
			fail("matches none of oneOf")
		case 1:
		default:
			fail("matches %d of oneOf", n)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range asList(s["required"]) {
			if _, ok := v[r.(string)]; !ok {
				out = append(out, at+"/"+r.(string)+": required")
			}
		}
		if m, ok := s["maxProperties"].(float64); ok && float64(len(v)) > m {
			fail("more than %v properties", m)
		}
		if m, ok := s["minProperties"].(float64); ok && float64(len(v)) < m {
			fail("fewer than %v properties", m)
		}
		props, _ := s["properties"].(map[string]any)
		for k, e := range v {
			switch p, ok := props[k]; {
			case ok:
				out = append(out, validate(rootSchema, p, e, at+"/"+k)...)
			case s["additionalProperties"] == false:
				out = append(out, at+"/"+k+": unknown field")
			case s["additionalProperties"] != nil:
				out = append(out, validate(rootSchema, s["additionalProperties"], e, at+"/"+k)...)
			}
		}
	case []any:
		if m, ok := s["minItems"].(float64); ok && float64(len(v)) < m {
			fail("fewer than %v items", m)
		}
		if items, ok := s["items"]; ok {
			for i, e := range v {
				out = append(out, validate(rootSchema, items, e, fmt.Sprintf("%s/%d", at, i))...)
			}
		}
	}
	return out
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return false
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
