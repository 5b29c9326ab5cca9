package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// sbKernel generates the prefill kernel for Q4/Q3 with group size g: one row
// x 4 tokens, walking the row in superblocks of 4 chunks (128 weights).
//
// Per token and superblock the 4 chunks' integer sums (8 dword lanes each)
// are folded with three VPHADDDs into one vector whose lanes 0..3 and 4..7
// hold halves of chunks A, B, C, D; the symmetric offset (S << shift) is
// subtracted in lanes 0..3 only, and a single convert + multiply by
// (weight scales x activation scales, both as [A B C D A B C D] patterns) +
// FMA replaces four per-chunk ones. The unpacked levels and the weight-scale
// pattern are shared by the 4 tokens.
//
// Registers: DI out, BX row, SI activation values, R9 scales, R10 sums,
// R11/R12 = 1x/3x Q token stride, R13/R14 = 1x/3x D/S token stride, CX
// superblocks left. Y0..Y3 accumulators (token t), Y4..Y7 levels of chunks
// A..D, Y8 weight-scale pattern, Y9 min pattern (asym), Y10..Y12 integer
// sums / temps, Y13 scale, Y14 m-term, Y15 unpack scratch. Constant masks are
// memory operands.
func sbKernel(t tier, k kind, g int) {
	name := fmt.Sprintf("%sG%dSBT4%s", k.name(), g, t)
	TEXT(name, NOSPLIT, "func(out *float32, ostride uintptr, w *byte, q *int8, d *float32, s *int32, astride uintptr, nsb uintptr)")
	Doc(
		fmt.Sprintf("%s computes out[t*ostride] = dot(row, token t) for 4 tokens and one packed %s", name, k.name()),
		fmt.Sprintf("row with group %d, cols = 128*nsb (token t's activation at q+t*32*astride,", g),
		"d/s+t*astride). Reference: dotRowGeneric (same integer chunk sums, f32 additions reordered).",
	)
	Pragma("noescape")
	cpg := g / 32
	hdr := k.hdrBytes()
	bb := hdr + cpg*k.chunkBytes()
	ngs := 4 / cpg // groups per superblock
	sbBytes := ngs * bb
	chunkOff := func(c int) int { return (c/cpg)*bb + hdr + (c%cpg)*k.chunkBytes() }

	out, w, qp, dp, sp := RDI, RBX, RSI, R9, R10 // storeOut expects out in DI
	qs, qs3, ds, ds3 := R11, R12, R13, R14
	Load(Param("out"), out)
	Load(Param("w"), w)
	Load(Param("q"), qp)
	Load(Param("d"), dp)
	Load(Param("s"), sp)
	tokenStrides(qs, qs3, ds, ds3, true)
	Load(Param("nsb"), RCX)
	acc := []VecPhysical{Y0, Y1, Y2, Y3}
	lv := []VecPhysical{Y4, Y5, Y6, Y7}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	// pattern builds [h(A) h(B) h(C) h(D)] x 2 in dst from the f16 header field at off.
	pattern := func(off int, dst VecPhysical) {
		MOVWLZX(Mem{Base: w, Disp: off}, EDX)
		VMOVD(EDX, dst.AsX())
		switch ngs {
		case 1:
			VCVTPH2PS(dst.AsX(), dst.AsX())
			VBROADCASTSS(dst.AsX(), dst)
			return
		case 2:
			VPINSRW(U8(1), Mem{Base: w, Disp: bb + off}, dst.AsX(), dst.AsX())
			VPUNPCKLWD(dst.AsX(), dst.AsX(), dst.AsX())
		case 4:
			for i := 1; i < 4; i++ {
				VPINSRW(U8(i), Mem{Base: w, Disp: i*bb + off}, dst.AsX(), dst.AsX())
			}
		}
		VCVTPH2PS(dst.AsX(), dst.AsX())
		VINSERTF128(U8(1), dst.AsX(), dst, dst)
	}

	Label(name + "_sb")
	Comment("weight scale (and min) patterns [A B C D A B C D]")
	pattern(0, Y8)
	if k.asym {
		pattern(2, Y9)
	}
	for c := 0; c < 4; c++ {
		Commentf("unpack chunk %c", 'A'+c)
		unpackMem(k, Mem{Base: w, Disp: chunkOff(c)}, lv[c])
	}
	for tt := 0; tt < 4; tt++ {
		Commentf("token %d: integer sums of chunks A..D folded into Y10", tt)
		isum := func(c int, dst VecPhysical) {
			qm := tokenMem(qp, qs, qs3, tt, 32*c)
			if t == avx2 {
				VPMADDUBSW(qm, lv[c], dst)
				VPMADDWD(ones16, dst, dst)
			} else {
				VPXOR(dst, dst, dst)
				vpdpbusd(qm, lv[c], dst)
			}
		}
		isum(0, Y10)
		isum(1, Y11)
		VPHADDD(Y11, Y10, Y10)
		isum(2, Y11)
		isum(3, Y12)
		VPHADDD(Y12, Y11, Y11)
		VPHADDD(Y11, Y10, Y10)
		sm, dm := tokenMem(sp, ds, ds3, tt, 0), tokenMem(dp, ds, ds3, tt, 0)
		if !k.asym {
			Comment("subtract 2^(bits-1)*S from lanes 0..3")
			VMOVDQU(sm, X11)
			VPSLLD(U8(k.offShift()), X11, X11)
			VPSUBD(Y11, Y10, Y10)
		}
		VCVTDQ2PS(Y10, Y10)
		VBROADCASTF128(dm, Y13)
		VMULPS(Y8, Y13, Y13)
		VFMADD231PS(Y10, Y13, acc[tt])
		if k.asym {
			Comment("m-term: m * D*S in lanes 0..3")
			VCVTDQ2PS(sm, X14)
			VMULPS(dm, X14, X14)
			VFMADD231PS(Y14, Y9, acc[tt])
		}
	}
	ADDQ(U32(sbBytes), w)
	ADDQ(U32(128), qp)
	ADDQ(U8(16), dp)
	ADDQ(U8(16), sp)
	DECQ(RCX)
	JNZ(LabelRef(name + "_sb"))

	Comment("horizontal sums into out")
	storeOut(acc, 1, 4)
	VZEROUPPER()
	RET()
}

// unpackMem is unpack with the masks as memory operands (Y15 scratch).
func unpackMem(k kind, m Mem, dst VecPhysical) {
	low := mask0F
	if k.bits == 3 {
		low = mask03
	}
	unpackLevels(k, m, dst, Y15, low, mask01)
}
