package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/notify"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Notifier is the notification seam (internal/notify): it delivers one
// event to one target, returning a *notify.PermanentError when sending
// again cannot help.
type Notifier interface {
	Send(ctx context.Context, n spec.Notification, e notify.Event) error
}

// NotifyInput is an event and the targets to tell about it.
type NotifyInput struct {
	Targets []spec.Notification `json:"targets"`
	Event   notify.Event        `json:"event"`
}

// NotifyResult names the targets told (in this attempt or an earlier one)
// and those that refused the event for good.
type NotifyResult struct {
	Delivered []string `json:"delivered,omitempty"`
	Failed    []string `json:"failed,omitempty"`
}

// Notify sends the event to every target that wants it. Delivered targets'
// indexes are recorded as heartbeat details, so a retried attempt sends only
// to the others. A transient failure of any target fails the attempt, to be
// retried; a permanent one is listed in Failed and is not retried.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) (NotifyResult, error) {
	inActivity := activity.IsActivity(ctx)
	var done []int
	if inActivity && activity.HasHeartbeatDetails(ctx) {
		// Unreadable details only cost repeats, which webhooks can drop
		// by the idempotency key.
		_ = activity.GetHeartbeatDetails(ctx, &done)
	}
	record, stop := keepAlive(ctx)
	defer stop()
	var sender Notifier = &notify.Sender{}
	if a.Notifier != nil {
		sender = a.Notifier
	}
	log := a.logger(ctx).With(zap.String("event", in.Event.Kind), zap.String("key", in.Event.Key))

	var res NotifyResult
	var transient []error
	for i, n := range in.Targets {
		if !n.Wants(in.Event.Kind) {
			continue
		}
		name := n.Label(i)
		if slices.Contains(done, i) {
			res.Delivered = append(res.Delivered, name)
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n.Name = name
		err := sender.Send(ctx, n, in.Event)
		var perm *notify.PermanentError
		switch {
		case err == nil:
			done = append(done, i)
			if inActivity {
				record(slices.Clone(done))
			}
			res.Delivered = append(res.Delivered, name)
			log.Info("notification delivered", zap.String("target", name))
		case errors.As(err, &perm):
			res.Failed = append(res.Failed, name)
			log.Warn("notification refused; not retrying", zap.String("target", name), zap.Error(err))
		default:
			transient = append(transient, err)
			log.Warn("notification failed; retrying", zap.String("target", name), zap.Error(err))
		}
	}
	if len(transient) > 0 {
		return res, fmt.Errorf("notify %s: %w", in.Event.Kind, errors.Join(transient...))
	}
	return res, nil
}
