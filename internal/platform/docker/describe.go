package docker

import (
	"fmt"
	"strings"

	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Describe says, in words, what converging the service of s from snap to d
// does to its containers, as Converge would: New containers of the new
// image, the snapshot's first Old containers kept (recreated from the
// snapshot if they are gone), every other container of the service
// removed; stop-first removes before it starts. It reads nothing.
func (p *Platform) Describe(s spec.Spec, snap platform.Snapshot, d plan.Desired) ([]string, error) {
	if s.Platform.Docker == nil {
		return nil, fmt.Errorf("describe %q: spec has no docker platform", s.Service)
	}
	var out []string
	keep := min(d.Old, len(snap.Instances))
	var kept, removed []string
	for i, in := range snap.Instances {
		if i < keep {
			kept = append(kept, in.Name)
		} else {
			removed = append(removed, in.Name)
		}
	}
	start := ""
	if d.New > 0 {
		start = fmt.Sprintf("%d container(s) of %s running (started as needed)", d.New, s.Image)
	}
	stop := ""
	if len(removed) > 0 {
		stop = "snapshot container(s) removed: " + strings.Join(removed, ", ")
	}
	if d.Order == plan.StopFirst {
		out = appendNonEmpty(out, stop, start)
	} else {
		out = appendNonEmpty(out, start, stop)
	}
	if len(kept) > 0 {
		out = append(out, "snapshot container(s) kept as they were: "+strings.Join(kept, ", "))
	}
	if d.New == 0 {
		out = append(out, "every container of the new version removed")
	} else if d.Old == 0 {
		out = append(out, "then only the new version runs")
	}
	return out, nil
}

func appendNonEmpty(out []string, lines ...string) []string {
	for _, l := range lines {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
