// Package e2e holds Stagecraft's end-to-end tests of the whole system (build
// tag "integration"): real rollouts and releases on a real Temporal dev
// server, the Docker engine and a Kubernetes control plane, driven through
// the built worker and starter binaries, the client package, the stock
// temporal CLI, mutual TLS, the audit store, notifications, metrics and
// health checks. Their rollouts' histories are replayed against the current
// workflow code, and `make record-histories` (STAGECRAFT_RECORD_HISTORIES=1)
// saves them under workflows/testdata/histories. `make test` runs them
// (scripts/test.sh); the benchmarks here (bench_test.go, same tag, run only
// with -bench) are `make bench` (scripts/bench.sh, docs/BENCHMARKS.md).
package e2e
