package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// quantAct generates the AVX2 activation quantizer: per block of 32 f32,
// scale = absmax/127, q = roundToEven(x * (127/absmax)) as int8, and the
// block's sum of q. A block holding NaN or ±Inf gets scale NaN, q = 0, sum 0.
func quantAct() {
	TEXT("quantActAVX2", NOSPLIT, "func(q *int8, d *float32, s *int32, x *float32, nb uintptr)")
	Doc(
		"quantActAVX2 quantizes nb full blocks of 32 values of x into q (int8), d (scale)",
		"and s (sum of q). Reference: quantizeActGeneric (bit-identical).",
	)
	Pragma("noescape")
	q, d, s, x, n := RDI, R8, R9, RSI, RCX
	Load(Param("q"), q)
	Load(Param("d"), d)
	Load(Param("s"), s)
	Load(Param("x"), x)
	Load(Param("nb"), n)
	absMask := u32c("qa_abs", 0x7fffffff)
	c127 := f32c("qa_127", 127)
	nan := u32c("qa_nan", 0x7fc00000)
	perm := GLOBL("qa_perm", RODATA|NOPTR)
	for i, v := range []uint32{0, 4, 1, 5, 2, 6, 3, 7} {
		DATA(4*i, U32(v))
	}
	VMOVUPS(absMask, Y15)
	VMOVDQU(perm, Y14)
	TESTQ(n, n)
	JZ(LabelRef("qadone"))
	Label("qablock")
	xs := []VecPhysical{Y0, Y1, Y2, Y3}
	for i, r := range xs {
		VMOVUPS(Mem{Base: x, Disp: 32 * i}, r)
	}
	Comment("non-finite check: x - x is NaN exactly for NaN and ±Inf")
	VSUBPS(Y0, Y0, Y4)
	VSUBPS(Y1, Y1, Y5)
	VORPS(Y5, Y4, Y4)
	VSUBPS(Y2, Y2, Y5)
	VORPS(Y5, Y4, Y4)
	VSUBPS(Y3, Y3, Y5)
	VORPS(Y5, Y4, Y4)
	VCMPPS(U8(3), Y4, Y4, Y4) // unordered
	VMOVMSKPS(Y4, EAX)
	TESTL(EAX, EAX)
	JNZ(LabelRef("qabad"))
	Comment("absmax -> X4")
	VANDPS(Y15, Y0, Y4)
	VANDPS(Y15, Y1, Y5)
	VMAXPS(Y5, Y4, Y4)
	VANDPS(Y15, Y2, Y5)
	VMAXPS(Y5, Y4, Y4)
	VANDPS(Y15, Y3, Y5)
	VMAXPS(Y5, Y4, Y4)
	VEXTRACTF128(U8(1), Y4, X5)
	VMAXPS(X5, X4, X4)
	VMOVHLPS(X4, X4, X5)
	VMAXPS(X5, X4, X4)
	VMOVSHDUP(X4, X5)
	VMAXSS(X5, X4, X4)
	Comment("d = amax/127; inv = 127/amax, or 0 when amax == 0")
	VMOVSS(c127, X6)
	VDIVSS(X6, X4, X7) // X7 = X4 / X6
	VMOVSS(X7, Mem{Base: d})
	VDIVSS(X4, X6, X7) // X7 = 127 / amax
	VXORPS(X5, X5, X5)
	VCMPSS(U8(6), X5, X4, X5) // amax > 0 (not-less-equal)
	VANDPS(X5, X7, X7)
	VBROADCASTSS(X7, Y7)
	Comment("q = round-to-even(x*inv), sum")
	for _, r := range xs {
		VMULPS(Y7, r, r)
		VCVTPS2DQ(r, r)
	}
	VPADDD(Y1, Y0, Y4)
	VPADDD(Y3, Y2, Y5)
	VPADDD(Y5, Y4, Y4)
	VEXTRACTI128(U8(1), Y4, X5)
	VPADDD(X5, X4, X4)
	VPSHUFD(U8(0x4e), X4, X5)
	VPADDD(X5, X4, X4)
	VPSHUFD(U8(0xb1), X4, X5)
	VPADDD(X5, X4, X4)
	VMOVD(X4, Mem{Base: s})
	VPACKSSDW(Y1, Y0, Y0)
	VPACKSSDW(Y3, Y2, Y2)
	VPACKSSWB(Y2, Y0, Y0)
	VPERMD(Y0, Y14, Y0)
	VMOVDQU(Y0, Mem{Base: q})
	Label("qanext")
	ADDQ(U8(128), x)
	ADDQ(U8(32), q)
	ADDQ(U8(4), d)
	ADDQ(U8(4), s)
	DECQ(n)
	JNZ(LabelRef("qablock"))
	Label("qadone")
	VZEROUPPER()
	RET()

	Label("qabad")
	VPXOR(Y0, Y0, Y0)
	VMOVDQU(Y0, Mem{Base: q})
	MOVL(U32(0), Mem{Base: s})
	VMOVSS(nan, X0)
	VMOVSS(X0, Mem{Base: d})
	JMP(LabelRef("qanext"))
}
