//go:build !linux

package kernels

import "testing"

// timedLoop runs fn b.N times (wall-clock only on this OS).
func timedLoop(b *testing.B, bytes, macs int64, fn func()) {
	b.SetBytes(bytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fn()
	}
}
