//go:build unix

package nexus

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process has used: benchmarks report it per operation too, since
// wall time on a shared machine mostly measures the other tenants.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
