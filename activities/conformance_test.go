package activities_test

import (
	"github.com/stagecraft/stagecraft/activities"
	"github.com/stagecraft/stagecraft/internal/platform/docker"
	"github.com/stagecraft/stagecraft/internal/platform/kubernetes"
)

// Both platforms implement the seam and the optional capabilities the
// activities find by type assertion; a platform that lost one would
// otherwise be found out only at run time, by a capability silently off.
var (
	_ activities.Platform         = (*docker.Platform)(nil)
	_ activities.Holder           = (*docker.Platform)(nil)
	_ activities.Leaser           = (*docker.Platform)(nil)
	_ activities.CapacityReporter = (*docker.Platform)(nil)
	_ activities.Describer        = (*docker.Platform)(nil)
	_ activities.UpChecker        = (*docker.Platform)(nil)
	_ activities.ImageLooker      = (*docker.Platform)(nil)

	_ activities.Platform         = (*kubernetes.Platform)(nil)
	_ activities.Holder           = (*kubernetes.Platform)(nil)
	_ activities.Leaser           = (*kubernetes.Platform)(nil)
	_ activities.CapacityReporter = (*kubernetes.Platform)(nil)
	_ activities.Configurer       = (*kubernetes.Platform)(nil)
	_ activities.Describer        = (*kubernetes.Platform)(nil)
)
