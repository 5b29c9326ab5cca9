//go:build !(amd64 || arm64) || purego

package kernels

// archSets: no SIMD tiers on this build; everything runs the generic reference.
func archSets() []kernelSet { return nil }
