// Command schemagen writes the JSON Schemas of Stagecraft's inputs for
// callers in other languages: deployments/schema/spec.schema.json (a
// rollout's workflow input) and release.schema.json (a release's). They
// are generated from the Go types in internal/spec, with their doc
// comments as descriptions, so they cannot drift: a test regenerates them
// and compares. Run it with `go generate ./client`.
//
// The schemas describe shape (names, types, required fields, enums, one of
// a kind); the workflows' validation stays the authority on values and
// rejects a bad spec with every problem, naming each field.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// SchemaDir is where the schemas live, relative to the module's root.
const SchemaDir = "deployments/schema"

const (
	specSource = "internal/spec"
	idBase     = "https://github.com/stagecraft/stagecraft/" + SchemaDir + "/"
)

func main() {
	root := flag.String("root", ".", "the module's root directory")
	flag.Parse()
	files, err := Generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	dir := filepath.Join(*root, SchemaDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "schemagen:", err)
			os.Exit(1)
		}
	}
}

// File is one generated schema.
type File struct {
	Name string
	Data []byte
}

// Generate builds the schemas, reading doc comments from the module at
// root.
func Generate(root string) ([]File, error) {
	docs, err := docComments(filepath.Join(root, specSource))
	if err != nil {
		return nil, err
	}
	var out []File
	for _, s := range []struct {
		name, title string
		v           any
	}{
		{"spec.schema.json", "Stagecraft rollout spec", spec.Spec{}},
		{"release.schema.json", "Stagecraft release", spec.Release{}},
	} {
		b, err := json.MarshalIndent(reflectSchema(s.v, idBase+s.name, s.title, docs), "", "  ")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out = append(out, File{Name: s.name, Data: append(b, '\n')})
	}
	return out, nil
}

var (
	durationType  = reflect.TypeFor[spec.Duration]()
	statusSetType = reflect.TypeFor[spec.StatusSet]()
	secretType    = reflect.TypeFor[spec.SecretValue]()
)

func reflectSchema(v any, id, title string, docs map[string]string) *jsonschema.Schema {
	r := &jsonschema.Reflector{
		Anonymous:      true,
		ExpandedStruct: true,
		// Required fields are listed below: most fields without omitempty
		// have defaults, so omitempty does not say what is required.
		RequiredFromJSONSchemaTags: true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			// A fresh schema per use: the reflector writes each field's
			// description into it.
			switch t {
			case durationType:
				return &jsonschema.Schema{Ref: "#/$defs/Duration"}
			case statusSetType:
				return &jsonschema.Schema{Ref: "#/$defs/StatusSet"}
			case secretType:
				return &jsonschema.Schema{Ref: "#/$defs/SecretValue"}
			}
			return nil
		},
		LookupComment: func(t reflect.Type, field string) string {
			if t.PkgPath() != durationType.PkgPath() {
				return ""
			}
			if field == "" {
				return docs[t.Name()]
			}
			return docs[t.Name()+"."+field]
		},
	}
	s := r.Reflect(v)
	s.ID = jsonschema.ID(id)
	s.Title = title
	s.Definitions["Duration"] = durationSchema(docs)
	s.Definitions["StatusSet"] = statusSetSchema(docs)
	s.Definitions["SecretValue"] = &jsonschema.Schema{
		Description: docs["SecretValue"],
		OneOf:       []*jsonschema.Schema{{Type: "string"}, {Ref: "#/$defs/SecretRef"}},
		Examples:    []any{"Bearer …", map[string]any{"fromEnv": "HOOK_TOKEN"}, map[string]any{"fromFile": "/run/secrets/hook-token"}},
	}
	constrain(s, reflect.TypeOf(v).Name())
	for name, d := range s.Definitions {
		constrain(d, name)
	}
	return s
}

func durationSchema(docs map[string]string) *jsonschema.Schema {
	return &jsonschema.Schema{
		Description: docs["Duration"] + " A number is a count of seconds.",
		OneOf: []*jsonschema.Schema{
			{Type: "string", Pattern: `^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$|^0$`, Examples: []any{"500ms", "30s", "5m", "1h30m"}},
			{Type: "number", Minimum: json.Number("0")},
		},
	}
}

func statusSetSchema(docs map[string]string) *jsonschema.Schema {
	status := func() []*jsonschema.Schema {
		return []*jsonschema.Schema{
			{Type: "integer", Minimum: json.Number("100"), Maximum: json.Number("599")},
			{Type: "string", Pattern: `^([1-5][0-9][0-9]|[1-5][xX][xX])$`},
		}
	}
	return &jsonschema.Schema{
		Description: docs["StatusSet"],
		OneOf: append(status(), &jsonschema.Schema{
			Type: "array", MinItems: ptr(uint64(1)), Items: &jsonschema.Schema{OneOf: status()},
		}),
		Examples: []any{200, "2xx", []any{200, 204}},
	}
}

func ptr[T any](v T) *T { return &v }

// required lists, per type, the fields a request must give: the ones
// without a default that validation requires.
var required = map[string][]string{
	"Spec":            {"service", "image", "platform", "strategy"},
	"Docker":          {"port"},
	"Kubernetes":      {"deployment"},
	"Strategy":        {"type"},
	"Check":           {"name"},
	"Criterion":       {"name", "category", "severity"},
	"HTTPCheck":       {"url"},
	"JSONMatch":       {"path"},
	"TCPCheck":        {"address"},
	"CommandCheck":    {"argv"},
	"PrometheusCheck": {"url", "query", "op"},
	"Baseline":        {"check", "max"},
	"Approval":        {"before"},
	"Release":         {"name", "environment", "services"},
	"ReleaseService":  {"name", "deploy"},
	"ReleaseStage":    {"services"},
	"Integration":     {"checks"},
	"Requirement":     {"service", "version"},
}

// enums lists, per type and field, the values a field takes.
var enums = map[string]map[string][]any{
	"Strategy": {"type": {spec.Canary, spec.BlueGreen, spec.Rolling, spec.Recreate}},
	"Health": {
		"onNoData":   {spec.NoDataFail, spec.NoDataHold, spec.NoDataPass},
		"onDegraded": {spec.DegradedContinue, spec.DegradedPause, spec.DegradedFail},
	},
	"PrometheusCheck": {
		"op":      {"<", "<=", ">", ">=", "==", "!="},
		"onEmpty": {spec.EmptyNoData, spec.EmptyFail, spec.EmptyPass},
	},
	"Approval":     {"onTimeout": {spec.OnTimeoutAbort, spec.OnTimeoutProceed}},
	"Kubernetes":   {"checkVia": {spec.CheckViaPodIP, spec.CheckViaPortForward}},
	"Release":      {"mode": {spec.Parallel, spec.Sequential}},
	"ReleaseStage": {"mode": {spec.Parallel, spec.Sequential}},
	"Criterion": {
		"severity": {spec.SeverityCritical, spec.SeverityWarning},
		"category": {"performance", "security", "operational", "monitoring", "documentation"},
	},
}

// constrain adds to the schema of the named type what reflection cannot
// know: required fields, enums, exactly one platform or check kind.
func constrain(s *jsonschema.Schema, name string) {
	if s.Properties == nil {
		return
	}
	s.Required = required[name]
	for f, values := range enums[name] {
		if p, ok := s.Properties.Get(f); ok {
			p.Enum = values
		}
	}
	if ev, ok := s.Properties.Get("events"); ok && name == "Notification" {
		ev.Items.Enum = toAny(spec.NotifyEvents)
	}
	switch name {
	case "Platform":
		s.MinProperties, s.MaxProperties = ptr(uint64(1)), ptr(uint64(1))
	case "Check", "Criterion":
		for _, kind := range []string{"http", "tcp", "command", "prometheus"} {
			s.OneOf = append(s.OneOf, &jsonschema.Schema{Required: []string{kind}})
		}
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// docComments reads the doc comments of the exported types and struct
// fields of the Go package in dir, keyed "Type" and "Type.Field", as
// one-line paragraphs.
func docComments(dir string) (map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	docs := map[string]string{}
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("read doc comments: %w", err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, sp := range gd.Specs {
				ts := sp.(*ast.TypeSpec)
				if !ts.Name.IsExported() {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				docs[ts.Name.Name] = text(doc)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fld := range st.Fields.List {
					c := fld.Doc
					if c == nil {
						c = fld.Comment
					}
					for _, n := range fld.Names {
						if n.IsExported() && c != nil {
							docs[ts.Name.Name+"."+n.Name] = text(c)
						}
					}
				}
			}
		}
	}
	return docs, nil
}

// text joins a comment's lines into paragraphs.
func text(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	var paras []string
	for _, p := range strings.Split(strings.TrimSpace(c.Text()), "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}
