//go:build amd64 && !purego

package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:generate sh -c "cd ../asm && go run . -out ../kernels/dot_amd64.s -stubs ../kernels/dot_stubs_amd64.go -pkg kernels"

var (
	hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C // VCVTPH2PS/VCVTPS2PH for f16 scales and rows
	// AVX-VNNI is the VEX (256-bit) VPDPBUSD of Intel's clients since Alder
	// Lake; Zen 5 has it too.
	hasAVXVNNI = hasAVX2 && cpu.X86.HasAVXVNNI
	// VPDPBUSD on YMM is the EVEX (AVX-512VL) encoding in Go's assembler.
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
		cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VNNI
	// GFNI (GF2P8AFFINEQB) unpacks the Tiled8 Q3, Q5 and Q6 levels in fewer
	// instructions (asm/tiledgfni.go). Every AVX-512 CPU since Ice Lake and
	// Zen 4 has it, but Cascade Lake and Cooper Lake have AVX512_VNNI
	// without it, so the avx512-vnni tier keeps its other Q3/Q5/Q6 kernels.
	hasGFNI = hasAVX512 && cpu.X86.HasAVX512GFNI
)

// gfniTiled reports whether the avx512-vnni tier runs f's Tiled8 products
// with its GFNI kernels.
func gfniTiled(f Format) bool { return tiledGFNI && (f.Type == Q3 || f.Type == Q5 || f.Type == Q6) }

// archSets lists the SIMD tiers this CPU supports, slowest first.
func archSets() []kernelSet {
	var s []kernelSet
	if hasAVX2 {
		s = append(s, avx2Set)
	}
	if hasAVXVNNI {
		s = append(s, avxVNNISet)
	}
	if hasAVX512 {
		s = append(s, avx512Set)
	}
	return s
}

// dotKernel is the signature of the generated quantized dot kernels
// (see dot_stubs_amd64.go): R rows x T tokens into out[r+t*ostride].
type dotKernel func(out *float32, ostride uintptr, w *byte, wstride uintptr, q *int8, d *float32, s *int32, astride uintptr, groups uintptr, cpg uintptr)

// dotKernels holds one format's kernels: rows x 1 token (decode; 4 rows
// share each activation load), 1 x 1 (tails), 1 row x 4 tokens (prefill with
// row lengths that are not a multiple of 128).
type dotKernels struct {
	rows       int
	rnt1       dotKernel
	r1t1, r1t4 dotKernel
	// sb are the superblock prefill kernels for groups 32, 64, 128 (rows
	// whose length is a multiple of 128; nil for Q8).
	sb [3]sbKernel
}

// sbKernel is the signature of the superblock prefill kernels: one row x 4
// tokens, cols = 128*nsb.
type sbKernel func(out *float32, ostride uintptr, w *byte, q *int8, d *float32, s *int32, astride uintptr, nsb uintptr)

// quantKernels holds a tier's kernels for each packed format; lookup picks
// them by Format.
type quantKernels struct {
	q4, q4a, q3, q3a, q6, q5, q8 dotKernels
	// superblock formats (q4_k, q4_k_asym, q3_k, q3_k_asym, q6_k, q5_k): the
	// AVX2 kernels on every tier (row-major matrices; Tiled8 ones take tiledT1...)
	q4k, q4ka, q3k, q3ka, q6k, q5k dotKernels
}

func (qk *quantKernels) lookup(f Format) *dotKernels {
	switch {
	case f.Super && f.Type == Q4 && !f.Asym:
		return &qk.q4k
	case f.Super && f.Type == Q4:
		return &qk.q4ka
	case f.Super && f.Type == Q3 && !f.Asym:
		return &qk.q3k
	case f.Super && f.Type == Q3:
		return &qk.q3ka
	case f.Super && f.Type == Q6:
		return &qk.q6k
	case f.Super && f.Type == Q5:
		return &qk.q5k
	case f.Super:
		return nil
	case f.Type == Q4 && !f.Asym:
		return &qk.q4
	case f.Type == Q4:
		return &qk.q4a
	case f.Type == Q3 && !f.Asym:
		return &qk.q3
	case f.Type == Q3:
		return &qk.q3a
	case f.Type == Q6:
		return &qk.q6
	case f.Type == Q5:
		return &qk.q5
	case f.Type == Q8:
		return &qk.q8
	}
	return nil
}

var avx2Kernels = quantKernels{
	q4: dotKernels{4, q4SymR4T1AVX2, q4SymR1T1AVX2, q4SymR1T4AVX2,
		[3]sbKernel{q4SymG32SBT4AVX2, q4SymG64SBT4AVX2, q4SymG128SBT4AVX2}},
	q4a: dotKernels{4, q4AsymR4T1AVX2, q4AsymR1T1AVX2, q4AsymR1T4AVX2,
		[3]sbKernel{q4AsymG32SBT4AVX2, q4AsymG64SBT4AVX2, q4AsymG128SBT4AVX2}},
	q3: dotKernels{4, q3SymR4T1AVX2, q3SymR1T1AVX2, q3SymR1T4AVX2,
		[3]sbKernel{q3SymG32SBT4AVX2, q3SymG64SBT4AVX2, q3SymG128SBT4AVX2}},
	q3a: dotKernels{4, q3AsymR4T1AVX2, q3AsymR1T1AVX2, q3AsymR1T4AVX2,
		[3]sbKernel{q3AsymG32SBT4AVX2, q3AsymG64SBT4AVX2, q3AsymG128SBT4AVX2}},
	q6:   dotKernels{4, q6SymR4T1AVX2, q6SymR1T1AVX2, q6SymR1T4AVX2, [3]sbKernel{}},
	q5:   dotKernels{4, q5SymR4T1AVX2, q5SymR1T1AVX2, q5SymR1T4AVX2, [3]sbKernel{}},
	q8:   dotKernels{4, q8SymR4T1AVX2, q8SymR1T1AVX2, q8SymR1T4AVX2, [3]sbKernel{}},
	q4k:  superKernels.q4k,
	q4ka: superKernels.q4ka,
	q3k:  superKernels.q3k,
	q3ka: superKernels.q3ka,
	q6k:  superKernels.q6k,
	q5k:  superKernels.q5k,
}

// superKernels are the superblock formats' AVX2 kernels, shared by every tier.
var superKernels = quantKernels{
	q4k:  dotKernels{4, q4kSymR4T1AVX2, q4kSymR1T1AVX2, q4kSymR1T4AVX2, [3]sbKernel{}},
	q4ka: dotKernels{4, q4kAsymR4T1AVX2, q4kAsymR1T1AVX2, q4kAsymR1T4AVX2, [3]sbKernel{}},
	q3k:  dotKernels{4, q3kSymR4T1AVX2, q3kSymR1T1AVX2, q3kSymR1T4AVX2, [3]sbKernel{}},
	q3ka: dotKernels{4, q3kAsymR4T1AVX2, q3kAsymR1T1AVX2, q3kAsymR1T4AVX2, [3]sbKernel{}},
	q6k:  dotKernels{4, q6kSymR4T1AVX2, q6kSymR1T1AVX2, q6kSymR1T4AVX2, [3]sbKernel{}},
	q5k:  dotKernels{4, q5kSymR4T1AVX2, q5kSymR1T1AVX2, q5kSymR1T4AVX2, [3]sbKernel{}},
}

var avx512Kernels = quantKernels{
	q4: dotKernels{4, q4SymR4T1AVX512, q4SymR1T1AVX512, q4SymR1T4AVX512,
		[3]sbKernel{q4SymG32SBT4AVX512, q4SymG64SBT4AVX512, q4SymG128SBT4AVX512}},
	q4a: dotKernels{4, q4AsymR4T1AVX512, q4AsymR1T1AVX512, q4AsymR1T4AVX512,
		[3]sbKernel{q4AsymG32SBT4AVX512, q4AsymG64SBT4AVX512, q4AsymG128SBT4AVX512}},
	q3: dotKernels{4, q3SymR4T1AVX512, q3SymR1T1AVX512, q3SymR1T4AVX512,
		[3]sbKernel{q3SymG32SBT4AVX512, q3SymG64SBT4AVX512, q3SymG128SBT4AVX512}},
	q3a: dotKernels{4, q3AsymR4T1AVX512, q3AsymR1T1AVX512, q3AsymR1T4AVX512,
		[3]sbKernel{q3AsymG32SBT4AVX512, q3AsymG64SBT4AVX512, q3AsymG128SBT4AVX512}},
	q6:   dotKernels{4, q6SymR4T1AVX512, q6SymR1T1AVX512, q6SymR1T4AVX512, [3]sbKernel{}},
	q5:   dotKernels{4, q5SymR4T1AVX512, q5SymR1T1AVX512, q5SymR1T4AVX512, [3]sbKernel{}},
	q8:   dotKernels{4, q8SymR4T1AVX512, q8SymR1T1AVX512, q8SymR1T4AVX512, [3]sbKernel{}},
	q4k:  superKernels.q4k,
	q4ka: superKernels.q4ka,
	q3k:  superKernels.q3k,
	q3ka: superKernels.q3ka,
	q6k:  superKernels.q6k,
	q5k:  superKernels.q5k,
}

// tiledT1 and tiledT4 call tier t's Tiled8 decode (8 rows x 1 token, nblk
// row blocks) and prefill (8 rows x 4 tokens) kernels of f (asm/tiled.go,
// asm/tiledvnni.go). They call the kernels directly, not through func values,
// so that escape analysis sees the kernels' noescape pragma and stack buffers
// stay on the stack. Symmetric kernels read the activation's sums s,
// asymmetric ones its products ds (Activation.DS).
func tiledT1(t Tier, f Format, out *float32, w *byte, q *int8, d *float32, s *int32, ds *float32, groups, cpg, nblk uintptr) {
	switch {
	case t == TierAVX512 && gfniTiled(f):
		switch {
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T1AVX512GFNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q3:
			q3kAsymX8T1AVX512GFNI(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q5:
			q5kSymX8T1AVX512GFNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Super:
			q6kSymX8T1AVX512GFNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T1AVX512GFNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q3:
			q3AsymX8T1AVX512GFNI(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q5:
			q5SymX8T1AVX512GFNI(out, w, q, d, s, groups, cpg, nblk)
		default:
			q6SymX8T1AVX512GFNI(out, w, q, d, s, groups, cpg, nblk)
		}
	case t == TierAVX512:
		switch {
		case f.Super && f.Type == Q4 && !f.Asym:
			q4kSymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q4:
			q4kAsymX8T1AVX512(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q3:
			q3kAsymX8T1AVX512(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q5:
			q5kSymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Super:
			q6kSymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q4 && !f.Asym:
			q4SymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q4:
			q4AsymX8T1AVX512(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q3:
			q3AsymX8T1AVX512(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q6:
			q6SymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q5:
			q5SymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		default:
			q8SymX8T1AVX512(out, w, q, d, s, groups, cpg, nblk)
		}
	case t == TierAVXVNNI:
		switch {
		case f.Super && f.Type == Q4 && !f.Asym:
			q4kSymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q4:
			q4kAsymX8T1AVXVNNI(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q3:
			q3kAsymX8T1AVXVNNI(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q5:
			q5kSymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Super:
			q6kSymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q4 && !f.Asym:
			q4SymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q4:
			q4AsymX8T1AVXVNNI(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q3:
			q3AsymX8T1AVXVNNI(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q6:
			q6SymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q5:
			q5SymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		default:
			q8SymX8T1AVXVNNI(out, w, q, d, s, groups, cpg, nblk)
		}
	default:
		switch {
		case f.Super && f.Type == Q4 && !f.Asym:
			q4kSymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q4:
			q4kAsymX8T1AVX2(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Super && f.Type == Q3:
			q3kAsymX8T1AVX2(out, w, q, d, ds, groups, cpg, nblk)
		case f.Super && f.Type == Q5:
			q5kSymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Super:
			q6kSymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q4 && !f.Asym:
			q4SymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q4:
			q4AsymX8T1AVX2(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q3:
			q3AsymX8T1AVX2(out, w, q, d, ds, groups, cpg, nblk)
		case f.Type == Q6:
			q6SymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		case f.Type == Q5:
			q5SymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		default:
			q8SymX8T1AVX2(out, w, q, d, s, groups, cpg, nblk)
		}
	}
}

func tiledT4(t Tier, f Format, out *float32, ostride uintptr, w *byte, q *int8, d *float32, s *int32, ds *float32, astride, groups, cpg uintptr) {
	switch {
	case t == TierAVX512 && gfniTiled(f):
		switch {
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T4AVX512GFNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q3:
			q3kAsymX8T4AVX512GFNI(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q5:
			q5kSymX8T4AVX512GFNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super:
			q6kSymX8T4AVX512GFNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T4AVX512GFNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q3:
			q3AsymX8T4AVX512GFNI(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q5:
			q5SymX8T4AVX512GFNI(out, ostride, w, q, d, s, astride, groups, cpg)
		default:
			q6SymX8T4AVX512GFNI(out, ostride, w, q, d, s, astride, groups, cpg)
		}
	case t == TierAVX512:
		switch {
		case f.Super && f.Type == Q4 && !f.Asym:
			q4kSymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q4:
			q4kAsymX8T4AVX512(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q3:
			q3kAsymX8T4AVX512(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q5:
			q5kSymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super:
			q6kSymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q4 && !f.Asym:
			q4SymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q4:
			q4AsymX8T4AVX512(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q3:
			q3AsymX8T4AVX512(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q6:
			q6SymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q5:
			q5SymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		default:
			q8SymX8T4AVX512(out, ostride, w, q, d, s, astride, groups, cpg)
		}
	case t == TierAVXVNNI:
		switch {
		case f.Super && f.Type == Q4 && !f.Asym:
			q4kSymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q4:
			q4kAsymX8T4AVXVNNI(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q3:
			q3kAsymX8T4AVXVNNI(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q5:
			q5kSymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super:
			q6kSymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q4 && !f.Asym:
			q4SymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q4:
			q4AsymX8T4AVXVNNI(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q3:
			q3AsymX8T4AVXVNNI(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q6:
			q6SymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q5:
			q5SymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		default:
			q8SymX8T4AVXVNNI(out, ostride, w, q, d, s, astride, groups, cpg)
		}
	default:
		switch {
		case f.Super && f.Type == Q4 && !f.Asym:
			q4kSymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q4:
			q4kAsymX8T4AVX2(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q3 && !f.Asym:
			q3kSymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super && f.Type == Q3:
			q3kAsymX8T4AVX2(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Super && f.Type == Q5:
			q5kSymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Super:
			q6kSymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q4 && !f.Asym:
			q4SymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q4:
			q4AsymX8T4AVX2(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q3 && !f.Asym:
			q3SymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q3:
			q3AsymX8T4AVX2(out, ostride, w, q, d, ds, astride, groups, cpg)
		case f.Type == Q6:
			q6SymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		case f.Type == Q5:
			q5SymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		default:
			q8SymX8T4AVX2(out, ostride, w, q, d, s, astride, groups, cpg)
		}
	}
}

// tiledPairT1 and tiledPairT4 call the AVX-512 tier's 512-bit Tiled8
// kernels, which take two adjacent row blocks (16 rows, the second wstride
// bytes after the first) per ZMM register: decode over npair pairs, and
// prefill of one pair with 4 tokens.
func tiledPairT1(f Format, out *float32, w *byte, wstride uintptr, q *int8, d *float32, s *int32, ds *float32, groups, cpg, npair uintptr) {
	gfni := gfniTiled(f)
	switch {
	case gfni && f.Super && f.Type == Q3 && !f.Asym:
		q3kSymX16T1AVX512GFNI(out, w, wstride, q, d, s, groups, cpg, npair)
	case gfni && f.Super && f.Type == Q3:
		q3kAsymX16T1AVX512GFNI(out, w, wstride, q, d, ds, groups, cpg, npair)
	case gfni && f.Super && f.Type == Q5:
		q5kSymX16T1AVX512GFNI(out, w, wstride, q, d, s, groups, cpg, npair)
	case gfni && f.Super:
		q6kSymX16T1AVX512GFNI(out, w, wstride, q, d, s, groups, cpg, npair)
	case gfni && f.Type == Q3 && !f.Asym:
		q3SymX16T1AVX512GFNI(out, w, wstride, q, d, s, groups, cpg, npair)
	case gfni && f.Type == Q3:
		q3AsymX16T1AVX512GFNI(out, w, wstride, q, d, ds, groups, cpg, npair)
	case gfni && f.Type == Q5:
		q5SymX16T1AVX512GFNI(out, w, wstride, q, d, s, groups, cpg, npair)
	case gfni:
		q6SymX16T1AVX512GFNI(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Super && f.Type == Q4 && !f.Asym:
		q4kSymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Super && f.Type == Q4:
		q4kAsymX16T1AVX512(out, w, wstride, q, d, ds, groups, cpg, npair)
	case f.Super && f.Type == Q3 && !f.Asym:
		q3kSymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Super && f.Type == Q3:
		q3kAsymX16T1AVX512(out, w, wstride, q, d, ds, groups, cpg, npair)
	case f.Super && f.Type == Q5:
		q5kSymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Super:
		q6kSymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Type == Q4 && !f.Asym:
		q4SymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Type == Q4:
		q4AsymX16T1AVX512(out, w, wstride, q, d, ds, groups, cpg, npair)
	case f.Type == Q3 && !f.Asym:
		q3SymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Type == Q3:
		q3AsymX16T1AVX512(out, w, wstride, q, d, ds, groups, cpg, npair)
	case f.Type == Q6:
		q6SymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	case f.Type == Q5:
		q5SymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	default:
		q8SymX16T1AVX512(out, w, wstride, q, d, s, groups, cpg, npair)
	}
}

func tiledPairT4(f Format, out *float32, ostride uintptr, w *byte, wstride uintptr, q *int8, d *float32, s *int32, ds *float32, astride, groups, cpg uintptr) {
	gfni := gfniTiled(f)
	switch {
	case gfni && f.Super && f.Type == Q3 && !f.Asym:
		q3kSymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case gfni && f.Super && f.Type == Q3:
		q3kAsymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, ds, astride, groups, cpg)
	case gfni && f.Super && f.Type == Q5:
		q5kSymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case gfni && f.Super:
		q6kSymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case gfni && f.Type == Q3 && !f.Asym:
		q3SymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case gfni && f.Type == Q3:
		q3AsymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, ds, astride, groups, cpg)
	case gfni && f.Type == Q5:
		q5SymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case gfni:
		q6SymX16T4AVX512GFNI(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Super && f.Type == Q4 && !f.Asym:
		q4kSymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Super && f.Type == Q4:
		q4kAsymX16T4AVX512(out, ostride, w, wstride, q, d, ds, astride, groups, cpg)
	case f.Super && f.Type == Q3 && !f.Asym:
		q3kSymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Super && f.Type == Q3:
		q3kAsymX16T4AVX512(out, ostride, w, wstride, q, d, ds, astride, groups, cpg)
	case f.Super && f.Type == Q5:
		q5kSymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Super:
		q6kSymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Type == Q4 && !f.Asym:
		q4SymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Type == Q4:
		q4AsymX16T4AVX512(out, ostride, w, wstride, q, d, ds, astride, groups, cpg)
	case f.Type == Q3 && !f.Asym:
		q3SymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Type == Q3:
		q3AsymX16T4AVX512(out, ostride, w, wstride, q, d, ds, astride, groups, cpg)
	case f.Type == Q6:
		q6SymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	case f.Type == Q5:
		q5SymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	default:
		q8SymX16T4AVX512(out, ostride, w, wstride, q, d, s, astride, groups, cpg)
	}
}

// mulVecTiledSIMD runs tier t's kernels on whole row blocks in one call; a
// range that starts or ends inside a block computes that block into a buffer
// and keeps the rows asked for.
func mulVecTiledSIMD(t Tier, m *Matrix, dst []float32, x *Activation, r0, r1 int) {
	f := m.Format
	blockBytes := tiledBlockBytes(f, m.Cols)
	groups := uintptr(m.Cols / f.Group)
	cpg := uintptr(f.Group / ChunkSize)
	q, d, s, ds := &x.Q[0], &x.D[0], &x.S[0], &x.DS[0]
	b0, b1 := (r0+TileRows-1)/TileRows, r1/TileRows // whole blocks
	if r0%TileRows != 0 {
		b := r0 / TileRows
		tiledPartialBlock(t, m, dst, x, b, r0, min(r1, (b+1)*TileRows))
	}
	b := b0
	if np := (b1 - b0) / 2; t == TierAVX512 && tiledPairs && np > 0 {
		tiledPairT1(f, &dst[b*TileRows], &m.Data[b*blockBytes], uintptr(blockBytes), q, d, s, ds, groups, cpg, uintptr(np))
		b += 2 * np
	}
	if b < b1 {
		tiledT1(t, f, &dst[b*TileRows], &m.Data[b*blockBytes], q, d, s, ds, groups, cpg, uintptr(b1-b))
	}
	if r1%TileRows != 0 && r1/TileRows >= b0 {
		b := r1 / TileRows
		tiledPartialBlock(t, m, dst, x, b, b*TileRows, r1)
	}
}

// tiledPartialBlock computes row block b into a buffer and keeps rows [lo, hi).
func tiledPartialBlock(t Tier, m *Matrix, dst []float32, x *Activation, b, lo, hi int) {
	var part [TileRows]float32
	tiledT1(t, m.Format, &part[0], &m.Data[b*tiledBlockBytes(m.Format, m.Cols)], &x.Q[0], &x.D[0], &x.S[0], &x.DS[0],
		uintptr(m.Cols/m.Format.Group), uintptr(m.Format.Group/ChunkSize), 1)
	copy(dst[lo:hi], part[lo-b*TileRows:hi-b*TileRows])
}

// mulMatTiledSIMD walks tokens in blocks whose activations fit in about
// 256 KiB (L2) and, inside a block, row blocks in the outer loop, so that a
// row block's tiles are read from memory once per token block and meet its
// tokens four at a time.
func mulMatTiledSIMD(tier Tier, m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
	if xs.N == 0 {
		return
	}
	f := m.Format
	blockBytes := tiledBlockBytes(f, m.Cols)
	groups := uintptr(m.Cols / m.Format.Group)
	cpg := uintptr(m.Format.Group / ChunkSize)
	nb := xs.Blocks
	tb := max(4, (256<<10)/m.Cols&^3)
	var part [4 * TileRows]float32
	for t0 := 0; t0 < xs.N; t0 += tb {
		t1 := min(t0+tb, xs.N)
		for b := r0 / TileRows; b*TileRows < r1; b++ {
			lo, hi := max(r0, b*TileRows), min(r1, (b+1)*TileRows)
			w := &m.Data[b*blockBytes]
			if tier == TierAVX512 && tiledPairs && lo == b*TileRows && lo+2*TileRows <= r1 {
				// two whole row blocks: the 512-bit kernels
				for t := t0; t < t1; t++ {
					q, d, s, ds := &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], &xs.DS[t*nb]
					if t+4 <= t1 {
						tiledPairT4(f, &dst[t*m.Rows+lo], uintptr(m.Rows), w, uintptr(blockBytes), q, d, s, ds, uintptr(nb), groups, cpg)
						t += 3
						continue
					}
					tiledPairT1(f, &dst[t*m.Rows+lo], w, uintptr(blockBytes), q, d, s, ds, groups, cpg, 1)
				}
				b++
				continue
			}
			t := t0
			for ; t+4 <= t1; t += 4 {
				q, d, s, ds := &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], &xs.DS[t*nb]
				if lo == b*TileRows && hi == lo+TileRows {
					tiledT4(tier, f, &dst[t*m.Rows+lo], uintptr(m.Rows), w, q, d, s, ds, uintptr(nb), groups, cpg)
					continue
				}
				tiledT4(tier, f, &part[0], TileRows, w, q, d, s, ds, uintptr(nb), groups, cpg)
				for i := 0; i < 4; i++ {
					copy(dst[(t+i)*m.Rows+lo:(t+i)*m.Rows+hi], part[i*TileRows+lo-b*TileRows:][:hi-lo])
				}
			}
			for ; t < t1; t++ {
				tiledT1(tier, f, &part[0], w, &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], &xs.DS[t*nb], groups, cpg, 1)
				copy(dst[t*m.Rows+lo:t*m.Rows+hi], part[lo-b*TileRows:][:hi-lo])
			}
		}
	}
}

var avx2Set = func() kernelSet {
	s := genericSet
	s.tier = TierAVX2
	s.tiled = true
	s.mulVecTiled = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) {
		mulVecTiledSIMD(TierAVX2, m, dst, x, r0, r1)
	}
	s.mulMatTiled = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatTiledSIMD(TierAVX2, m, dst, xs, r0, r1)
	}
	s.mulVec = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) { mulVecSIMD(&avx2Kernels, m, dst, x, r0, r1) }
	s.mulMat = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatSIMD(&avx2Kernels, m, dst, xs, r0, r1)
	}
	s.dot = dotAVX2
	s.axpy = axpyAVX2
	s.dotRows = dotRowsAVX2
	s.axpyRows = axpyRowsAVX2
	s.max = maxAVX2
	s.geluMul = geluMulAVX2
	s.quantAct = quantActAVX2Go
	s.softCap = softCapAVX2
	s.expSub = expSubAVX2
	s.scale = scaleAVX2
	s.mulScaleOnePlus = mulScaleOnePlusAVX2
	s.rope = ropeAVX2
	s.dotRowsF16 = dotRowsF16AVX2
	s.axpyRowsF16 = axpyRowsF16AVX2
	s.toF16 = toF16AVX2Go
	return s
}()

// avxVNNISet is the AVX2 tier with VPDPBUSD Tiled8 kernels (VEX-encoded,
// 256-bit). Its row-major kernels stay AVX2: every quantized weight of a
// model is tiled at load.
var avxVNNISet = func() kernelSet {
	s := avx2Set
	s.tier = TierAVXVNNI
	s.mulVecTiled = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) {
		mulVecTiledSIMD(TierAVXVNNI, m, dst, x, r0, r1)
	}
	s.mulMatTiled = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatTiledSIMD(TierAVXVNNI, m, dst, xs, r0, r1)
	}
	return s
}()

var avx512Set = func() kernelSet {
	s := avx2Set
	s.tier = TierAVX512
	s.mulVecTiled = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) {
		mulVecTiledSIMD(TierAVX512, m, dst, x, r0, r1)
	}
	s.mulMatTiled = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatTiledSIMD(TierAVX512, m, dst, xs, r0, r1)
	}
	s.mulVec = func(m *Matrix, dst []float32, x *Activation, r0, r1 int) {
		mulVecSIMD(&avx512Kernels, m, dst, x, r0, r1)
	}
	s.mulMat = func(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
		mulMatSIMD(&avx512Kernels, m, dst, xs, r0, r1)
	}
	// the f32 loops at 16 lanes, their n%16 tails masked inside the kernels
	s.dot = dotAVX512
	s.axpy = axpyAVX512
	s.axpyRows = axpyRowsAVX512
	s.max = maxAVX512
	s.geluMul = geluMulAVX512
	s.softCap = softCapAVX512
	s.expSub = expSubAVX512
	s.scale = scaleAVX512
	s.mulScaleOnePlus = mulScaleOnePlusAVX512
	s.rope = ropeAVX512
	s.dotRowsF16 = dotRowsF16AVX512
	s.axpyRowsF16 = axpyRowsF16AVX512
	s.toF16 = toF16AVX512Go
	return s
}()

// mulVecSIMD runs the multi-row kernel over [r0, r1) and the 1-row kernel on
// the last rows. Float formats fall back to the generic path.
func mulVecSIMD(qk *quantKernels, m *Matrix, dst []float32, x *Activation, r0, r1 int) {
	k := qk.lookup(m.Format)
	if k == nil && m.Format.Type.Quantized() {
		mulVecGeneric(m, dst, x, r0, r1)
		return
	}
	if k == nil {
		mulVecFloatAVX2(m, dst, x.F32, r0, r1)
		return
	}
	rb := m.Format.RowBytes(m.Cols)
	groups := uintptr(m.Cols / m.Format.Group)
	cpg := uintptr(m.Format.Group / ChunkSize)
	q, d, s := &x.Q[0], &x.D[0], &x.S[0]
	r := r0
	for ; r+k.rows <= r1; r += k.rows {
		k.rnt1(&dst[r], 0, &m.Data[r*rb], uintptr(rb), q, d, s, 0, groups, cpg)
	}
	for ; r < r1; r++ {
		k.r1t1(&dst[r], 0, &m.Data[r*rb], uintptr(rb), q, d, s, 0, groups, cpg)
	}
}

// mulMatSIMD tiles tokens x rows: for each block of tokens whose 8-bit
// activations fit in about 256 KiB (L2), it walks the rows so that a row's
// packed data is read once per block and stays in L1 while it meets every
// token of the block, four tokens per kernel call (one unpack per four dot
// products).
func mulMatSIMD(qk *quantKernels, m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
	k := qk.lookup(m.Format)
	if k == nil && m.Format.Type.Quantized() {
		mulMatGeneric(m, dst, xs, r0, r1)
		return
	}
	if k == nil {
		mulMatFloatAVX2(m, dst, xs, r0, r1)
		return
	}
	if xs.N == 0 {
		return
	}
	rb := m.Format.RowBytes(m.Cols)
	groups := uintptr(m.Cols / m.Format.Group)
	cpg := uintptr(m.Format.Group / ChunkSize)
	nb := xs.Blocks
	stride := uintptr(nb)
	var sb sbKernel
	if m.Cols%128 == 0 && prefillSuperblocks && !m.Format.Super {
		sb = k.sb[m.Format.Group/64] // groups 32, 64, 128 -> 0, 1, 2
	}
	nsb := uintptr(m.Cols / 128)
	tb := max(4, (256<<10)/m.Cols&^3)
	ostride := uintptr(m.Rows)
	for t0 := 0; t0 < xs.N; t0 += tb {
		t1 := min(t0+tb, xs.N)
		for r := r0; r < r1; r++ {
			w := &m.Data[r*rb]
			t := t0
			for ; t+4 <= t1; t += 4 {
				out := &dst[t*m.Rows+r] // token t+i's result lands at out + i*Rows
				if sb != nil {
					sb(out, ostride, w, &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], stride, nsb)
				} else {
					k.r1t4(out, ostride, w, uintptr(rb), &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], stride, groups, cpg)
				}
			}
			for ; t < t1; t++ {
				k.r1t1(&dst[t*m.Rows+r], 0, w, uintptr(rb), &xs.Q[t*nb*ChunkSize], &xs.D[t*nb], &xs.S[t*nb], stride, groups, cpg)
			}
		}
	}
}

func dotAVX2(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	return dotF32AVX2(&a[0], &b[0], uintptr(len(a)))
}

func axpyAVX2(alpha float32, x, y []float32) {
	if len(y) == 0 {
		return
	}
	axpyF32AVX2(alpha, &x[0], &y[0], uintptr(len(y)))
}

// maxAVX2 runs the 8-wide kernel on the bulk and folds in the tail.
func maxAVX2(x []float32) float32 {
	n := len(x) &^ 7
	if n == 0 {
		return maxGeneric(x)
	}
	m := maxF32AVX2(&x[0], uintptr(n))
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m
}

// dotRowsAVX2 takes rows 4 at a time with the 4-token f32 prefill kernel
// (x plays the weight row, the 4 rows the tokens), so x is read once per 4
// rows; rows left over, or lengths that are not a multiple of 8, go one by one.
func dotRowsAVX2(dst, rows, x []float32) {
	n, i := len(x), 0
	if n%8 == 0 && n > 0 {
		for ; i+4 <= len(dst); i += 4 {
			dotF32T4AVX2(&dst[i], 1, (*byte)(unsafe.Pointer(&x[0])), &rows[i*n], uintptr(n), uintptr(n))
		}
	}
	for ; i < len(dst); i++ {
		dst[i] = dotAVX2(rows[i*n:(i+1)*n], x)
	}
}

// axpyRowsAVX2 adds rows 4 at a time (y loaded and stored once per 4).
func axpyRowsAVX2(y, alpha, rows []float32) {
	n, i := len(y), 0
	if n%8 == 0 && n > 0 {
		for ; i+4 <= len(alpha); i += 4 {
			axpyF32X4AVX2(&alpha[i], &rows[i*n], uintptr(n), &y[0], uintptr(n))
		}
	}
	for ; i < len(alpha); i++ {
		axpyAVX2(alpha[i], rows[i*n:(i+1)*n], y)
	}
}

// geluMulAVX2 runs the 8-wide kernel on the bulk and the reference on the tail.
func geluMulAVX2(dst, x, up []float32) {
	n := len(dst) &^ 7
	if n > 0 {
		var u *float32
		if up != nil {
			u = &up[0]
		}
		geluMulF32AVX2(&dst[0], &x[0], u, uintptr(n))
	}
	if n < len(dst) {
		var ut []float32
		if up != nil {
			ut = up[n:]
		}
		geluMulGeneric(dst[n:], x[n:], ut)
	}
}

// quantActAVX2Go quantizes the full 32-blocks with the kernel and a partial
// last block with the reference.
func quantActAVX2Go(q []int8, d []float32, s []int32, x []float32) {
	full := min(len(x)/ChunkSize, len(d))
	if full > 0 {
		quantActAVX2(&q[0], &d[0], &s[0], &x[0], uintptr(full))
	}
	if full < len(d) {
		quantizeActGeneric(q[full*ChunkSize:], d[full:], s[full:], x[full*ChunkSize:])
	}
}

func softCapAVX2(x []float32, cap float32) {
	n := len(x) &^ 7
	if n > 0 {
		softCapF32AVX2(&x[0], uintptr(n), cap)
	}
	softCapGeneric(x[n:], cap)
}

func scaleAVX2(alpha float32, x []float32) {
	n := len(x) &^ 7
	if n > 0 {
		scaleF32AVX2(alpha, &x[0], uintptr(n))
	}
	scaleGeneric(alpha, x[n:])
}

func mulScaleOnePlusAVX2(dst, x, w []float32, s float32) {
	n := len(dst) &^ 7
	if n > 0 {
		x, w = x[:len(dst)], w[:len(dst)]
		mulScaleOnePlusF32AVX2(&dst[0], &x[0], &w[0], uintptr(n), s)
	}
	mulScaleOnePlusGeneric(dst[n:], x[n:], w[n:], s)
}

// ropeAVX2 rotates the first h&^7 pairs with the kernel and the rest with
// the reference. RoPE has checked len(x) == 2*len(cos) == 2*len(sin).
func ropeAVX2(x, cos, sin []float32) {
	h := len(x) / 2
	n := h &^ 7
	if n > 0 {
		ropeF32AVX2(&x[0], &cos[0], &sin[0], uintptr(h), uintptr(n))
	}
	ropePairs(x, cos, sin, n)
}

// dotRowsF16AVX2 and axpyRowsF16AVX2 take the f16 KV cache's rows four at a
// time (the f32 vector loaded, or y loaded and stored, once per four), the
// remaining rows one at a time and any n%8 tail by the reference. The
// remaining rows of a dot are an F16 matrix's MulVec.
func dotRowsF16AVX2(dst []float32, rows []uint16, x []float32) {
	n, i := len(x), 0
	if n == 0 {
		clear(dst) // empty rows: every dot is 0
		return
	}
	if n%8 == 0 && n > 0 {
		for ; i+4 <= len(dst); i += 4 {
			dotF16X4AVX2(&dst[i], &rows[i*n], uintptr(n), &x[0], uintptr(n))
		}
	}
	if i < len(dst) && n > 0 {
		rest := Matrix{Format: FormatF16, Rows: len(dst) - i, Cols: n, Data: f16Bytes(rows[i*n:])}
		mulVecFloatAVX2(&rest, dst[i:], x, 0, rest.Rows)
	}
}

func axpyRowsF16AVX2(y, alpha []float32, rows []uint16) {
	n, i := len(y), 0
	if n%8 == 0 && n > 0 {
		for ; i+4 <= len(alpha); i += 4 {
			axpyF16X4AVX2(&alpha[i], &rows[i*n], uintptr(n), &y[0], uintptr(n))
		}
	}
	n8 := n &^ 7
	for ; i < len(alpha); i++ {
		row := rows[i*n : (i+1)*n]
		if n8 > 0 {
			axpyF16AVX2(alpha[i], &row[0], &y[0], uintptr(n8))
		}
		axpyF16Generic(alpha[i], row[n8:], y[n8:])
	}
}

func toF16AVX2Go(dst []uint16, src []float32) {
	n := len(src) &^ 7
	if n > 0 {
		toF16AVX2(&dst[0], &src[0], uintptr(n))
	}
	toF16Generic(dst[n:], src[n:])
}

func expSubAVX2(x []float32, m float32) float32 {
	n := len(x) &^ 7
	var sum float32
	if n > 0 {
		sum = expSubF32AVX2(&x[0], uintptr(n), m)
	}
	return sum + expSubGeneric(x[n:], m)
}

// mulVecFloatAVX2 is MulVec for F32/F16/BF16 rows: one SIMD dot per row, the
// n%8 tail by the reference.
func mulVecFloatAVX2(m *Matrix, dst, x []float32, r0, r1 int) {
	n := m.Cols &^ 7
	for r := r0; r < r1; r++ {
		row := m.row(r)
		switch m.Format.Type {
		case F32:
			dst[r] = dotF32AVX2((*float32)(unsafe.Pointer(&row[0])), &x[0], uintptr(m.Cols))
			continue
		case F16:
			if n > 0 {
				dst[r] = dotF16AVX2(&row[0], &x[0], uintptr(n))
			} else {
				dst[r] = 0
			}
		case BF16:
			if n > 0 {
				dst[r] = dotBF16AVX2(&row[0], &x[0], uintptr(n))
			} else {
				dst[r] = 0
			}
		}
		if n < m.Cols {
			dst[r] += dotRowFloatGeneric(m.Format.Type, row[2*n:], x[n:])
		}
	}
}

// mulMatFloatAVX2 is MulMat for F32/F16/BF16 rows: each row meets 4 tokens
// per kernel call (read once per 4 tokens instead of once per token), the
// n%8 column tail and the n%4 token tail by the reference.
func mulMatFloatAVX2(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
	var k func(out *float32, ostride uintptr, w *byte, x *float32, xstride uintptr, n uintptr)
	switch m.Format.Type {
	case F32:
		k = dotF32T4AVX2
	case F16:
		k = dotF16T4AVX2
	case BF16:
		k = dotBF16T4AVX2
	}
	n8 := m.Cols &^ 7
	esz := m.Format.BlockBytes()
	for r := r0; r < r1; r++ {
		row := m.row(r)
		t := 0
		for ; t+4 <= xs.N; t += 4 {
			if n8 > 0 {
				k(&dst[t*m.Rows+r], uintptr(m.Rows), &row[0], &xs.F32[t*xs.Cols], uintptr(xs.Cols), uintptr(n8))
			} else {
				for i := 0; i < 4; i++ {
					dst[(t+i)*m.Rows+r] = 0
				}
			}
			if n8 < m.Cols {
				for i := 0; i < 4; i++ {
					x := xs.F32[(t+i)*xs.Cols : (t+i+1)*xs.Cols]
					dst[(t+i)*m.Rows+r] += dotRowFloatGeneric(m.Format.Type, row[esz*n8:], x[n8:])
				}
			}
		}
		for ; t < xs.N; t++ {
			mulVecFloatAVX2(m, dst[t*m.Rows:(t+1)*m.Rows], xs.F32[t*xs.Cols:(t+1)*xs.Cols], r, r+1)
		}
	}
}

// The AVX-512 tier's f32 loops: the kernels take any length (their last
// n%16 elements run under a mask), so the wrappers only check lengths and
// skip empty slices. The f32 DotRows stays on the AVX2 4-token kernel
// (dotRowsAVX2).

func dotAVX512(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	b = b[:len(a)]
	return dotF32AVX512(&a[0], &b[0], uintptr(len(a)))
}

func axpyAVX512(alpha float32, x, y []float32) {
	if len(y) == 0 {
		return
	}
	x = x[:len(y)]
	axpyF32AVX512(alpha, &x[0], &y[0], uintptr(len(y)))
}

// axpyRowsAVX512 adds rows 4 at a time (y loaded and stored once per 4).
func axpyRowsAVX512(y, alpha, rows []float32) {
	n, i := len(y), 0
	if n == 0 {
		return
	}
	rows = rows[:len(alpha)*n]
	for ; i+4 <= len(alpha); i += 4 {
		axpyF32X4AVX512(&alpha[i], &rows[i*n], uintptr(n), &y[0], uintptr(n))
	}
	for ; i < len(alpha); i++ {
		axpyF32AVX512(alpha[i], &rows[i*n], &y[0], uintptr(n))
	}
}

func maxAVX512(x []float32) float32 {
	if len(x) == 0 {
		return maxGeneric(x)
	}
	return maxF32AVX512(&x[0], uintptr(len(x)))
}

func geluMulAVX512(dst, x, up []float32) {
	if len(dst) == 0 {
		return
	}
	x = x[:len(dst)]
	var u *float32
	if up != nil {
		up = up[:len(dst)]
		u = &up[0]
	}
	geluMulF32AVX512(&dst[0], &x[0], u, uintptr(len(dst)))
}

func softCapAVX512(x []float32, cap float32) {
	if len(x) > 0 {
		softCapF32AVX512(&x[0], uintptr(len(x)), cap)
	}
}

func expSubAVX512(x []float32, m float32) float32 {
	if len(x) == 0 {
		return 0
	}
	return expSubF32AVX512(&x[0], uintptr(len(x)), m)
}

func scaleAVX512(alpha float32, x []float32) {
	if len(x) > 0 {
		scaleF32AVX512(alpha, &x[0], uintptr(len(x)))
	}
}

func mulScaleOnePlusAVX512(dst, x, w []float32, s float32) {
	if len(dst) == 0 {
		return
	}
	x, w = x[:len(dst)], w[:len(dst)]
	mulScaleOnePlusF32AVX512(&dst[0], &x[0], &w[0], uintptr(len(dst)), s)
}

// ropeAVX512 rotates all h pairs in the kernel. RoPE has checked
// len(x) == 2*len(cos) == 2*len(sin).
func ropeAVX512(x, cos, sin []float32) {
	h := len(x) / 2
	if h == 0 {
		return
	}
	cos, sin = cos[:h], sin[:h]
	ropeF32AVX512(&x[0], &cos[0], &sin[0], uintptr(h), uintptr(h))
}

// dotRowsF16AVX512 takes the rows four at a time; the remaining rows are an
// F16 matrix's MulVec (AVX2).
func dotRowsF16AVX512(dst []float32, rows []uint16, x []float32) {
	n, i := len(x), 0
	if n == 0 {
		clear(dst)
		return
	}
	rows = rows[:len(dst)*n]
	for ; i+4 <= len(dst); i += 4 {
		dotF16X4AVX512(&dst[i], &rows[i*n], uintptr(n), &x[0], uintptr(n))
	}
	if i < len(dst) {
		rest := Matrix{Format: FormatF16, Rows: len(dst) - i, Cols: n, Data: f16Bytes(rows[i*n:])}
		mulVecFloatAVX2(&rest, dst[i:], x, 0, rest.Rows)
	}
}

func axpyRowsF16AVX512(y, alpha []float32, rows []uint16) {
	n, i := len(y), 0
	if n == 0 {
		return
	}
	rows = rows[:len(alpha)*n]
	for ; i+4 <= len(alpha); i += 4 {
		axpyF16X4AVX512(&alpha[i], &rows[i*n], uintptr(n), &y[0], uintptr(n))
	}
	for ; i < len(alpha); i++ {
		axpyF16AVX512(alpha[i], &rows[i*n], &y[0], uintptr(n))
	}
}

func toF16AVX512Go(dst []uint16, src []float32) {
	if len(src) == 0 {
		return
	}
	dst = dst[:len(src)]
	toF16AVX512(&dst[0], &src[0], uintptr(len(src)))
}
