package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesParse keeps every bundled example spec valid.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deployments", "examples", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("want the example specs, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(filepath.Base(f), "release") {
				if _, err := ParseRelease(b); err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, err := Parse(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}
