package spec

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// examplesDir holds the bundled examples: specs and releases at the top,
// the Kubernetes objects the Kubernetes examples roll out under kubernetes/.
var examplesDir = filepath.Join("..", "..", "deployments", "examples")

// TestExamplesParse keeps every bundled example valid, and leaves none out:
// every file under deployments/examples must be one this test knows how to
// read (a spec or release at the top, *.yaml, which the schema test and the
// fuzz seeds also glob; a manifest under kubernetes/), and must parse. A
// release is told by its services (as the schema test tells it) and must be
// named release*.yaml; a spec on Kubernetes must be named kubernetes-*.yaml,
// which is what deployments/examples_integration_test.go runs against a
// real control plane. Every strategy has an example on each platform, and
// some release mixes the platforms.
func TestExamplesParse(t *testing.T) {
	var specs, releases, manifests []string
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(examplesDir, path)
		switch {
		case d.IsDir():
			if rel != "." && rel != "kubernetes" {
				t.Errorf("%s/: no example may live here (only the top level and kubernetes/ are read)", rel)
				return fs.SkipDir
			}
		case filepath.Ext(rel) != ".yaml":
			t.Errorf("%s: an example is a .yaml file (others are read by nothing)", rel)
		case filepath.Dir(rel) == "kubernetes":
			manifests = append(manifests, path)
		case isRelease(t, path):
			releases = append(releases, path)
		default:
			specs = append(specs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) < 8 || len(releases) < 2 || len(manifests) < 1 {
		t.Fatalf("want the example specs, releases and manifests, found %d, %d, %d", len(specs), len(releases), len(manifests))
	}

	// platform → strategies with an example
	covered := map[string][]string{}
	for _, f := range specs {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			s, err := Parse(read(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(name, "release") {
				t.Errorf("a spec, named as a release")
			}
			onKube := s.Platform.Kubernetes != nil
			if onKube != strings.HasPrefix(name, "kubernetes-") {
				t.Errorf("on %s: a spec is named kubernetes-*.yaml exactly when it is on Kubernetes (those are run against the control plane)", s.PlatformName())
			}
			covered[s.PlatformName()] = append(covered[s.PlatformName()], s.Strategy.Type)
		})
	}
	mixed := false
	for _, f := range releases {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			r, err := ParseRelease(read(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(name, "release") {
				t.Errorf("a release, not named release*.yaml")
			}
			platforms := map[string]bool{}
			for _, s := range r.Services {
				platforms[s.Deploy.PlatformName()] = true
			}
			mixed = mixed || len(platforms) > 1
		})
	}
	for _, f := range manifests {
		t.Run("kubernetes/"+filepath.Base(f), func(t *testing.T) {
			docs := yamlDocuments(t, read(t, f))
			if len(docs) == 0 {
				t.Fatal("no objects")
			}
			for i, doc := range docs {
				var o struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
					Metadata   struct {
						Name      string `json:"name"`
						Namespace string `json:"namespace"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal(doc, &o); err != nil {
					t.Fatalf("object %d: %v", i, err)
				}
				// The integration test creates these (and checks them fully:
				// the apiserver validates them) in a namespace of its own.
				if !slices.Contains([]string{"apps/v1 Deployment", "v1 Service"}, o.APIVersion+" "+o.Kind) || o.Metadata.Name == "" || o.Metadata.Namespace != "" {
					t.Errorf("object %d: %s %s %q in %q: want a named apps/v1 Deployment or v1 Service with no namespace (it is applied with -n)",
						i, o.APIVersion, o.Kind, o.Metadata.Name, o.Metadata.Namespace)
				}
			}
		})
	}
	for _, platform := range []string{PlatformDocker, PlatformKubernetes} {
		for _, strategy := range []string{Canary, BlueGreen, Rolling, Recreate} {
			if !slices.Contains(covered[platform], strategy) {
				t.Errorf("no %s example on %s", strategy, platform)
			}
		}
	}
	if !mixed {
		t.Error("no release mixes platforms")
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isRelease tells a release from a spec by its services, as the schema test
// does.
func isRelease(t *testing.T, path string) bool {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(read(t, path), &doc); err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return false
	}
	_, ok := doc["services"]
	return ok
}

// yamlDocuments splits a multi-document YAML file at its "---" lines.
func yamlDocuments(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var docs [][]byte
	for _, doc := range bytes.Split(append([]byte("\n"), b...), []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

// stripComments drops whole-line comments, so a header alone is no document.
func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
