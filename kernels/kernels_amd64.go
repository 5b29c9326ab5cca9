//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasBMI2
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
		cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VNNI
)

// archSets lists the SIMD tiers this CPU supports, slowest first.
func archSets() []kernelSet {
	var s []kernelSet
	if hasAVX2 {
		s = append(s, avx2Set)
	}
	if hasAVX512 {
		s = append(s, avx512Set)
	}
	return s
}

var avx2Set = func() kernelSet {
	s := genericSet
	s.tier = TierAVX2
	return s
}()

var avx512Set = func() kernelSet {
	s := avx2Set
	s.tier = TierAVX512
	return s
}()
