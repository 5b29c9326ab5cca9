//go:build !linux

package main

import "time"

// cpuUse is what the process's threads have had from the CPUs so far; see
// cpuuse_linux.go.
type cpuUse struct {
	busy, wait time.Duration
}

// readCPUUse is not available on this system.
func readCPUUse() (cpuUse, bool) { return cpuUse{}, false }
