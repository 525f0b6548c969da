package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// workerFiles are the files holding the worker's own credentials, which no
// spec may reference even inside an allowed --secret-dir: its signing and
// codec keys, its TLS files, every kubeconfig it may use (--cluster,
// $KUBECONFIG's list, ~/.kube/config), the Docker client's TLS files and
// PostgreSQL's password file.
func workerFiles(cfg config) []string {
	files := append(slices.Clone(cfg.signingKeys), cfg.temporal.KeyFiles()...)
	for _, c := range cfg.clusters {
		if _, rest, ok := strings.Cut(c, "="); ok {
			files = append(files, rest)
			if i := strings.LastIndex(rest, ":"); i > 0 {
				files = append(files, rest[:i])
			}
		}
	}
	files = append(files, filepath.SplitList(os.Getenv("KUBECONFIG"))...)
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".kube", "config"), filepath.Join(home, ".pgpass"), filepath.Join(home, ".docker", "config.json"))
	}
	if d := os.Getenv("DOCKER_CERT_PATH"); d != "" {
		files = append(files, filepath.Join(d, "key.pem"), filepath.Join(d, "cert.pem"), filepath.Join(d, "ca.pem"))
	}
	if f := os.Getenv("PGPASSFILE"); f != "" {
		files = append(files, f)
	}
	return files
}
