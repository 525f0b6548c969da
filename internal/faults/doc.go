// Package faults holds Stagecraft's fault suite (build tag "faults"): real
// rollouts on the real engines while the worker is killed, the Temporal dev
// server restarts, PostgreSQL and dockerd go away and the kube-apiserver
// misbehaves, each checked for a finished rollout, a matching end state,
// no orphans or duplicates and a complete audit trail. `make faults` runs
// the whole matrix (STAGECRAFT_FAULTS=full); `make test` runs a bounded
// form. See docs/RELIABILITY.md.
package faults
