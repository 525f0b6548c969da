package workflows

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWorkflowsReadNoPlatformFields holds the rule that platform facts stay
// in the platform: the workflow code asks a snapshot for its Count and
// Images and internal/platform for a converge's budget, and never reads a
// Docker or Kubernetes field of a spec or a snapshot itself.
func TestWorkflowsReadNoPlatformFields(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		checked++
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				switch sel.Sel.Name {
				case "Kubernetes", "Docker", "Instances":
					t.Errorf("%s reads .%s: ask the platform (internal/platform) instead", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	require.Greater(t, checked, 5)
}
