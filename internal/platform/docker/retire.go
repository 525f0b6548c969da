package docker

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"go.uber.org/zap"
)

// A stage that shares traffic between versions (a canary or rolling step)
// retires the old containers it no longer wants instead of stopping them
// while the rollout waits: it renames each to its retired name and sends
// it its stop signal (what docker stop sends first: the process stops
// taking connections and finishes what it has), then returns; the wait
// for the process to exit (up to the stop timeout, then SIGKILL) and the
// removal go on beside the stage's bake. A graceful stop was 0.12-0.3 s of each
// stage on this project's machines, most of it the engine's teardown of
// the container's network (docs/BENCHMARKS.md, P5 Docker).
//
// The rename is what makes it safe. No converge wants a container by a
// retired name, so once a retire returns, every later converge, on this
// worker or another, sees the snapshot's name free: a rollback recreates
// the container from its record, exactly as after a removal, and never
// races the removal still going on for a container it wants. Retired
// containers are removed by whoever gets there first (the retire's own
// background work, or any later converge of the service, before it changes
// anything else: one may still hold a host port a recreate needs), and
// without a fence check, since removing one cannot undo another attempt's
// work. Snapshots and counts leave them out.
//
// A worker that dies after a rename leaves a retired container for the
// next converge, which waits for its exit (up to the stop timeout: it
// sends no second signal, which some processes take as "quit now") and
// removes it. Between the rename and the signal (a few ms) it would leave
// one that was never signalled, still running under the alias until then,
// and killed once that wait is over. A stage with shared traffic is never
// a rollout's last converge (the final converge, traffic on the new
// version, or a rollback follows it), and those retire nothing: they stop
// and remove what they give up before they return.
//
// RetiredMark is in the name of every retired container (retiredName); a
// reader of a service's containers (tests, an operator's filter) knows one
// on its way out by it.
const RetiredMark = "-retired-"

// retiredName is the name a retired container takes: its own, the mark and
// its short ID, so it is unique and no name a snapshot holds is ever it.
func retiredName(name, id string) string { return name + RetiredMark + shortID(id) }

// isRetired reports whether a container carries its retired name: the mark
// with its own ID, which a name given at its creation cannot know.
func isRetired(name, id string) bool {
	return id != "" && strings.HasSuffix(name, RetiredMark+shortID(id))
}

func shortID(id string) string { return id[:min(len(id), 12)] }

// retire takes a snapshot instance the stage no longer wants out of the
// service: its retired name, then its stop signal, and its removal started
// beside the caller. The rename goes first because the engine renames a
// running container at once (a few ms), but one that is exiting only once
// its exit is handled (0.2 s: the teardown it would wait for). A rename
// that fails leaves the container as it was, stopped and removed here
// instead (remove); a signal that fails, stopped here under its retired
// name.
func (c *convergence) retire(ctx context.Context, it container.Summary) error {
	name := containerName(it)
	in, err := c.p.cli.ContainerInspect(ctx, it.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil // removed since the listing
	}
	if err != nil {
		return fmt.Errorf("inspect container %q: %w", name, err)
	}
	if err := c.guard(ctx, "rename container %q", name); err != nil {
		return err
	}
	retired := retiredName(name, it.ID)
	if _, err := c.p.cli.ContainerRename(ctx, it.ID, client.ContainerRenameOptions{NewName: retired}); err != nil {
		c.log.Info("retire: rename failed; stopping the container instead", zap.String("container", name), zap.Error(err))
		return c.remove(ctx, name)
	}
	c.mu.Lock()
	c.res.Removed = append(c.res.Removed, name)
	c.mu.Unlock()
	signalled := time.Now()
	if st := in.Container.State; st != nil && st.Running {
		if err := c.guard(ctx, "stop container %q", retired); err != nil {
			return err
		}
		// Its own stop signal, as docker stop sends it: the engine then
		// treats the exit as a manual stop, which no restart policy undoes.
		sig := "SIGTERM"
		if in.Container.Config != nil {
			sig = cmp.Or(in.Container.Config.StopSignal, sig)
		}
		if _, err := c.p.cli.ContainerKill(ctx, it.ID, client.ContainerKillOptions{Signal: sig}); err != nil &&
			!cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
			c.log.Info("retire: stop signal failed; stopping the container instead", zap.String("container", retired), zap.Error(err))
			timeout := stopTimeoutSeconds
			if _, err := c.p.cli.ContainerStop(ctx, it.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("stop container %q: %w", retired, err)
			}
			return c.p.removeRetired(ctx, retired, it.ID, time.Now())
		}
	}
	c.log.Info("retired container", zap.String("container", name), zap.String("as", retired))
	c.p.finishRetired(ctx, retired, it.ID, signalled.Add(stopTimeoutSeconds*time.Second))
	return nil
}

// retireTimeout bounds a retired container's removal after its stop
// timeout: the force removal's own engine time.
const retireTimeout = 30 * time.Second

// finishRetired removes a retired container beside the converge that
// retired it, and after it: it outlives the call, not the worker.
func (p *Platform) finishRetired(ctx context.Context, name, id string, killAt time.Time) {
	if p.noBackground {
		return
	}
	p.retiring.Add(1)
	go func() {
		defer p.retiring.Done()
		ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), killAt.Add(retireTimeout))
		defer cancel()
		if err := p.removeRetired(ctx, name, id, killAt); err != nil {
			p.log.Warn("retired container not removed; the service's next converge removes it", zap.String("container", name), zap.Error(err))
		}
	}()
}

// removeRetired waits until a retired container's process has exited, at
// most until killAt, then removes it (a SIGKILL first if it still runs, as
// docker stop does after its timeout). One already gone counts as removed.
func (p *Platform) removeRetired(ctx context.Context, name, id string, killAt time.Time) error {
	wctx, cancel := context.WithDeadline(ctx, killAt)
	res := p.cli.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-res.Result:
	case <-res.Error: // gone, or still running at killAt: removed by force below
	}
	cancel()
	_, err := p.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if cerrdefs.IsConflict(err) {
		// Being removed by someone else (the retire's background work, or
		// another converge): done once it is gone.
		err = p.waitGone(ctx, id)
	}
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove retired container %q: %w", name, err)
	}
	p.log.Info("removed retired container", zap.String("container", name))
	return nil
}

// waitGone waits until the engine no longer knows container id.
func (p *Platform) waitGone(ctx context.Context, id string) error {
	for {
		_, err := p.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return err // NotFound: gone
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitRetired waits for the removals of retired containers this Platform
// started (tests).
func (p *Platform) waitRetired() { p.retiring.Wait() }
