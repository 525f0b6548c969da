package docker

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// minUptime is how long each container a converge starts must stay up
// before the converge counts it as running: a process that exits (or is
// OOM-killed, or fails its HEALTHCHECK) within this time of its start fails
// the converge, and so the stage. It replaces a fixed 1 s sleep taken after
// every start was seen running; that sampled the state twice, so an exit
// followed by a quick restart in between could pass it, and the last
// container started had little more than 1 s to prove itself.
//
// The window runs from each container's own start, while the converge does
// the rest of its work (starting the others, rewiring, stopping the
// surplus), and only its remainder is waited for. 1 s is what the old
// settle gave the last container it started, now given to each container
// from its own start, watched by events all along rather than sampled
// twice; a longer window would catch later exits at the price of every
// converge's time (docs/BENCHMARKS.md, P5 Docker: 2 s cost 1.3 s per
// rollout), and later exits are the stage's health checks' to catch.
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

// watchUp subscribes to the container events of service. The subscription
// is in place when it returns: since is taken before the request, and the
// engine replays what it logged from then on, so an event in the instant
// between its answer and its subscribing is not missed (the engine runs on
// this host: its ports are published on 127.0.0.1, so the clocks agree).
func (p *Platform) watchUp(ctx context.Context, service string) *upWatch {
	since := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	w := &upWatch{cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
		started: map[string]startedOne{}}
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

// stayUp holds the converge until each container it started has been up
// minUptime since its start request returned, failing at once, with the
// container's reason, when the engine reports one of them down. Then it
// checks each is still in the run first seen (first): the state, not only
// the events, must agree, and if the event stream was lost on the way it is
// what is left (the old settle's sampling, over a longer window).
//
// The guarantee: a converge that returns nil started no container that the
// engine reported, between its start request and that return, as died
// (exited or killed), OOM-killed or unhealthy; each has run at least
// minUptime since its start request returned and is running, not
// restarting, in the run the converge first saw. If the event stream is
// lost, only the last part holds (an exit and restart before that first
// look is not seen), and the worker logs it.
func (c *convergence) stayUp(ctx context.Context, names []string, first map[string]seen) error {
	deadline := time.Time{}
	for _, name := range names {
		if at, ok := c.startedAt[name]; ok && at.Add(minUptime).After(deadline) {
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
	for _, name := range names {
		if !c.started[name] {
			continue
		}
		st, err := c.waitOne(ctx, name)
		if err != nil {
			return err
		}
		if st != first[name] {
			return c.notRunning(ctx, name, fmt.Sprintf("restarted %d times right after start", st.restarts))
		}
	}
	return nil
}
