package workflows

import "go.temporal.io/sdk/workflow"

// woken is what ended one round of a wait: the timer fired (or failed,
// err: it was cancelled), the signal arrived, or only a wake-up (a control
// changed the rollout's state).
type woken struct {
	fired    bool
	err      error
	received bool
}

// waitWoken is the rollout's one way to hold (approval gates, keeping
// blue, awaiting its release): it waits for the first of the timer (if
// any), the signal channel (if any) and a wake-up from a control, or, with
// no timer to be cancelled, the context's end. After each it returns
// errAborted on an abort, or asks over whether the wait is over, and with
// what. It adds no command of its own (the caller makes the timer), so
// every history replays exactly as before it existed.
func (r *rollout) waitWoken(ctx workflow.Context, timer workflow.Future, signal workflow.ReceiveChannel, over func(woken) (bool, error)) error {
	for {
		var w woken
		sel := workflow.NewSelector(ctx)
		if timer != nil {
			sel.AddFuture(timer, func(f workflow.Future) { w.err = f.Get(ctx, nil); w.fired = w.err == nil })
		}
		if signal != nil {
			sel.AddReceive(signal, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); w.received = true })
		}
		sel.AddReceive(r.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		if timer == nil {
			// With no timer to be cancelled, the context's end ends the wait.
			sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		}
		sel.Select(ctx)
		if r.aborted {
			return errAborted{r.abortReason}
		}
		if done, err := over(w); done {
			return err
		}
	}
}
