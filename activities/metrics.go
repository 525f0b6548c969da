package activities

import (
	"context"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/stagecraft/stagecraft/internal/health"
)

// MetricHealthRounds counts health-check rounds by verdict (healthy,
// degraded, no_data, failed). Labels: verdict, strategy, platform, mode
// (rounds, observe, verify). Scraped as stagecraft_health_rounds_total.
const MetricHealthRounds = "stagecraft_health_rounds"

// countRound counts one round's verdict through the activity's metrics
// handler (a no-op outside an activity, as in unit tests).
func countRound(ctx context.Context, in WatchInput, v health.Verdict) {
	if !activity.IsActivity(ctx) {
		return
	}
	strategy, platform := in.Spec.Strategy.Type, in.Spec.PlatformName()
	if strategy == "" {
		strategy = "none"
	}
	if platform == "" {
		platform = "none"
	}
	activity.GetMetricsHandler(ctx).WithTags(map[string]string{
		"verdict":  strings.ReplaceAll(string(v), "-", "_"),
		"strategy": strategy,
		"platform": platform,
		"mode":     string(in.Mode),
	}).Counter(MetricHealthRounds).Inc(1)
}
