//go:build !(amd64 || arm64) || purego

package kernels

// hasGFNI: the GFNI kernels are amd64 ones.
const hasGFNI = false

// archSets: no SIMD tiers on this build; everything runs the generic reference.
func archSets() []kernelSet { return nil }
