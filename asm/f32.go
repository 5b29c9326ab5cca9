package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// f32Kernels generates the AVX2+FMA f32 loops (the AVX-512 tier reuses them:
// they are memory-bound at the sizes the forward pass uses).
func f32Kernels() {
	dotF32()
	axpyF32()
	axpyX4(false)
	maxF32()
	geluMulF32()
	softCapF32()
	expSubF32()
	scaleF32()
	mulScaleOnePlusF32()
	ropeF32()
	axpyF16()
	dotF16X4()
	axpyX4(true)
	toF16()
	quantAct()
	dotHalf(false)
	dotHalf(true)
	for _, typ := range []string{"F32", "F16", "BF16"} {
		floatT4(typ)
	}
}

// dotF32: 4 accumulators x 8 lanes, then 8-wide, then scalar tail.
func dotF32() {
	TEXT("dotF32AVX2", NOSPLIT, "func(a, b *float32, n uintptr) float32")
	Doc("dotF32AVX2 returns sum_i a[i]*b[i] for i < n. Reference: dotGeneric.")
	Pragma("noescape")
	a, b, n := RSI, RDI, RCX
	Load(Param("a"), a)
	Load(Param("b"), b)
	Load(Param("n"), n)
	acc := []VecPhysical{Y0, Y1, Y2, Y3}
	for _, r := range acc {
		VXORPS(r, r, r)
	}
	Label("dot32")
	CMPQ(n, U8(32))
	JB(LabelRef("dot8"))
	for i, r := range acc {
		VMOVUPS(Mem{Base: a, Disp: 32 * i}, Y4)
		VFMADD231PS(Mem{Base: b, Disp: 32 * i}, Y4, r)
	}
	ADDQ(U8(128), a)
	ADDQ(U8(128), b)
	SUBQ(U8(32), n)
	JMP(LabelRef("dot32"))
	Label("dot8")
	CMPQ(n, U8(8))
	JB(LabelRef("dot1"))
	VMOVUPS(Mem{Base: a}, Y4)
	VFMADD231PS(Mem{Base: b}, Y4, Y0)
	ADDQ(U8(32), a)
	ADDQ(U8(32), b)
	SUBQ(U8(8), n)
	JMP(LabelRef("dot8"))
	Label("dot1")
	VADDPS(Y1, Y0, Y0)
	VADDPS(Y3, Y2, Y2)
	VADDPS(Y2, Y0, Y0)
	hsum(Y0, Y4)
	TESTQ(n, n)
	JZ(LabelRef("dotdone"))
	Label("dottail")
	VMOVSS(Mem{Base: a}, X4)
	VFMADD231SS(Mem{Base: b}, X4, X0)
	ADDQ(U8(4), a)
	ADDQ(U8(4), b)
	DECQ(n)
	JNZ(LabelRef("dottail"))
	Label("dotdone")
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// axpyF32: y += alpha*x, 32 then 8 then 1 at a time.
func axpyF32() {
	TEXT("axpyF32AVX2", NOSPLIT, "func(alpha float32, x, y *float32, n uintptr)")
	Doc("axpyF32AVX2 computes y[i] += alpha*x[i] for i < n. Reference: axpyGeneric.")
	Pragma("noescape")
	x, y, n := RSI, RDI, RCX
	Load(Param("x"), x)
	Load(Param("y"), y)
	Load(Param("n"), n)
	Load(Param("alpha"), X15)
	VBROADCASTSS(X15, Y15)
	Label("axpy32")
	CMPQ(n, U8(32))
	JB(LabelRef("axpy8"))
	for i := 0; i < 4; i++ {
		r := []VecPhysical{Y0, Y1, Y2, Y3}[i]
		VMOVUPS(Mem{Base: y, Disp: 32 * i}, r)
		VFMADD231PS(Mem{Base: x, Disp: 32 * i}, Y15, r)
		VMOVUPS(r, Mem{Base: y, Disp: 32 * i})
	}
	ADDQ(U8(128), x)
	ADDQ(U8(128), y)
	SUBQ(U8(32), n)
	JMP(LabelRef("axpy32"))
	Label("axpy8")
	CMPQ(n, U8(8))
	JB(LabelRef("axpy1"))
	VMOVUPS(Mem{Base: y}, Y0)
	VFMADD231PS(Mem{Base: x}, Y15, Y0)
	VMOVUPS(Y0, Mem{Base: y})
	ADDQ(U8(32), x)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef("axpy8"))
	Label("axpy1")
	TESTQ(n, n)
	JZ(LabelRef("axpydone"))
	VMOVSS(Mem{Base: y}, X0)
	VFMADD231SS(Mem{Base: x}, X15, X0)
	VMOVSS(X0, Mem{Base: y})
	ADDQ(U8(4), x)
	ADDQ(U8(4), y)
	DECQ(n)
	JMP(LabelRef("axpy1"))
	Label("axpydone")
	VZEROUPPER()
	RET()
}

// axpyX4: y += a[0]*x0 + a[1]*x1 + a[2]*x2 + a[3]*x3 for 4 rows at x,
// x+stride, ...: attention's weighted sum of values, 4 values per pass so
// that y is loaded and stored once per 4 (y += a*x row by row is bound by
// its stores). 32 then 8 floats at a time; n a multiple of 8. The rows are
// f32 (axpyF32X4AVX2) or f16, widened with VCVTPH2PS (axpyF16X4AVX2, the
// f16 KV cache).
func axpyX4(f16 bool) {
	name, typ, ref, label, esize := "axpyF32X4AVX2", "float32", "axpyRowsGeneric", "axpyx4", 4
	if f16 {
		name, typ, ref, label, esize = "axpyF16X4AVX2", "uint16", "axpyRowsF16Generic", "axpyf16x4", 2
	}
	TEXT(name, NOSPLIT, fmt.Sprintf("func(a *float32, x *%s, xstride uintptr, y *float32, n uintptr)", typ))
	if f16 {
		Doc(
			name+" computes y[i] += sum_r a[r]*f32(x[r*xstride+i]) for r < 4 and i < n",
			"(x f16, n a multiple of 8). Reference: "+ref+".",
		)
	} else {
		Doc(
			name+" computes y[i] += sum_r a[r]*x[r*xstride+i] for r < 4 and i < n",
			"(n a multiple of 8). Reference: "+ref+".",
		)
	}
	Pragma("noescape")
	x, xs, xs3, y, n := RSI, R11, R12, RDI, RCX
	Load(Param("a"), RAX)
	Load(Param("x"), x)
	Load(Param("xstride"), xs)
	Load(Param("y"), y)
	Load(Param("n"), n)
	SHLQ(U8(esize/2), xs) // elements to bytes: << 2 for f32, << 1 for f16
	LEAQ(Mem{Base: xs, Index: xs, Scale: 2}, xs3)
	alpha := []VecPhysical{Y12, Y13, Y14, Y15}
	for r, a := range alpha {
		VBROADCASTSS(Mem{Base: RAX, Disp: 4 * r}, a)
	}
	row := func(r, disp int) Mem { return tokenMem(x, xs, xs3, r, disp) }
	acc, wide := []VecPhysical{Y0, Y1, Y2, Y3}, []VecPhysical{Y4, Y5, Y6, Y7}
	// fma adds a times the 8 values of row r at element offset e to v.
	fma := func(r, e int, a, v, tmp VecPhysical) {
		if f16 {
			VCVTPH2PS(row(r, 2*e), tmp)
			VFMADD231PS(tmp, a, v)
		} else {
			VFMADD231PS(row(r, 4*e), a, v)
		}
	}
	Label(label + "_32")
	CMPQ(n, U8(32))
	JB(LabelRef(label + "_8"))
	for i, v := range acc {
		VMOVUPS(Mem{Base: y, Disp: 32 * i}, v)
	}
	for r, a := range alpha {
		for i, v := range acc {
			fma(r, 8*i, a, v, wide[i])
		}
	}
	for i, v := range acc {
		VMOVUPS(v, Mem{Base: y, Disp: 32 * i})
	}
	ADDQ(U8(32*esize), x)
	ADDQ(U8(128), y)
	SUBQ(U8(32), n)
	JMP(LabelRef(label + "_32"))
	Label(label + "_8")
	CMPQ(n, U8(8))
	JB(LabelRef(label + "_done"))
	VMOVUPS(Mem{Base: y}, Y0)
	for r, a := range alpha {
		fma(r, 0, a, Y0, Y4)
	}
	VMOVUPS(Y0, Mem{Base: y})
	ADDQ(U8(8*esize), x)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef(label + "_8"))
	Label(label + "_done")
	VZEROUPPER()
	RET()
}

// maxF32: the largest of n floats (n a positive multiple of 8), 8 lanes at a
// time. VMAXPS does not propagate NaN, so NaN lanes are collected apart
// (VCMPPS unordered) and turn the result into NaN, as Go's max does.
func maxF32() {
	TEXT("maxF32AVX2", NOSPLIT, "func(x *float32, n uintptr) float32")
	Doc("maxF32AVX2 returns the largest of x[0:n] (n a positive multiple of 8), NaN if one is NaN. Reference: maxGeneric.")
	Pragma("noescape")
	x, n := RSI, RCX
	Load(Param("x"), x)
	Load(Param("n"), n)
	VMOVUPS(Mem{Base: x}, Y0)
	VCMPPS(U8(3), Y0, Y0, Y1) // unordered with itself: NaN lanes
	Label("max8")
	ADDQ(U8(32), x)
	SUBQ(U8(8), n)
	JZ(LabelRef("maxdone"))
	VMOVUPS(Mem{Base: x}, Y2)
	VMAXPS(Y2, Y0, Y0)
	VCMPPS(U8(3), Y2, Y2, Y3)
	VORPS(Y3, Y1, Y1)
	JMP(LabelRef("max8"))
	Label("maxdone")
	VEXTRACTF128(U8(1), Y0, X2)
	VMAXPS(X2, X0, X0)
	VMOVHLPS(X0, X0, X2)
	VMAXPS(X2, X0, X0)
	VMOVSHDUP(X0, X2)
	VMAXSS(X2, X0, X0)
	VMOVMSKPS(Y1, EAX)
	TESTL(EAX, EAX)
	JZ(LabelRef("maxret"))
	VMOVSS(f32c("max_nan", float32(math.NaN())), X0)
	Label("maxret")
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

func f32c(name string, v float32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, U32(math.Float32bits(v)))
	}
	return m
}

func u32c(name string, v uint32) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, U32(v))
	}
	return m
}

// geluMulF32 computes dst = gelu(x) * up (or gelu(x) when up is nil) for 8
// lanes at a time with the same expm1-based tanh as tanhGeneric; the caller
// handles the n%8 tail with the generic code.
func geluMulF32() {
	TEXT("geluMulF32AVX2", NOSPLIT, "func(dst, x, up *float32, n uintptr)")
	Doc(
		"geluMulF32AVX2 computes dst[i] = gelu(x[i]) * up[i] (up may be nil: gelu only) for",
		"i < n, n a multiple of 8. Reference: geluMulGeneric (tanh via expm1Neg).",
	)
	Pragma("noescape")
	dst, x, up, n := RDI, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("x"), x)
	Load(Param("up"), up)
	Load(Param("n"), n)
	c0 := f32c("gelu_c0", 0.7978845608028654)
	c01 := f32c("gelu_c01", 0.7978845608028654*0.044715)
	half := f32c("half", 0.5)
	Label("gelu8")
	CMPQ(n, U8(8))
	JB(LabelRef("geludone"))
	Comment("Y0 = v, Y1 = u = v*(c0 + c0*c1*v^2)")
	VMOVUPS(Mem{Base: x}, Y0)
	VMULPS(Y0, Y0, Y1)
	VMOVUPS(c0, Y2)
	VFMADD132PS(c01, Y2, Y1) // Y1 = Y1*c01 + c0
	VMULPS(Y0, Y1, Y1)
	tanhCore()
	Comment("gelu = 0.5*v*(1+t), times up")
	VADDPS(tc.one, Y8, Y8)
	VMULPS(half, Y0, Y0)
	VMULPS(Y8, Y0, Y0)
	TESTQ(up, up)
	JZ(LabelRef("gelustore"))
	VMULPS(Mem{Base: up}, Y0, Y0)
	ADDQ(U8(32), up)
	Label("gelustore")
	VMOVUPS(Y0, Mem{Base: dst})
	ADDQ(U8(32), x)
	ADDQ(U8(32), dst)
	SUBQ(U8(8), n)
	JMP(LabelRef("gelu8"))
	Label("geludone")
	VZEROUPPER()
	RET()
}

// tanhConsts are the constants of tanhCore, emitted once.
type tanhConsts struct {
	absMask, tmax, m2invln2, ln2hi, ln2lo, bias, one, two Mem
	coef                                                  []Mem
}

var tc *tanhConsts

func tanhConstants() *tanhConsts {
	if tc != nil {
		return tc
	}
	tc = &tanhConsts{
		absMask:  u32c("abs_mask", 0x7fffffff),
		tmax:     f32c("tanh_max", 9),
		m2invln2: f32c("m2_inv_ln2", -2*1.44269504088896340736),
		ln2hi:    f32c("ln2_hi", 0.693145751953125),
		ln2lo:    f32c("ln2_lo", 1.42860682030941723212e-6),
		bias:     u32c("exp_bias", 127),
		one:      f32c("one", 1),
		two:      f32c("two", 2),
	}
	for i, c := range []float32{1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5} {
		tc.coef = append(tc.coef, f32c("expm1_c"+string(rune('0'+i)), c))
	}
	return tc
}

// tanhCore computes Y8 = tanh(Y1) for 8 lanes exactly as tanhGeneric does:
// a = min(|u|, 9), e = expm1(-2a) by k*ln2 + r reduction and a degree-8
// Taylor polynomial, t = -e/(2+e) with u's sign. Clobbers Y2..Y11.
func tanhCore() {
	c := tanhConstants()
	Comment("tanh(Y1) -> Y8: a = min(|u|, 9); k = round(-2a/ln2) (Y3); r = -2a - k*ln2 (Y4)")
	VANDPS(c.absMask, Y1, Y2)
	// MINPS returns its second source when either is NaN: keep a there, so a
	// NaN input stays NaN (with tmax second, NaN became tanh(9) = 1).
	VMOVUPS(c.tmax, Y3)
	VMINPS(Y2, Y3, Y2)
	VMULPS(c.m2invln2, Y2, Y3)
	VROUNDPS(U8(0), Y3, Y3)
	VADDPS(Y2, Y2, Y4)
	VXORPS(Y5, Y5, Y5)
	VSUBPS(Y4, Y5, Y4)
	VFNMADD231PS(c.ln2hi, Y3, Y4)
	VFNMADD231PS(c.ln2lo, Y3, Y4)
	Comment("Y6 = expm1(r) = r + r*r*p(r)")
	VMOVUPS(c.coef[0], Y5)
	for _, m := range c.coef[1:] {
		VFMADD213PS(m, Y4, Y5)
	}
	VMULPS(Y4, Y4, Y6)
	VFMADD213PS(Y4, Y5, Y6)
	Comment("Y8 = e = 2^k*expm1(r) + (2^k - 1)")
	VCVTPS2DQ(Y3, Y7)
	VPADDD(c.bias, Y7, Y7)
	VPSLLD(U8(23), Y7, Y7)
	VSUBPS(c.one, Y7, Y8)
	VFMADD231PS(Y7, Y6, Y8)
	Comment("Y8 = -e/(2+e) with the sign of u")
	VADDPS(c.two, Y8, Y9)
	VXORPS(Y5, Y5, Y5)
	VSUBPS(Y8, Y5, Y8)
	VDIVPS(Y9, Y8, Y8)
	VMOVUPS(c.absMask, Y11)
	VANDNPS(Y1, Y11, Y10)
	VORPS(Y10, Y8, Y8)
}

// softCapF32 generates x = cap * tanh(x / cap) for 8 lanes at a time.
func softCapF32() {
	TEXT("softCapF32AVX2", NOSPLIT, "func(x *float32, n uintptr, cap float32)")
	Doc(
		"softCapF32AVX2 computes x[i] = cap * tanh(x[i]/cap) for i < n, n a multiple of 8.",
		"Reference: softCapGeneric.",
	)
	Pragma("noescape")
	x, n := RSI, RCX
	Load(Param("x"), x)
	Load(Param("n"), n)
	Load(Param("cap"), X12)
	VBROADCASTSS(X12, Y12)
	Label("cap8")
	CMPQ(n, U8(8))
	JB(LabelRef("capdone"))
	VMOVUPS(Mem{Base: x}, Y0)
	VDIVPS(Y12, Y0, Y1)
	tanhCore()
	VMULPS(Y12, Y8, Y8)
	VMOVUPS(Y8, Mem{Base: x})
	ADDQ(U8(32), x)
	SUBQ(U8(8), n)
	JMP(LabelRef("cap8"))
	Label("capdone")
	VZEROUPPER()
	RET()
}

// expSubF32 generates x[i] = exp(x[i] - m) (0 below -87) and returns the
// sum, for n a multiple of 8.
func expSubF32() {
	TEXT("expSubF32AVX2", NOSPLIT, "func(x *float32, n uintptr, m float32) float32")
	Doc(
		"expSubF32AVX2 computes x[i] = exp(x[i]-m) for i < n (n a multiple of 8) and returns",
		"their sum. Reference: expSubGeneric (exp = 2^k * (1 + expm1(r))).",
	)
	Pragma("noescape")
	c := tanhConstants()
	invln2 := f32c("inv_ln2", 1.44269504088896340736)
	lo := f32c("exp_lo", -87)
	x, n := RSI, RCX
	Load(Param("x"), x)
	Load(Param("n"), n)
	Load(Param("m"), X12)
	VBROADCASTSS(X12, Y12)
	VXORPS(Y13, Y13, Y13) // sum
	VMOVUPS(lo, Y14)
	Label("exp8")
	CMPQ(n, U8(8))
	JB(LabelRef("expdone"))
	VMOVUPS(Mem{Base: x}, Y0)
	VSUBPS(Y12, Y0, Y0)         // y = x - m
	VCMPPS(U8(1), Y14, Y0, Y11) // y < -87
	VMAXPS(Y0, Y14, Y0)         // y second: MAXPS returns it when either is NaN, so NaN stays NaN
	VMULPS(invln2, Y0, Y3)
	VROUNDPS(U8(0), Y3, Y3)
	VFNMADD231PS(c.ln2hi, Y3, Y0)
	VFNMADD231PS(c.ln2lo, Y3, Y0) // r
	VMOVUPS(c.coef[0], Y5)
	for _, m := range c.coef[1:] {
		VFMADD213PS(m, Y0, Y5)
	}
	VMULPS(Y0, Y0, Y6)
	VFMADD213PS(Y0, Y5, Y6) // expm1(r)
	VADDPS(c.one, Y6, Y6)
	VCVTPS2DQ(Y3, Y7)
	VPADDD(c.bias, Y7, Y7)
	VPSLLD(U8(23), Y7, Y7)
	VMULPS(Y7, Y6, Y6)
	VANDNPS(Y6, Y11, Y6) // zero where y < -87
	VMOVUPS(Y6, Mem{Base: x})
	VADDPS(Y6, Y13, Y13)
	ADDQ(U8(32), x)
	SUBQ(U8(8), n)
	JMP(LabelRef("exp8"))
	Label("expdone")
	hsum(Y13, Y4)
	VZEROUPPER()
	Store(X13, ReturnIndex(0))
	RET()
}

// dotHalf generates the dot product of a row of n 16-bit floats (f16 or
// bf16) with f32 x: 4 accumulators x 8 lanes, then 8-wide; the caller does
// the n%8 tail.
func dotHalf(bf16 bool) {
	name := "dotF16AVX2"
	ref := "dotRowFloatGeneric(F16, ...)"
	if bf16 {
		name = "dotBF16AVX2"
		ref = "dotRowFloatGeneric(BF16, ...)"
	}
	TEXT(name, NOSPLIT, "func(w *byte, x *float32, n uintptr) float32")
	Doc(fmt.Sprintf("%s returns sum_i w[i]*x[i] for i < n (n a multiple of 8). Reference: %s.", name, ref))
	Pragma("noescape")
	w, x, n := RSI, RDI, RCX
	Load(Param("w"), w)
	Load(Param("x"), x)
	Load(Param("n"), n)
	acc := []VecPhysical{Y0, Y1, Y2, Y3}
	for _, r := range acc {
		VXORPS(r, r, r)
	}
	widen := func(m Mem, dst VecPhysical) {
		if bf16 {
			VPMOVZXWD(m, dst)
			VPSLLD(U8(16), dst, dst)
		} else {
			VCVTPH2PS(m, dst)
		}
	}
	Label(name + "32")
	CMPQ(n, U8(32))
	JB(LabelRef(name + "8"))
	for i, r := range acc {
		widen(Mem{Base: w, Disp: 16 * i}, Y4)
		VFMADD231PS(Mem{Base: x, Disp: 32 * i}, Y4, r)
	}
	ADDQ(U8(64), w)
	ADDQ(U8(128), x)
	SUBQ(U8(32), n)
	JMP(LabelRef(name + "32"))
	Label(name + "8")
	CMPQ(n, U8(8))
	JB(LabelRef(name + "done"))
	widen(Mem{Base: w}, Y4)
	VFMADD231PS(Mem{Base: x}, Y4, Y0)
	ADDQ(U8(16), w)
	ADDQ(U8(32), x)
	SUBQ(U8(8), n)
	JMP(LabelRef(name + "8"))
	Label(name + "done")
	VADDPS(Y1, Y0, Y0)
	VADDPS(Y3, Y2, Y2)
	VADDPS(Y2, Y0, Y0)
	hsum(Y0, Y4)
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// floatT4 generates the prefill dot for one F32/F16/BF16 row and 4 tokens:
// out[t*ostride] = sum_i w[i]*x[t*xstride+i] for i < n (n a multiple of 8).
// Each 8 weights are widened once and meet the 4 tokens (8 accumulators, 16
// weights per iteration), so a row is read once per 4 tokens.
func floatT4(typ string) {
	name := "dot" + typ + "T4AVX2"
	TEXT(name, NOSPLIT, "func(out *float32, ostride uintptr, w *byte, x *float32, xstride uintptr, n uintptr)")
	Doc(
		fmt.Sprintf("%s computes out[t*ostride] = sum_i w[i]*x[t*xstride+i] for 4 tokens t and", name),
		fmt.Sprintf("i < n (n a multiple of 8) over a row of %s weights. Reference: dotRowFloatGeneric.", typ),
	)
	Pragma("noescape")
	w, x, xs, xs3, n := RSI, RBX, R11, R12, RCX
	Load(Param("out"), RDI)
	Load(Param("w"), w)
	Load(Param("x"), x)
	Load(Param("xstride"), xs)
	Load(Param("n"), n)
	SHLQ(U8(2), xs)
	LEAQ(Mem{Base: xs, Index: xs, Scale: 2}, xs3)
	acc := []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7}
	for _, a := range acc {
		VXORPS(a, a, a)
	}
	esz := map[string]int{"F32": 4, "F16": 2, "BF16": 2}[typ]
	widen := func(m Mem, dst VecPhysical) {
		switch typ {
		case "F32":
			VMOVUPS(m, dst)
		case "F16":
			VCVTPH2PS(m, dst)
		case "BF16":
			VPMOVZXWD(m, dst)
			VPSLLD(U8(16), dst, dst)
		}
	}
	xt := func(t, disp int) Mem { return tokenMem(x, xs, xs3, t, disp) }
	Label(name + "16")
	CMPQ(n, U8(16))
	JB(LabelRef(name + "8"))
	widen(Mem{Base: w}, Y8)
	widen(Mem{Base: w, Disp: 8 * esz}, Y9)
	for t := 0; t < 4; t++ {
		VFMADD231PS(xt(t, 0), Y8, acc[t])
		VFMADD231PS(xt(t, 32), Y9, acc[4+t])
	}
	ADDQ(U8(16*esz), w)
	ADDQ(U8(64), x)
	SUBQ(U8(16), n)
	JMP(LabelRef(name + "16"))
	Label(name + "8")
	CMPQ(n, U8(8))
	JB(LabelRef(name + "done"))
	widen(Mem{Base: w}, Y8)
	for t := 0; t < 4; t++ {
		VFMADD231PS(xt(t, 0), Y8, acc[t])
	}
	Label(name + "done")
	for t := 0; t < 4; t++ {
		VADDPS(acc[4+t], acc[t], acc[t])
	}
	storeOut(acc[:4], 1, 4)
	VZEROUPPER()
	RET()
}

// scaleF32 generates x *= alpha for 8 lanes at a time; the caller handles
// the n%8 tail.
func scaleF32() {
	TEXT("scaleF32AVX2", NOSPLIT, "func(alpha float32, x *float32, n uintptr)")
	Doc("scaleF32AVX2 computes x[i] *= alpha for i < n, n a multiple of 8. Reference: scaleGeneric.")
	Pragma("noescape")
	x, n := RSI, RCX
	Load(Param("x"), x)
	Load(Param("n"), n)
	Load(Param("alpha"), X1)
	VBROADCASTSS(X1, Y1)
	Label("scale8")
	CMPQ(n, U8(8))
	JB(LabelRef("scaledone"))
	VMULPS(Mem{Base: x}, Y1, Y0)
	VMOVUPS(Y0, Mem{Base: x})
	ADDQ(U8(32), x)
	SUBQ(U8(8), n)
	JMP(LabelRef("scale8"))
	Label("scaledone")
	VZEROUPPER()
	RET()
}

// mulScaleOnePlusF32 generates RMSNorm's last step, dst = x*s*(1+w), for 8
// lanes at a time in the reference's order of operations (so results match
// it exactly); the caller handles the n%8 tail.
func mulScaleOnePlusF32() {
	TEXT("mulScaleOnePlusF32AVX2", NOSPLIT, "func(dst, x, w *float32, n uintptr, s float32)")
	Doc(
		"mulScaleOnePlusF32AVX2 computes dst[i] = x[i]*s*(1+w[i]) for i < n, n a multiple of 8.",
		"Reference: mulScaleOnePlusGeneric.",
	)
	Pragma("noescape")
	dst, x, w, n := RDI, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("x"), x)
	Load(Param("w"), w)
	Load(Param("n"), n)
	Load(Param("s"), X3)
	VBROADCASTSS(X3, Y3)
	VMOVUPS(tanhConstants().one, Y2)
	Label("msop8")
	CMPQ(n, U8(8))
	JB(LabelRef("msopdone"))
	VMULPS(Mem{Base: x}, Y3, Y0)
	VADDPS(Mem{Base: w}, Y2, Y1)
	VMULPS(Y1, Y0, Y0)
	VMOVUPS(Y0, Mem{Base: dst})
	ADDQ(U8(32), x)
	ADDQ(U8(32), w)
	ADDQ(U8(32), dst)
	SUBQ(U8(8), n)
	JMP(LabelRef("msop8"))
	Label("msopdone")
	VZEROUPPER()
	RET()
}

// ropeF32 generates the rotation of one head's halves, 8 pairs at a time:
// x[i], x[i+h] = x[i]*cos[i] - x[i+h]*sin[i], x[i+h]*cos[i] + x[i]*sin[i].
// It rotates the first n pairs (n a multiple of 8); the caller does the rest.
func ropeF32() {
	TEXT("ropeF32AVX2", NOSPLIT, "func(x, cos, sin *float32, h, n uintptr)")
	Doc(
		"ropeF32AVX2 rotates the pairs (x[i], x[i+h]) by (cos[i], sin[i]) for i < n, n a multiple",
		"of 8. Reference: ropeGeneric.",
	)
	Pragma("noescape")
	x, cs, sn, n, x1 := RDI, RSI, RDX, RCX, RAX
	Load(Param("x"), x)
	Load(Param("cos"), cs)
	Load(Param("sin"), sn)
	Load(Param("h"), x1)
	Load(Param("n"), n)
	LEAQ(Mem{Base: x, Index: x1, Scale: 4}, x1)
	Label("rope8")
	CMPQ(n, U8(8))
	JB(LabelRef("ropedone"))
	VMOVUPS(Mem{Base: x}, Y0)
	VMOVUPS(Mem{Base: x1}, Y1)
	VMOVUPS(Mem{Base: cs}, Y2)
	VMOVUPS(Mem{Base: sn}, Y3)
	VMULPS(Y3, Y1, Y4)      // x1*sin
	VFMSUB231PS(Y2, Y0, Y4) // x0*cos - x1*sin
	VMULPS(Y3, Y0, Y5)      // x0*sin
	VFMADD231PS(Y2, Y1, Y5) // x1*cos + x0*sin
	VMOVUPS(Y4, Mem{Base: x})
	VMOVUPS(Y5, Mem{Base: x1})
	ADDQ(U8(32), x)
	ADDQ(U8(32), x1)
	ADDQ(U8(32), cs)
	ADDQ(U8(32), sn)
	SUBQ(U8(8), n)
	JMP(LabelRef("rope8"))
	Label("ropedone")
	VZEROUPPER()
	RET()
}

// axpyF16 generates y += alpha*x for f16 x (a cached value row), 8 lanes at
// a time; the caller handles the n%8 tail.
func axpyF16() {
	TEXT("axpyF16AVX2", NOSPLIT, "func(alpha float32, x *uint16, y *float32, n uintptr)")
	Doc("axpyF16AVX2 computes y[i] += alpha*f32(x[i]) for i < n, x f16, n a multiple of 8. Reference: axpyF16Generic.")
	Pragma("noescape")
	x, y, n := RSI, RDI, RCX
	Load(Param("x"), x)
	Load(Param("y"), y)
	Load(Param("n"), n)
	Load(Param("alpha"), X15)
	VBROADCASTSS(X15, Y15)
	Label("axpyh8")
	CMPQ(n, U8(8))
	JB(LabelRef("axpyhdone"))
	VCVTPH2PS(Mem{Base: x}, Y1)
	VFMADD213PS(Mem{Base: y}, Y15, Y1) // Y1 = alpha*x + y
	VMOVUPS(Y1, Mem{Base: y})
	ADDQ(U8(16), x)
	ADDQ(U8(32), y)
	SUBQ(U8(8), n)
	JMP(LabelRef("axpyh8"))
	Label("axpyhdone")
	VZEROUPPER()
	RET()
}

// toF16 generates the f32 -> f16 rounding (to nearest even, as the
// reference) of cached keys and values, 8 at a time; the caller handles the
// n%8 tail.
func toF16() {
	TEXT("toF16AVX2", NOSPLIT, "func(dst *uint16, src *float32, n uintptr)")
	Doc("toF16AVX2 rounds src[i] to f16 into dst[i] for i < n, n a multiple of 8. Reference: toF16Generic.")
	Pragma("noescape")
	dst, src, n := RDI, RSI, RCX
	Load(Param("dst"), dst)
	Load(Param("src"), src)
	Load(Param("n"), n)
	Label("tof16_8")
	CMPQ(n, U8(8))
	JB(LabelRef("tof16done"))
	VMOVUPS(Mem{Base: src}, Y0)
	VCVTPS2PH(U8(0), Y0, Mem{Base: dst})
	ADDQ(U8(32), src)
	ADDQ(U8(16), dst)
	SUBQ(U8(8), n)
	JMP(LabelRef("tof16_8"))
	Label("tof16done")
	VZEROUPPER()
	RET()
}

// dotF16X4 generates attention's scores against an f16 KV cache: four f16
// rows (cached keys, stride xstride) times one f32 vector (the query), two
// accumulators per row so that eight FMA chains run at once.
func dotF16X4() {
	TEXT("dotF16X4AVX2", NOSPLIT, "func(out *float32, w *uint16, wstride uintptr, x *float32, n uintptr)")
	Doc(
		"dotF16X4AVX2 computes out[r] = sum_i f32(w[r*wstride+i])*x[i] for r < 4 and i < n",
		"(w f16, n a multiple of 8). Reference: dotRowsF16Generic.",
	)
	Pragma("noescape")
	w, ws, ws3, x, n := RSI, R11, R12, RDX, RCX
	Load(Param("out"), RDI)
	Load(Param("w"), w)
	Load(Param("wstride"), ws)
	Load(Param("x"), x)
	Load(Param("n"), n)
	SHLQ(U8(1), ws)
	LEAQ(Mem{Base: ws, Index: ws, Scale: 2}, ws3)
	even, odd := []VecPhysical{Y0, Y1, Y2, Y3}, []VecPhysical{Y4, Y5, Y6, Y7}
	for r := range even {
		VXORPS(even[r], even[r], even[r])
		VXORPS(odd[r], odd[r], odd[r])
	}
	row := func(r, disp int) Mem { return tokenMem(w, ws, ws3, r, disp) }
	Label("dotf16x4_16")
	CMPQ(n, U8(16))
	JB(LabelRef("dotf16x4_8"))
	VMOVUPS(Mem{Base: x}, Y8)
	VMOVUPS(Mem{Base: x, Disp: 32}, Y9)
	for r := range even {
		VCVTPH2PS(row(r, 0), Y10)
		VFMADD231PS(Y10, Y8, even[r])
		VCVTPH2PS(row(r, 16), Y11)
		VFMADD231PS(Y11, Y9, odd[r])
	}
	ADDQ(U8(32), w)
	ADDQ(U8(64), x)
	SUBQ(U8(16), n)
	JMP(LabelRef("dotf16x4_16"))
	Label("dotf16x4_8")
	CMPQ(n, U8(8))
	JB(LabelRef("dotf16x4_done"))
	VMOVUPS(Mem{Base: x}, Y8)
	for r := range even {
		VCVTPH2PS(row(r, 0), Y10)
		VFMADD231PS(Y10, Y8, even[r])
	}
	Label("dotf16x4_done")
	for r := range even {
		VADDPS(odd[r], even[r], even[r])
	}
	storeOut(even, 4, 1)
	VZEROUPPER()
	RET()
}
