//go:build !failpoints

package main

import (
	"go.temporal.io/sdk/interceptor"
	"go.uber.org/zap"
)

// failpoints is empty in production builds: the fault suite's failpoints
// are compiled in only with the "failpoints" build tag.
func failpoints(*zap.Logger) []interceptor.WorkerInterceptor { return nil }
