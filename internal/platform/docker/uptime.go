package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// minUptime is how long each container a converge starts must stay up
// before it counts as running: a process that exits (or is OOM-killed, or
// fails its HEALTHCHECK) within this time of its start fails the stage. It
// replaces a fixed 1 s sleep taken after every start was seen running; that
// sampled the state twice, so an exit followed by a quick restart in
// between could pass it, and the last container started had little more
// than 1 s to prove itself.
//
// The window runs from each container's own start, watched by the engine's
// events all along. A converge holds it only where nothing after it would:
// for the snapshot's containers it recreates (a rollback), and for new ones
// when the spec has no health checks (no watch follows). Otherwise the new
// instances' windows overlap the stage's bake: the converge returns once
// they run, the bake's watch asks StayedUp, which fails the stage with the
// container's reason, and the rollout's next converge checks them again
// before it changes anything (a stage without a bake, a promoted rollout,
// a retry). 1 s is what the old settle gave the last container it started;
// a longer window would catch later exits at the price of a promoted or
// unbaked stage's time (docs/BENCHMARKS.md, P5 Docker), and later exits
// are the health checks' to catch (a restart of a new instance, at any
// time, is caught by the next StayedUp: it counts its restarts).
const minUptime = time.Second

// upWatch follows the engine's events for one service's containers, from
// before a converge starts the first of them, and records the first sign
// that a container it started did not stay up: a die (an exit, a kill), an
// OOM kill or an unhealthy HEALTHCHECK. Events are matched by container ID,
// which is never reused, so the past of a container of the same name does
// not count.
type upWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // 1-buffered: something was recorded

	mu      sync.Mutex
	started map[string]startedOne // by container ID
	fellID  string                // the first container that did not stay up
	why     string                // and why
	lost    error                 // why the stream ended early, if it did
}

// startedOne is one container a converge started.
type startedOne struct {
	name string
	at   time.Time // just before the start request
	ran  int64     // the engine's time of its start event (ns), once seen
}

// watchUp subscribes to the container events of service from since (now,
// or the start of a container already running). The subscription is in
// place when it returns: since is taken before the request, and the engine
// replays what it logged from then on, so an event in the instant between
// its answer and its subscribing is not missed (the engine runs on this
// host: its ports are published on 127.0.0.1, so the clocks agree).
// Containers already started (known) are watched from the first event
// read, so a replayed die of theirs counts.
func (p *Platform) watchUp(ctx context.Context, service string, since time.Time, known ...knownStart) *upWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &upWatch{cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
		started: map[string]startedOne{}}
	for _, k := range known {
		w.started[k.id] = startedOne{name: k.name, at: k.ran, ran: k.ran.UnixNano()}
	}
	res := p.cli.Events(ctx, client.EventsListOptions{
		Since: since.UTC().Format(time.RFC3339Nano),
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).
			Add("label", platform.LabelService+"="+service),
	})
	go w.follow(res)
	return w
}

// close ends the subscription and waits for its reader.
func (w *upWatch) close() {
	w.cancel()
	<-w.done
}

// starting tells the watch that container id (name) is about to be started:
// from now on its die is a failure.
func (w *upWatch) starting(id, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.started[id] = startedOne{name: name, at: time.Now()}
}

// knownStart is a container an earlier converge started, at ran (the
// engine's StartedAt): its die is a failure.
type knownStart struct {
	id, name string
	ran      time.Time
}

func (w *upWatch) follow(res client.EventsResult) {
	defer close(w.done)
	for {
		select {
		case m := <-res.Messages:
			w.record(m)
		case err := <-res.Err:
			w.mu.Lock()
			w.lost = err
			if err == nil {
				w.lost = io.EOF
			}
			w.mu.Unlock()
			w.signal()
			return
		}
	}
}

func (w *upWatch) record(m events.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	one, ok := w.started[m.Actor.ID]
	if !ok || w.fellID != "" {
		return
	}
	if m.Action == events.ActionStart {
		one.ran = m.TimeNano
		w.started[m.Actor.ID] = one
		return
	}
	// How long it ran: by the engine's clock from its start event, else
	// (not seen yet) from the start request.
	after := time.Since(one.at)
	if one.ran != 0 && m.TimeNano >= one.ran {
		after = time.Duration(m.TimeNano - one.ran)
	}
	after = after.Round(10 * time.Millisecond)
	switch {
	case m.Action == events.ActionDie:
		w.why = fmt.Sprintf("exited (exit code %s) %v after it was started", m.Actor.Attributes["exitCode"], after)
	case m.Action == events.ActionOOM:
		w.why = fmt.Sprintf("killed out of memory (OOM) %v after it was started", after)
	case m.Action == events.ActionHealthStatusUnhealthy:
		w.why = fmt.Sprintf("unhealthy (its HEALTHCHECK failed) %v after it was started", after)
	default:
		return
	}
	w.fellID = m.Actor.ID
	w.signal()
}

func (w *upWatch) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// fell returns the name of the first container started that did not stay
// up, and why; "" while none has.
func (w *upWatch) fell() (string, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fellID == "" {
		return "", ""
	}
	return w.started[w.fellID].name, w.why
}

// until waits until the deadline unless a container started falls first
// (its name and why), the stream is lost (its error: the caller falls back
// on the containers' state), or ctx ends.
func (w *upWatch) until(ctx context.Context, deadline time.Time) (name, why string, lost, err error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		if name, why := w.fell(); name != "" {
			return name, why, nil, nil
		}
		w.mu.Lock()
		lost := w.lost
		w.mu.Unlock()
		if lost != nil {
			return "", "", lost, nil
		}
		select {
		case <-ctx.Done():
			return "", "", nil, ctx.Err()
		case <-t.C:
			// A last look: an event may have come with the deadline.
			if name, why := w.fell(); name != "" {
				return name, why, nil, nil
			}
			return "", "", nil, nil
		case <-w.wake:
		}
	}
}

// stayUp holds the converge until each container it started whose window
// it holds (see minUptime: not the new ones when deferUp) has been up
// minUptime since its start request returned, failing at once, with the
// container's reason, when the engine reports one of them down. Then it
// checks each container it started is still in the run first seen (first):
// the state, not only the events, must agree, and if the event stream was
// lost on the way it is what is left (the old settle's sampling, over a
// longer window).
//
// The guarantee: a converge that returns nil started no container that the
// engine reported, between its start request and that return, as died
// (exited or killed), OOM-killed or unhealthy; each is running, not
// restarting, in the run the converge first saw; and each whose window it
// holds has run at least minUptime since its start request returned. If
// the event stream is lost, only the state check holds (an exit and restart
// before that first look is not seen), and the worker logs it.
func (c *convergence) stayUp(ctx context.Context, wants []want, first map[string]seen) error {
	deadline := time.Time{}
	for _, w := range wants {
		if w.isNew && c.deferUp {
			continue
		}
		if at, ok := c.startedAt[w.name]; ok && at.Add(minUptime).After(deadline) {
			deadline = at.Add(minUptime)
		}
	}
	name, why, lost, err := c.watch.until(ctx, deadline)
	switch {
	case err != nil:
		return fmt.Errorf("wait for containers of %q: %w", c.spec.Service, err)
	case name != "":
		return c.notRunning(ctx, name, why)
	case lost != nil:
		c.log.Warn("container events lost: checking the containers' state only", zap.Error(lost))
		if err := sleep(ctx, time.Until(deadline)); err != nil {
			return fmt.Errorf("wait for containers of %q: %w", c.spec.Service, err)
		}
	}
	for _, w := range wants {
		if !c.started[w.name] {
			continue
		}
		st, err := c.waitOne(ctx, w.name)
		if err != nil {
			return err
		}
		if st != first[w.name] {
			return c.notRunning(ctx, w.name, fmt.Sprintf("restarted %d times right after start", st.restarts))
		}
	}
	return nil
}

// StayedUp returns nil once every new instance of rollout that has been
// started has stayed up minUptime from its start (waiting out what is left
// of the windows, on the engine's events), and a *NotUpError naming the
// first that did not: it exited, was killed or OOM-killed, turned
// unhealthy, or restarted (a new instance that restarted at any time since
// its start counts: its restart policy hides an exit). It is the stage's
// half of the window a converge no longer holds (minUptime); a bake's watch
// asks it. Engine errors are retried until ctx ends, so an error is either
// that verdict or ctx's.
func (p *Platform) StayedUp(ctx context.Context, s spec.Spec, rollout string) error {
	for {
		err := p.stayedUp(ctx, s.Service, rollout)
		var down *NotUpError
		if err == nil || errors.As(err, &down) || ctx.Err() != nil {
			return err
		}
		p.log.Warn("stay-up check: the engine failed; trying again", zap.String("service", s.Service), zap.Error(err))
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// stayedUp is one try of StayedUp; a converge of the rollout's next stage
// runs it before any change.
func (p *Platform) stayedUp(ctx context.Context, service, rollout string) error {
	items, err := p.list(ctx, service, true)
	if err != nil {
		return err
	}
	type one struct {
		knownStart
		seen seen
	}
	var young []one
	now := time.Now()
	for _, it := range items {
		if !isNewOf(it.Labels, service, rollout) || it.State == container.StateCreated {
			continue // not this rollout's, or never started
		}
		name := containerName(it)
		in, err := p.cli.ContainerInspect(ctx, it.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // removed since the listing
		}
		if err != nil {
			return fmt.Errorf("inspect container %q: %w", name, err)
		}
		st := in.Container.State
		if st == nil {
			continue
		}
		if why := p.whyDown(ctx, in.Container); why != "" {
			return p.notUp(ctx, name, why, nil)
		}
		ran, err := time.Parse(time.RFC3339Nano, st.StartedAt)
		if err != nil {
			return fmt.Errorf("container %q: started at %q: %w", name, st.StartedAt, err)
		}
		if now.Sub(ran) < minUptime {
			young = append(young, one{knownStart: knownStart{id: in.Container.ID, name: name, ran: ran},
				seen: seen{startedAt: st.StartedAt, restarts: in.Container.RestartCount}})
		}
	}
	if len(young) == 0 {
		return nil
	}
	since, deadline := young[0].ran, time.Time{}
	for _, y := range young {
		if y.ran.Before(since) {
			since = y.ran
		}
		if y.ran.Add(minUptime).After(deadline) {
			deadline = y.ran.Add(minUptime)
		}
	}
	// From just before the earliest start: the engine replays what
	// happened since, so an exit before this call is seen with its code.
	known := make([]knownStart, 0, len(young))
	for _, y := range young {
		known = append(known, y.knownStart)
	}
	w := p.watchUp(ctx, service, since.Add(-time.Millisecond), known...)
	defer w.close()
	name, why, lost, err := w.until(ctx, deadline)
	switch {
	case err != nil:
		return fmt.Errorf("wait for containers of %q: %w", service, err)
	case name != "":
		return p.notUp(ctx, name, why, nil)
	case lost != nil:
		p.log.Warn("container events lost: checking the containers' state only", zap.String("service", service), zap.Error(lost))
		if err := sleep(ctx, time.Until(deadline)); err != nil {
			return fmt.Errorf("wait for containers of %q: %w", service, err)
		}
	}
	for _, y := range young {
		in, err := p.cli.ContainerInspect(ctx, y.id, client.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect container %q: %w", y.name, err)
		}
		if why := p.whyDown(ctx, in.Container); why != "" {
			return p.notUp(ctx, y.name, why, nil)
		}
		if st := in.Container.State; st.StartedAt != y.seen.startedAt {
			return p.notUp(ctx, y.name, "started again since its start", nil)
		}
	}
	return nil
}

// whyDown says why an inspected new instance, started once by a converge with
// its restart policy, is not up, or "" when it is: not running, restarting,
// or restarted since (with the exit code of its first exit, from the
// engine's recent events, when they still hold it).
func (p *Platform) whyDown(ctx context.Context, c container.InspectResponse) string {
	st := c.State
	switch {
	case st.Restarting || c.RestartCount > 0:
		why := fmt.Sprintf("restarted %d times since it was started", c.RestartCount)
		if st.Restarting {
			why = fmt.Sprintf("restarting after it exited (exit code %d), restarted %d times since it was started", st.ExitCode, c.RestartCount)
		}
		if first := p.firstExit(ctx, c); first != "" {
			why += "; first " + first
		}
		return why
	case !st.Running:
		return fmt.Sprintf("%s (exit code %d)", st.Status, st.ExitCode)
	}
	return ""
}

// firstExit describes a container's first die since it was created, from
// the engine's events (it keeps only the latest ones), or "".
func (p *Platform) firstExit(ctx context.Context, c container.InspectResponse) string {
	created, err := time.Parse(time.RFC3339Nano, c.Created)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	res := p.cli.Events(ctx, client.EventsListOptions{
		Since: created.UTC().Format(time.RFC3339Nano), Until: time.Now().UTC().Format(time.RFC3339Nano),
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).
			Add("container", c.ID).Add("event", string(events.ActionDie)),
	})
	for {
		select {
		case m := <-res.Messages:
			return fmt.Sprintf("exit code %s", m.Actor.Attributes["exitCode"])
		case <-res.Err:
			return ""
		}
	}
}
