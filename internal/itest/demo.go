package itest

import (
	"time"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// DemoSpec is a Docker spec of the demo app (stagecraft-demo images) for
// integration tests: replicas on port 8080, an HTTP and a TCP check on each
// instance every 500 ms, 2 s bakes, and the strategy's usual shape (canary
// 34/67/100, blue-green 2 s before and after the switch, rolling batch 1),
// defaults applied.
func DemoSpec(service, image, strategy string, replicas int) spec.Spec {
	s := spec.Spec{
		Service: service,
		Image:   image,
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: replicas, Port: 8080,
			Env: map[string]string{"GREETING": "hi " + image}}},
		Strategy: spec.Strategy{Type: strategy, Bake: spec.Duration(2 * time.Second)},
		Health: spec.Health{Interval: spec.Duration(500 * time.Millisecond), Checks: []spec.Check{
			{Name: "healthz", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz", ExpectStatus: spec.StatusSet{"200"}}},
			{Name: "tcp", TCP: &spec.TCPCheck{Address: "{{.Address}}"}},
		}},
	}
	return shaped(s, []int{34, 67, 100}, 1)
}

// shaped gives s its strategy's usual test shape (canary steps; blue-green
// 2 s before and after the switch, no bake; rolling batch) and defaults.
func shaped(s spec.Spec, steps []int, batch int) spec.Spec {
	switch s.Strategy.Type {
	case spec.Canary:
		s.Strategy.Steps = steps
	case spec.BlueGreen:
		s.Strategy.Bake = 0
		s.Strategy.BakeBeforeSwitch = spec.Duration(2 * time.Second)
		s.Strategy.BakeAfterSwitch = spec.Duration(2 * time.Second)
	case spec.Rolling:
		s.Strategy.BatchSize = batch
	}
	return s.WithDefaults()
}
