// Package realnode holds the integration tests (build tag integration) that
// run real pods on the test plane's real node (scripts/kube/up.sh with
// STAGECRAFT_KUBE_REAL_NODE=1: a kubelet with a containerd of its own), and
// reach them only through the API server's port-forward.
package realnode
