// Package failpoint names points in the code where the fault suite's worker
// build (tag "failpoints", worker/failpoints_on.go) may stop one activity
// execution: it attaches a Handler to that execution's context, and the code
// calls Hit at each point. Production builds never attach one; Hit then
// costs one context lookup.
package failpoint

import "context"

// Points.
const (
	// ConvergeRead: a platform's converge has read its target and decided
	// what to change (the Docker surplus list), before its first change.
	ConvergeRead = "converge-read"
	// SideHeartbeat: an activity's side heartbeat is about to beat.
	SideHeartbeat = "side-heartbeat"
)

// Handler runs at every point Hit in a context carrying it; it may block.
type Handler func(ctx context.Context, point string)

type key struct{}

// With returns ctx carrying h.
func With(ctx context.Context, h Handler) context.Context {
	return context.WithValue(ctx, key{}, h)
}

// Hit runs ctx's handler at point, if it has one.
func Hit(ctx context.Context, point string) {
	if h, ok := ctx.Value(key{}).(Handler); ok && h != nil {
		h(ctx, point)
	}
}
