package workflows

import (
	"sync/atomic"

	"go.temporal.io/sdk/converter"
)

// memoConverter decodes the memos a workflow reads itself (a release's
// rules passed to its rollouts): the worker's data converter, which a
// payload codec wraps, since the SDK seals memos with it and gives
// workflow code no way to ask for it.
var memoConverter atomic.Pointer[converter.DataConverter]

// SetDataConverter tells the workflows the data converter their worker
// (or replayer) was built with; call it before the worker starts. Nil, or
// never called, is the default converter.
func SetDataConverter(dc converter.DataConverter) {
	if dc == nil {
		memoConverter.Store(nil)
		return
	}
	memoConverter.Store(&dc)
}

// dataConverter is the worker's data converter, for memos.
func dataConverter() converter.DataConverter {
	if dc := memoConverter.Load(); dc != nil {
		return *dc
	}
	return converter.GetDefaultDataConverter()
}
