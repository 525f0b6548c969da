package control

// SetExecutionPageSize sets the page size of execution-ID queries and
// returns a function that restores it.
func SetExecutionPageSize(n int32) (restore func()) {
	old := executionPageSize
	executionPageSize = n
	return func() { executionPageSize = old }
}
