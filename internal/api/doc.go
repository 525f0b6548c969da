// Package api is Stagecraft's wire contract: everything a caller needs to
// start, steer and read rollouts and releases through any Temporal client,
// and nothing of the engine behind them.
//
// It holds the names (task queue, workflow types, signals, updates, the
// status query, memo fields and search attributes), the input a rollout
// workflow takes (RolloutInput: the user's spec plus the state a workflow
// sets for itself), and the statuses and results the workflows report. The
// workflows and the callers in this module (internal/control, the client
// package, the starter CLI) import it; it imports only the spec and the
// plain value types of the plan, health checks and platforms. Other
// modules reach it through the client package, which re-exports it under
// the same names (client/types.go): the same types, not copies.
//
// What may change here: fields and names may be added. A field's JSON
// name, a workflow, signal, update or query name, or the meaning of a
// value never changes, because running workflows' histories and other
// Temporal clients depend on them (docs/UPGRADING.md says how additions
// are versioned).
package api
