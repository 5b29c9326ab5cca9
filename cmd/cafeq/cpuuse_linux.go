package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// cpuUse is what the process's threads have had from the CPUs so far: CPU
// time (user + system) and the time they were runnable but waited for a CPU
// (the scheduler's run delay, summed over threads).
type cpuUse struct {
	busy, wait time.Duration
}

// readCPUUse reads the process's CPU time (getrusage) and its threads' run
// delay (/proc/self/task/*/schedstat: ns on a CPU, ns waiting on a run
// queue, timeslices); ok is false when either cannot be read.
func readCPUUse() (u cpuUse, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return u, false
	}
	u.busy = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	stats, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil || len(stats) == 0 {
		return u, false
	}
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the thread has exited
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(data), &run, &wait); err != nil {
			return u, false
		}
		u.wait += time.Duration(wait)
	}
	return u, true
}
