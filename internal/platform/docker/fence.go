package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// A service's fences are empty Docker volumes beside it, like its hold: one
// per converge attempt that wrote it, named after the service, the attempt's
// step and its owner, and labelled with the whole platform.Fence. Docker
// objects' labels cannot change and the engine has no compare-and-swap, so
// the highest fence is not one object updated in place but a grow-only set:
// an attempt adds its marker, and the markers together refuse every older
// attempt of the same owner and every other owner whose lease has not ended.
const (
	roleFence       = "fence"
	labelFenceOwner = "stagecraft.fence.owner"
	labelFenceStep  = "stagecraft.fence.step"
	labelFenceUntil = "stagecraft.fence.until"
	// keepFences is how many of the newest markers a converge keeps beyond
	// those that still refuse someone (each owner's latest step and
	// longest lease), for an operator reading docker volume ls.
	keepFences = 4
)

// fenceVolume names the marker of fence f on service: the owner goes in as
// a hash (it holds a slash and a colon, which volume names may not).
func fenceVolume(service string, f platform.Fence) string {
	h := sha256.Sum256([]byte(f.Owner))
	return fmt.Sprintf("stagecraft-fence-%s-%d-%s", service, f.Step, hex.EncodeToString(h[:4]))
}

// marker is one fence read from the engine.
type marker struct {
	name  string
	fence platform.Fence
}

// fences lists the service's fence markers. A volume labelled as one whose
// labels do not parse is skipped (it fences nothing) and logged.
func (p *Platform) fences(ctx context.Context, service string) ([]marker, error) {
	res, err := p.cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).
		Add("label", platform.LabelService+"="+service).
		Add("label", platform.LabelRole+"="+roleFence)})
	if err != nil {
		return nil, fmt.Errorf("list fence volumes of %q: %w", service, err)
	}
	var out []marker
	for _, v := range res.Items {
		step, serr := strconv.ParseInt(v.Labels[labelFenceStep], 10, 64)
		until, uerr := time.Parse(time.RFC3339Nano, v.Labels[labelFenceUntil])
		owner := v.Labels[labelFenceOwner]
		if serr != nil || uerr != nil || owner == "" {
			p.log.Warn("a fence volume whose labels do not parse fences nothing", zap.String("volume", v.Name),
				zap.Any("labels", v.Labels))
			continue
		}
		out = append(out, marker{name: v.Name, fence: platform.Fence{Owner: owner, Step: step, Until: until}})
	}
	return out, nil
}

// fencer holds one converge attempt to its fence on one service. A zero
// fence (tests, the fault rig's installs) fences nothing and writes no
// marker.
type fencer struct {
	p       *Platform
	log     *zap.Logger
	service string
	target  string
	mine    platform.Fence
}

// check refuses with a *platform.FencedError when a marker of the service
// does not admit this attempt: a later step of its owner has claimed the
// target, or another owner's lease holds.
//
// It is a check, then an act: Docker has no compare-and-swap, so an attempt
// that passes it and is then frozen (a paused process, a stalled call) can
// still make the one call it was about to make after a later attempt has
// claimed the target. Every destructive call checks again, so that window
// is one call wide (one create, start, stop, remove or network change), not
// the rest of the converge as before fences; what it cannot be is zero.
func (f *fencer) check(ctx context.Context) error {
	if f.mine.Zero() {
		return nil
	}
	ms, err := f.p.fences(ctx, f.service)
	if err != nil {
		return err
	}
	return f.admitted(ms, time.Now())
}

// admitted is check on markers already listed, at now.
func (f *fencer) admitted(ms []marker, now time.Time) error {
	var held *platform.Fence
	for _, m := range ms {
		if f.mine.Admits(m.fence, now) {
			continue
		}
		// Name the strongest refusal: the latest step of this owner, else
		// the longest lease of another.
		switch {
		case held == nil:
		case m.fence.Owner == f.mine.Owner && (held.Owner != f.mine.Owner || m.fence.Step > held.Step):
		case m.fence.Owner != f.mine.Owner && held.Owner != f.mine.Owner && m.fence.Until.After(held.Until):
		default:
			continue
		}
		fence := m.fence
		held = &fence
	}
	if held == nil {
		return nil
	}
	err := &platform.FencedError{Target: f.target, Mine: f.mine, Held: *held}
	f.log.Warn("converge fenced: it may not change the target", zap.String("owner", f.mine.Owner),
		zap.Int64("step", f.mine.Step), zap.String("heldBy", held.Owner), zap.Int64("heldStep", held.Step),
		zap.Time("heldUntil", held.Until), zap.Error(err))
	return err
}

// claim checks the attempt's fence, then adds its marker, so every older
// attempt of its owner, and every other owner until this attempt's lease
// ends, is refused from then on; and prunes markers nobody needs. A retry
// of the same attempt finds its marker in place.
func (f *fencer) claim(ctx context.Context) error {
	if f.mine.Zero() {
		return nil
	}
	ms, err := f.p.fences(ctx, f.service)
	if err != nil {
		return err
	}
	if err := f.admitted(ms, time.Now()); err != nil {
		return err
	}
	name := fenceVolume(f.service, f.mine)
	labels := map[string]string{
		platform.LabelService: f.service,
		platform.LabelRole:    roleFence,
		labelFenceOwner:       f.mine.Owner,
		labelFenceStep:        strconv.FormatInt(f.mine.Step, 10),
		labelFenceUntil:       f.mine.Until.UTC().Format(time.RFC3339Nano),
	}
	// Creating a volume that exists returns it unchanged.
	v, err := f.p.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: labels})
	if err != nil {
		return fmt.Errorf("write fence volume %q: %w", name, err)
	}
	if v.Volume.Labels[labelFenceOwner] != f.mine.Owner || v.Volume.Labels[labelFenceStep] != labels[labelFenceStep] {
		return fmt.Errorf("fence volume %q: a volume of that name exists and is not this attempt's fence: %w", name, platform.ErrConfigConflict)
	}
	f.prune(ctx, append(ms, marker{name: name, fence: f.mine}))
	return nil
}

// prune removes the markers that can no longer refuse anyone this claim's
// marker does not: it keeps each owner's latest step and longest lease
// (what Admits compares with) and the newest keepFences. A marker it fails
// to remove is left for the next claim.
func (f *fencer) prune(ctx context.Context, ms []marker) {
	keep := map[string]bool{}
	latest := map[string]marker{}
	longest := map[string]marker{}
	for _, m := range ms {
		o := m.fence.Owner
		if l, ok := latest[o]; !ok || m.fence.Step > l.fence.Step {
			latest[o] = m
		}
		if l, ok := longest[o]; !ok || m.fence.Until.After(l.fence.Until) {
			longest[o] = m
		}
	}
	for _, m := range latest {
		keep[m.name] = true
	}
	for _, m := range longest {
		keep[m.name] = true
	}
	byStep := slices.SortedFunc(slices.Values(ms), func(a, b marker) int { return -cmpStep(a, b) })
	for i, m := range byStep {
		if i < keepFences {
			keep[m.name] = true
		}
	}
	for _, m := range ms {
		if keep[m.name] {
			continue
		}
		if _, err := f.p.cli.VolumeRemove(ctx, m.name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			f.log.Info("fence volume not pruned", zap.String("volume", m.name), zap.Error(err))
		}
	}
}

func cmpStep(a, b marker) int {
	switch {
	case a.fence.Step < b.fence.Step:
		return -1
	case a.fence.Step > b.fence.Step:
		return 1
	}
	return 0
}
