package kernels

import (
	"fmt"
	"os"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// Tier is a kernel implementation level.
type Tier uint8

// Tiers from slowest to fastest. Which ones exist depends on the build
// (GOARCH, the purego tag) and the CPU; see Tiers.
const (
	TierGeneric Tier = iota // pure Go reference, always available
	TierAVX2                // amd64: AVX2 + FMA + F16C
	TierAVXVNNI             // amd64: AVX2 tier + AVX-VNNI (VEX VPDPBUSD; Intel Alder Lake and later clients)
	TierAVX512              // amd64: AVX-512 F/BW/VL/DQ + VNNI
	TierNEON                // arm64: Advanced SIMD (baseline)
	TierNEONDot             // arm64: Advanced SIMD + SDOT (FEAT_DotProd)
)

func (t Tier) String() string {
	switch t {
	case TierGeneric:
		return "generic"
	case TierAVX2:
		return "avx2"
	case TierAVXVNNI:
		return "avx-vnni"
	case TierAVX512:
		return "avx512-vnni"
	case TierNEON:
		return "neon"
	case TierNEONDot:
		return "neon-dotprod"
	}
	return fmt.Sprintf("tier(%d)", uint8(t))
}

// kernelSet is one tier's implementations. Entries a tier does not speed up
// point at the generic ones.
type kernelSet struct {
	tier   Tier
	mulVec func(m *Matrix, dst []float32, x *Activation, r0, r1 int)
	mulMat func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int)
	// tiled says the tier has Tiled8 kernels (see tiles.go); the Tiled
	// entries run Tiled8 matrices, on every tier.
	tiled bool
	// noQ6 says the tier has no Q6 kernels; Prepare widens Q6 to Q8 for it.
	noQ6        bool
	mulVecTiled func(m *Matrix, dst []float32, x *Activation, r0, r1 int)
	mulMatTiled func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int)

	quantAct func(q []int8, d []float32, s []int32, x []float32)

	dot             func(a, b []float32) float32
	axpy            func(alpha float32, x, y []float32)
	dotRows         func(dst, rows, x []float32)
	axpyRows        func(y, alpha, rows []float32)
	dotRowsF16      func(dst []float32, rows []uint16, x []float32)
	axpyRowsF16     func(y, alpha []float32, rows []uint16)
	toF16           func(dst []uint16, src []float32)
	scale           func(alpha float32, x []float32)
	mulScaleOnePlus func(dst, x, w []float32, s float32)
	max             func(x []float32) float32
	expSub          func(x []float32, m float32) float32
	geluMul         func(dst, x, up []float32)
	softCap         func(x []float32, cap float32)
	rope            func(x, cos, sin []float32)
}

var genericSet = kernelSet{
	tier:            TierGeneric,
	mulVec:          mulVecGeneric,
	mulMat:          mulMatGeneric,
	mulVecTiled:     mulVecTiledGeneric,
	mulMatTiled:     mulMatTiledGeneric,
	quantAct:        quantizeActGeneric,
	dot:             dotGeneric,
	axpy:            axpyGeneric,
	dotRows:         dotRowsGeneric,
	axpyRows:        axpyRowsGeneric,
	dotRowsF16:      dotRowsF16Generic,
	axpyRowsF16:     axpyRowsF16Generic,
	toF16:           toF16Generic,
	scale:           scaleGeneric,
	mulScaleOnePlus: mulScaleOnePlusGeneric,
	max:             maxGeneric,
	expSub:          expSubGeneric,
	geluMul:         geluMulGeneric,
	softCap:         softCapGeneric,
	rope:            ropeGeneric,
}

// impl is the kernel set in use, chosen at init (best tier the CPU supports)
// and switched only by ForceTier in tests and benchmarks. It is not safe to
// switch while kernels run on other goroutines.
var impl = bestSet()

// prefillSuperblocks lets benchmarks compare the superblock prefill kernels
// with the per-chunk ones; always true outside benchmarks.
var prefillSuperblocks = true

func quantizeAct(q []int8, d []float32, s []int32, x []float32) { impl.quantAct(q, d, s, x) }

// CurrentTier is the tier in use.
func CurrentTier() Tier { return impl.tier }

// Tiers lists the tiers this build can run on this CPU, slowest first.
func Tiers() []Tier {
	ts := []Tier{TierGeneric}
	for _, s := range archSets() {
		ts = append(ts, s.tier)
	}
	return ts
}

// ForceTier switches to tier t (which must be in Tiers) and returns a
// function that restores the previous tier: `defer kernels.ForceTier(t)()`.
func ForceTier(t Tier) (restore func(), err error) {
	prev := impl
	if t == TierGeneric {
		impl = genericSet
		return func() { impl = prev }, nil
	}
	for _, s := range archSets() {
		if s.tier == t {
			impl = s
			return func() { impl = prev }, nil
		}
	}
	return nil, fmt.Errorf("kernels: tier %s is not available on this build/CPU", t)
}

// DisableAVX512 drops to the best tier below AVX-512 (AVX-VNNI where the CPU
// has it, else AVX2) and returns a restore function:
// `defer kernels.DisableAVX512()()`.
func DisableAVX512() (restore func()) { return capTier(TierAVXVNNI) }

// DisableAVX2 drops to the generic tier and returns a restore function.
func DisableAVX2() (restore func()) { return capTier(TierGeneric) }

func capTier(top Tier) func() {
	prev := impl
	if impl.tier > top {
		impl = genericSet
		for _, s := range archSets() {
			if s.tier <= top {
				impl = s
			}
		}
	}
	return func() { impl = prev }
}

// bestSet picks the fastest tier the CPU supports, or the one named by the
// CAFEQ_KERNELS environment variable (generic, avx2, avx-vnni, avx512-vnni, neon...).
func bestSet() kernelSet {
	want := os.Getenv("CAFEQ_KERNELS")
	best := genericSet
	for _, s := range archSets() {
		if want == s.tier.String() {
			return s
		}
		best = s
	}
	if want == TierGeneric.String() {
		return genericSet
	}
	return best
}

// CPUFeatures describes the CPU and the chosen tier for reports such as
// `cafeq bench`, e.g. "AMD EPYC 9B45 (2 cores; AVX2 FMA3 AVX512F ...) tier=avx512-vnni".
func CPUFeatures() string {
	var feats []string
	for _, f := range []cpuid.FeatureID{cpuid.AVX2, cpuid.FMA3, cpuid.F16C, cpuid.AVX512F, cpuid.AVX512BW,
		cpuid.AVX512VL, cpuid.AVX512DQ, cpuid.AVX512VNNI, cpuid.AVX512BF16, cpuid.GFNI, cpuid.AVXVNNI, cpuid.ASIMD, cpuid.ASIMDDP} {
		if cpuid.CPU.Supports(f) {
			feats = append(feats, f.String())
		}
	}
	return fmt.Sprintf("%s (%d cores; %s) tier=%s", strings.TrimSpace(cpuid.CPU.BrandName), cpuid.CPU.LogicalCores,
		strings.Join(feats, " "), impl.tier)
}
