package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/stagecraft/stagecraft/internal/platform/kubernetes"
)

var clusterName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// parseClusters reads --cluster NAME=KUBECONFIG[:CONTEXT] entries; a name
// twice, a bad name or a kubeconfig that is not a readable file stops the
// worker at start.
func parseClusters(entries []string) (map[string]kubernetes.Cluster, error) {
	out := map[string]kubernetes.Cluster{}
	for _, e := range entries {
		name, rest, ok := strings.Cut(e, "=")
		if !ok || rest == "" {
			return nil, fmt.Errorf("--cluster %q: want NAME=KUBECONFIG[:CONTEXT]", e)
		}
		if !clusterName.MatchString(name) {
			return nil, fmt.Errorf("--cluster %q: %q is not a valid cluster name (lowercase letters, digits and '-', at most 63)", e, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--cluster: %s named twice", name)
		}
		c := kubernetes.Cluster{Kubeconfig: rest}
		if i := strings.LastIndex(rest, ":"); i > 0 && !strings.Contains(rest[i+1:], "/") {
			c.Kubeconfig, c.Context = rest[:i], rest[i+1:]
		}
		if st, err := os.Stat(c.Kubeconfig); err != nil || st.IsDir() {
			return nil, fmt.Errorf("--cluster %s: kubeconfig %q is not a readable file", name, c.Kubeconfig)
		}
		out[name] = c
	}
	return out, nil
}
