package kernels

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU returns the calling thread's CPU time. Benchmarks report it as
// cpu-ns/op next to wall time because the shared development machine is
// often oversubscribed; it is only meaningful with the goroutine locked to
// its thread (see timedLoop).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// timedLoop runs fn b.N times on a locked thread and reports CPU-time
// throughput (cpu-GB/s for bytes per op, cpu-GMAC/s when macs > 0) and the
// throughput of the fastest call (best-GB/s) alongside the wall-clock
// numbers.
func timedLoop(b *testing.B, bytes, macs int64, fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(bytes)
	b.ResetTimer()
	c0 := threadCPU()
	best := time.Duration(1<<63 - 1)
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fn()
		best = min(best, time.Since(t0))
	}
	cpu := threadCPU() - c0
	// The fastest single call is the least disturbed by other processes.
	b.ReportMetric(float64(bytes)/float64(best.Nanoseconds()), "best-GB/s")
	if macs > 0 {
		b.ReportMetric(float64(macs)/float64(best.Nanoseconds()), "best-GMAC/s")
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(bytes)*float64(b.N)/float64(cpu.Nanoseconds()), "cpu-GB/s")
		if macs > 0 {
			b.ReportMetric(float64(macs)*float64(b.N)/float64(cpu.Nanoseconds()), "cpu-GMAC/s")
		}
	}
}
