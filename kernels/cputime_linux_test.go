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
// throughput (cpu-GB/s for bytes per op, cpu-GMAC/s when macs > 0)
// alongside the wall-clock numbers.
func timedLoop(b *testing.B, bytes, macs int64, fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(bytes)
	b.ResetTimer()
	c0 := threadCPU()
	for i := 0; i < b.N; i++ {
		fn()
	}
	cpu := threadCPU() - c0
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(bytes)*float64(b.N)/float64(cpu.Nanoseconds()), "cpu-GB/s")
		if macs > 0 {
			b.ReportMetric(float64(macs)*float64(b.N)/float64(cpu.Nanoseconds()), "cpu-GMAC/s")
		}
	}
}
