//go:build !linux

package kernels

// allocWeights returns n zeroed bytes for matrix data (see alloc_linux.go).
func allocWeights(n int) []byte { return make([]byte, n) }
