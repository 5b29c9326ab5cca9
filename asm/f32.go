package main

import (
	"fmt"
	"math"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// f32Kernels generates the f32 loops: each at two widths (vec), the AVX2+FMA
// ones and their AVX-512 twins, emitted after all AVX2 ones. The activation
// quantizer and the F16/BF16 row dots exist for AVX2 only.
func f32Kernels() {
	for _, v := range []vec{ymm, zmm} {
		dotF32(v)
		axpyF32(v)
		axpyX4(v, false)
		maxF32(v)
		geluMulF32(v)
		softCapF32(v)
		expSubF32(v)
		scaleF32(v)
		mulScaleOnePlusF32(v)
		ropeF32(v)
		axpyF16(v)
		dotF16X4(v)
		axpyX4(v, true)
		toF16(v)
		if v == ymm { // AVX2 only, between the two widths as before
			quantAct()
			dotHalf(false)
			dotHalf(true)
			for _, typ := range []string{"F32", "F16", "BF16"} {
				floatT4(typ)
			}
		}
	}
}

// vec is the vector width an f32 generator emits. ymm: the AVX2 tier's 8
// lanes in Y registers, constants as memory operands; the kernels take n a
// multiple of 8 (the Go wrapper does the rest) or finish with a scalar loop.
// zmm: the AVX-512 tier's 16 lanes in Z registers, constants broadcast into
// Z16..Z31 once per call; the kernels take any n and do the n%16 elements
// left with one more step under the mask K1 (loads zero the lanes past n,
// stores leave them alone), so their wrappers have no tail.
type vec struct{ zmm bool }

var ymm, zmm = vec{}, vec{zmm: true}

var (
	yregs = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}
	zregs = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}
)

func (v vec) lanes() int {
	if v.zmm {
		return 16
	}
	return 8
}

// bytes is a register's width in bytes: lanes f32 values.
func (v vec) bytes() int { return 4 * v.lanes() }

// r is vector register i at this width.
func (v vec) r(i int) VecPhysical {
	if v.zmm {
		return zregs[i]
	}
	return yregs[i]
}

// name is the kernel name base with the tier suffix.
func (v vec) name(base string) string {
	if v.zmm {
		return base + "AVX512"
	}
	return base + "AVX2"
}

// imm is an immediate for pointer and counter arithmetic (a 512-bit step of
// 4 registers is 256 bytes, past U8).
func imm(x int) Constant {
	if x < 256 {
		return U8(x)
	}
	return U32(x)
}

// tailMask sets K1 to the low n bits for n (in CX) in 1..15. Uses R8.
func tailMask() {
	MOVL(U32(1), R8L)
	SHLL(CL, R8L)
	DECL(R8L)
	KMOVW(R8L, K1)
}

// konst returns constant m for use as an operand: the memory operand itself
// (ymm), or Z<reg> with m's first value broadcast into it (zmm), so that the
// 32-byte tables serve both widths and the AVX-512 loops read no memory for
// their constants.
func (v vec) konst(m Mem, reg int) Op {
	if !v.zmm {
		return m
	}
	VBROADCASTSS(m, zregs[reg])
	return zregs[reg]
}

// step is one step of a loop: a full one (v.lanes() values) or, for zmm, the
// tail under K1. Its helpers mask the tail's loads and stores; the tail reads
// sources into registers first (a memory operand of an arithmetic
// instruction would need masking on each instruction).
type step struct {
	v    vec
	tail bool
}

// src is memory operand m as an instruction's source, or in the tail m
// loaded into scratch.
func (s step) src(m Mem, scratch VecPhysical) Op {
	if !s.tail {
		return m
	}
	VMOVUPS_Z(m, K1, scratch)
	return scratch
}

func (s step) load(m Mem, dst VecPhysical) {
	if s.tail {
		VMOVUPS_Z(m, K1, dst)
		return
	}
	VMOVUPS(m, dst)
}

func (s step) store(r VecPhysical, m Mem) {
	if s.tail {
		VMOVUPS(r, K1, m)
		return
	}
	VMOVUPS(r, m)
}

// loadF16 widens the f16 values at m into dst (f32); the tail loads its
// halves with a masked 16-bit move first.
func (s step) loadF16(m Mem, dst VecPhysical) {
	if s.tail {
		VMOVDQU16_Z(m, K1, dst.AsY())
		VCVTPH2PS(dst.AsY(), dst)
		return
	}
	VCVTPH2PS(m, dst)
}

// ptr is a pointer a loop advances by size bytes per element.
type ptr struct {
	r    GPPhysical
	size int
}

// nextIteration ends one iteration of a counted loop over n elements: it
// advances each pointer by count elements, takes count from n and jumps
// back to label.
func nextIteration(label string, n GPPhysical, count int, ptrs ...ptr) {
	for _, p := range ptrs {
		ADDQ(imm(count*p.size), p.r)
	}
	SUBQ(U8(count), n)
	JMP(LabelRef(label))
}

// loop emits the loop of an element-wise kernel over n (CX) elements:
// full steps (label prefix<lanes>) while n >= lanes, each followed by the
// pointers' advances in order, and for zmm the masked tail step
// (prefix+"tail"); both end at label done.
func (v vec) loop(prefix, done string, ptrs []ptr, body func(s step)) {
	n, l := RCX, v.lanes()
	next := done
	if v.zmm {
		next = prefix + "tail"
	}
	Label(fmt.Sprintf("%s%d", prefix, l))
	CMPQ(n, U8(l))
	JB(LabelRef(next))
	body(step{v: v})
	nextIteration(fmt.Sprintf("%s%d", prefix, l), n, l, ptrs...)
	if v.zmm {
		Label(next)
		TESTQ(n, n)
		JZ(LabelRef(done))
		tailMask()
		body(step{v: v, tail: true})
	}
	Label(done)
}

// narrow adds the upper 256 bits of a (zmm) into its lower half, leaving a
// Y register for hsum (a no-op for ymm).
func (v vec) narrow(a, tmp VecPhysical) VecPhysical {
	if !v.zmm {
		return a
	}
	VEXTRACTF64X4(U8(1), a, tmp.AsY())
	VADDPS(tmp.AsY(), a.AsY(), a.AsY())
	return a.AsY().(VecPhysical)
}

// dotF32: 4 accumulators x lanes, then one register at a time; then a scalar
// tail (ymm) or a masked step (zmm).
func dotF32(v vec) {
	name := v.name("dotF32")
	TEXT(name, NOSPLIT, "func(a, b *float32, n uintptr) float32")
	Doc(name + " returns sum_i a[i]*b[i] for i < n. Reference: dotGeneric.")
	Pragma("noescape")
	a, b, n := RSI, RDI, RCX
	Load(Param("a"), a)
	Load(Param("b"), b)
	Load(Param("n"), n)
	l, w := v.lanes(), v.bytes()
	acc := []VecPhysical{v.r(0), v.r(1), v.r(2), v.r(3)}
	for _, r := range acc {
		VXORPS(r, r, r)
	}
	wide, one := fmt.Sprintf("dot%d", 4*l), fmt.Sprintf("dot%d", l)
	Label(wide)
	CMPQ(n, U8(4*l))
	JB(LabelRef(one))
	for i, r := range acc {
		VMOVUPS(Mem{Base: a, Disp: w * i}, v.r(4))
		VFMADD231PS(Mem{Base: b, Disp: w * i}, v.r(4), r)
	}
	nextIteration(wide, n, 4*l, ptr{a, 4}, ptr{b, 4})
	Label(one)
	CMPQ(n, U8(l))
	JB(LabelRef("dot1"))
	VMOVUPS(Mem{Base: a}, v.r(4))
	VFMADD231PS(Mem{Base: b}, v.r(4), v.r(0))
	nextIteration(one, n, l, ptr{a, 4}, ptr{b, 4})
	Label("dot1")
	if v.zmm {
		TESTQ(n, n)
		JZ(LabelRef("dotsum"))
		tailMask()
		VMOVUPS_Z(Mem{Base: a}, K1, Z4)
		VMOVUPS_Z(Mem{Base: b}, K1, Z5)
		VFMADD231PS(Z5, Z4, Z0)
		Label("dotsum")
	}
	VADDPS(v.r(1), v.r(0), v.r(0))
	VADDPS(v.r(3), v.r(2), v.r(2))
	VADDPS(v.r(2), v.r(0), v.r(0))
	hsum(v.narrow(v.r(0), v.r(4)), Y4)
	if !v.zmm {
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
	}
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// axpyF32: y += alpha*x, 4 registers then 1 at a time, then a scalar loop
// (ymm) or a masked step (zmm).
func axpyF32(v vec) {
	name := v.name("axpyF32")
	TEXT(name, NOSPLIT, "func(alpha float32, x, y *float32, n uintptr)")
	Doc(name + " computes y[i] += alpha*x[i] for i < n. Reference: axpyGeneric.")
	Pragma("noescape")
	x, y, n := RSI, RDI, RCX
	Load(Param("x"), x)
	Load(Param("y"), y)
	Load(Param("n"), n)
	Load(Param("alpha"), X15)
	VBROADCASTSS(X15, v.r(15))
	l, w := v.lanes(), v.bytes()
	wide, one := fmt.Sprintf("axpy%d", 4*l), fmt.Sprintf("axpy%d", l)
	Label(wide)
	CMPQ(n, U8(4*l))
	JB(LabelRef(one))
	for i := 0; i < 4; i++ {
		r := v.r(i)
		VMOVUPS(Mem{Base: y, Disp: w * i}, r)
		VFMADD231PS(Mem{Base: x, Disp: w * i}, v.r(15), r)
		VMOVUPS(r, Mem{Base: y, Disp: w * i})
	}
	nextIteration(wide, n, 4*l, ptr{x, 4}, ptr{y, 4})
	Label(one)
	CMPQ(n, U8(l))
	JB(LabelRef("axpy1"))
	VMOVUPS(Mem{Base: y}, v.r(0))
	VFMADD231PS(Mem{Base: x}, v.r(15), v.r(0))
	VMOVUPS(v.r(0), Mem{Base: y})
	nextIteration(one, n, l, ptr{x, 4}, ptr{y, 4})
	Label("axpy1")
	TESTQ(n, n)
	JZ(LabelRef("axpydone"))
	if v.zmm {
		tailMask()
		s := step{v: v, tail: true}
		s.load(Mem{Base: y}, Z0)
		VFMADD231PS(s.src(Mem{Base: x}, Z1), Z15, Z0)
		s.store(Z0, Mem{Base: y})
	} else {
		VMOVSS(Mem{Base: y}, X0)
		VFMADD231SS(Mem{Base: x}, X15, X0)
		VMOVSS(X0, Mem{Base: y})
		ADDQ(U8(4), x)
		ADDQ(U8(4), y)
		DECQ(n)
		JMP(LabelRef("axpy1"))
	}
	Label("axpydone")
	VZEROUPPER()
	RET()
}

// axpyX4: y += a[0]*x0 + a[1]*x1 + a[2]*x2 + a[3]*x3 for 4 rows at x,
// x+stride, ...: attention's weighted sum of values, 4 values per pass so
// that y is loaded and stored once per 4 (y += a*x row by row is bound by
// its stores). 4 registers then 1 at a time (ymm: n a multiple of 8; zmm:
// any n, the rest masked). The rows are f32 (axpyF32X4) or f16, widened with
// VCVTPH2PS (axpyF16X4, the f16 KV cache).
func axpyX4(v vec, f16 bool) {
	name, typ, ref, label, esize := v.name("axpyF32X4"), "float32", "axpyRowsGeneric", "axpyx4", 4
	if f16 {
		name, typ, ref, label, esize = v.name("axpyF16X4"), "uint16", "axpyRowsF16Generic", "axpyf16x4", 2
	}
	nReq := "n a multiple of 8"
	if v.zmm {
		nReq = "any n"
	}
	TEXT(name, NOSPLIT, fmt.Sprintf("func(a *float32, x *%s, xstride uintptr, y *float32, n uintptr)", typ))
	if f16 {
		Doc(
			name+" computes y[i] += sum_r a[r]*f32(x[r*xstride+i]) for r < 4 and i < n",
			"(x f16, "+nReq+"). Reference: "+ref+".",
		)
	} else {
		Doc(
			name+" computes y[i] += sum_r a[r]*x[r*xstride+i] for r < 4 and i < n",
			"("+nReq+"). Reference: "+ref+".",
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
	alpha := []VecPhysical{v.r(12), v.r(13), v.r(14), v.r(15)}
	for r, a := range alpha {
		VBROADCASTSS(Mem{Base: RAX, Disp: 4 * r}, a)
	}
	row := func(r, disp int) Mem { return tokenMem(x, xs, xs3, r, disp) }
	acc, wide := []VecPhysical{v.r(0), v.r(1), v.r(2), v.r(3)}, []VecPhysical{v.r(4), v.r(5), v.r(6), v.r(7)}
	// fma adds a times the lanes values of row r at element offset e to acc.
	fma := func(s step, r, e int, a, acc, tmp VecPhysical) {
		if f16 {
			s.loadF16(row(r, 2*e), tmp)
			VFMADD231PS(tmp, a, acc)
		} else {
			VFMADD231PS(s.src(row(r, 4*e), tmp), a, acc)
		}
	}
	l, w := v.lanes(), v.bytes()
	full := step{v: v}
	Label(fmt.Sprintf("%s_%d", label, 4*l))
	CMPQ(n, U8(4*l))
	JB(LabelRef(fmt.Sprintf("%s_%d", label, l)))
	for i, r := range acc {
		VMOVUPS(Mem{Base: y, Disp: w * i}, r)
	}
	for r, a := range alpha {
		for i, r2 := range acc {
			fma(full, r, l*i, a, r2, wide[i])
		}
	}
	for i, r := range acc {
		VMOVUPS(r, Mem{Base: y, Disp: w * i})
	}
	nextIteration(fmt.Sprintf("%s_%d", label, 4*l), n, 4*l, ptr{x, esize}, ptr{y, 4})
	v.loop(label+"_", label+"_done", []ptr{{x, esize}, {y, 4}}, func(s step) {
		s.load(Mem{Base: y}, v.r(0))
		for r, a := range alpha {
			fma(s, r, 0, a, v.r(0), v.r(4))
		}
		s.store(v.r(0), Mem{Base: y})
	})
	VZEROUPPER()
	RET()
}

// maxF32: the largest of n floats, a register at a time (ymm: n a positive
// multiple of 8; zmm: n > 0, the rest merged into a copy of the running
// maximum under K1). VMAXPS does not propagate NaN, so NaN lanes are
// collected apart (VCMPPS unordered: into Y1, or OR-ed into K2) and turn the
// result into NaN, as Go's max does.
func maxF32(v vec) {
	name := v.name("maxF32")
	TEXT(name, NOSPLIT, "func(x *float32, n uintptr) float32")
	if v.zmm {
		Doc(name + " returns the largest of x[0:n] (n > 0), NaN if one is NaN. Reference: maxGeneric.")
	} else {
		Doc(name + " returns the largest of x[0:n] (n a positive multiple of 8), NaN if one is NaN. Reference: maxGeneric.")
	}
	Pragma("noescape")
	x, n := RSI, RCX
	Load(Param("x"), x)
	Load(Param("n"), n)
	if v.zmm {
		VBROADCASTSS(Mem{Base: x}, Z0)
		KXORW(K2, K2, K2)
		v.loop("max", "maxdone", []ptr{{x, 4}}, func(s step) {
			if s.tail {
				VMOVUPS(Z0, Z2)
				VMOVUPS(Mem{Base: x}, K1, Z2)
			} else {
				VMOVUPS(Mem{Base: x}, Z2)
			}
			VMAXPS(Z2, Z0, Z0)
			VCMPPS(U8(3), Z2, Z2, K3)
			KORW(K3, K2, K2)
		})
		VEXTRACTF64X4(U8(1), Z0, Y2)
		VMAXPS(Y2, Y0, Y0)
	} else {
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
	}
	VEXTRACTF128(U8(1), Y0, X2)
	VMAXPS(X2, X0, X0)
	VMOVHLPS(X0, X0, X2)
	VMAXPS(X2, X0, X0)
	VMOVSHDUP(X0, X2)
	VMAXSS(X2, X0, X0)
	if v.zmm {
		KORTESTW(K2, K2)
	} else {
		VMOVMSKPS(Y1, EAX)
		TESTL(EAX, EAX)
	}
	JZ(LabelRef("maxret"))
	VMOVSS(f32c("max_nan", float32(math.NaN())), X0)
	Label("maxret")
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// f32c and u32c are 8-lane constant tables, emitted on first use (both
// widths' kernels share them).
func f32c(name string, v float32) Mem { return u32c(name, math.Float32bits(v)) }

func u32c(name string, v uint32) Mem {
	if m, ok := tables[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i := 0; i < 8; i++ {
		DATA(4*i, U32(v))
	}
	tables[name] = m
	return m
}

var tables = map[string]Mem{}

// nReq is what a kernel needs of n: a multiple of 8 (ymm; the caller does
// the rest) or nothing (zmm).
func (v vec) nReq() string {
	if v.zmm {
		return "any n"
	}
	return "n a multiple of 8"
}

// geluMulF32 computes dst = gelu(x) * up (or gelu(x) when up is nil) a
// register at a time with the same expm1-based tanh as tanhGeneric.
func geluMulF32(v vec) {
	name := v.name("geluMulF32")
	TEXT(name, NOSPLIT, "func(dst, x, up *float32, n uintptr)")
	Doc(
		name+" computes dst[i] = gelu(x[i]) * up[i] (up may be nil: gelu only) for",
		"i < n, "+v.nReq()+". Reference: geluMulGeneric (tanh via expm1Neg).",
	)
	Pragma("noescape")
	dst, x, up := RDI, RSI, RDX
	Load(Param("dst"), dst)
	Load(Param("x"), x)
	Load(Param("up"), up)
	Load(Param("n"), RCX)
	c0 := v.konst(f32c("gelu_c0", 0.7978845608028654), 12)
	c01 := v.konst(f32c("gelu_c01", 0.7978845608028654*0.044715), 13)
	half := v.konst(f32c("half", 0.5), 14)
	c := tanhOperands(v)
	R := v.r
	v.loop("gelu", "geludone", []ptr{{x, 4}, {dst, 4}}, func(s step) {
		Comment("Y0 = v, Y1 = u = v*(c0 + c0*c1*v^2)")
		s.load(Mem{Base: x}, R(0))
		VMULPS(R(0), R(0), R(1))
		VMOVUPS(c0, R(2))
		VFMADD132PS(c01, R(2), R(1)) // Y1 = Y1*c01 + c0
		VMULPS(R(0), R(1), R(1))
		tanhCore(v, c)
		Comment("gelu = 0.5*v*(1+t), times up")
		VADDPS(c.one, R(8), R(8))
		VMULPS(half, R(0), R(0))
		VMULPS(R(8), R(0), R(0))
		store := "gelustore"
		if s.tail {
			store += "tail"
		}
		TESTQ(up, up)
		JZ(LabelRef(store))
		VMULPS(s.src(Mem{Base: up}, R(1)), R(0), R(0))
		if !s.tail {
			ADDQ(U8(v.bytes()), up)
		}
		Label(store)
		s.store(R(0), Mem{Base: dst})
	})
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

// tanhOps are tanhCore's constants as operands (konst): the tables (ymm) or
// Z16..Z30 (zmm).
type tanhOps struct {
	absMask, tmax, m2invln2, ln2hi, ln2lo, bias, one, two Op
	coef                                                  []Op
}

func tanhOperands(v vec) tanhOps {
	c, k := tanhConstants(), 16
	next := func(m Mem) Op { k++; return v.konst(m, k-1) }
	o := tanhOps{absMask: next(c.absMask), tmax: next(c.tmax), m2invln2: next(c.m2invln2), ln2hi: next(c.ln2hi),
		ln2lo: next(c.ln2lo), bias: next(c.bias), one: next(c.one), two: next(c.two)}
	for _, m := range c.coef {
		o.coef = append(o.coef, next(m))
	}
	return o
}

// roundEven rounds r's lanes to the nearest integer, ties to even:
// VROUNDPS (ymm) or VRNDSCALEPS (zmm) with imm 0, the same operation.
func (v vec) roundEven(r VecPhysical) {
	if v.zmm {
		VRNDSCALEPS(U8(0), r, r)
		return
	}
	VROUNDPS(U8(0), r, r)
}

// tanhCore computes Y8 = tanh(Y1) (Z at zmm) exactly as tanhGeneric does:
// a = min(|u|, 9), e = expm1(-2a) by k*ln2 + r reduction and a degree-8
// Taylor polynomial, t = -e/(2+e) with u's sign. Clobbers Y2..Y11. Both
// widths run the same operations lane by lane, so they agree bit for bit.
func tanhCore(v vec, c tanhOps) {
	R := v.r
	Comment("tanh(Y1) -> Y8: a = min(|u|, 9); k = round(-2a/ln2) (Y3); r = -2a - k*ln2 (Y4)")
	VANDPS(c.absMask, R(1), R(2))
	// MINPS returns its second source when either is NaN: keep a there, so a
	// NaN input stays NaN (with tmax second, NaN became tanh(9) = 1).
	VMOVUPS(c.tmax, R(3))
	VMINPS(R(2), R(3), R(2))
	VMULPS(c.m2invln2, R(2), R(3))
	v.roundEven(R(3))
	VADDPS(R(2), R(2), R(4))
	VXORPS(R(5), R(5), R(5))
	VSUBPS(R(4), R(5), R(4))
	VFNMADD231PS(c.ln2hi, R(3), R(4))
	VFNMADD231PS(c.ln2lo, R(3), R(4))
	Comment("Y6 = expm1(r) = r + r*r*p(r)")
	VMOVUPS(c.coef[0], R(5))
	for _, m := range c.coef[1:] {
		VFMADD213PS(m, R(4), R(5))
	}
	VMULPS(R(4), R(4), R(6))
	VFMADD213PS(R(4), R(5), R(6))
	Comment("Y8 = e = 2^k*expm1(r) + (2^k - 1)")
	VCVTPS2DQ(R(3), R(7))
	VPADDD(c.bias, R(7), R(7))
	VPSLLD(U8(23), R(7), R(7))
	VSUBPS(c.one, R(7), R(8))
	VFMADD231PS(R(7), R(6), R(8))
	Comment("Y8 = -e/(2+e) with the sign of u")
	VADDPS(c.two, R(8), R(9))
	VXORPS(R(5), R(5), R(5))
	VSUBPS(R(8), R(5), R(8))
	VDIVPS(R(9), R(8), R(8))
	VMOVUPS(c.absMask, R(11))
	VANDNPS(R(1), R(11), R(10))
	VORPS(R(10), R(8), R(8))
}

// softCapF32 generates x = cap * tanh(x / cap), a register at a time.
func softCapF32(v vec) {
	name := v.name("softCapF32")
	TEXT(name, NOSPLIT, "func(x *float32, n uintptr, cap float32)")
	Doc(
		name+" computes x[i] = cap * tanh(x[i]/cap) for i < n, "+v.nReq()+".",
		"Reference: softCapGeneric.",
	)
	Pragma("noescape")
	x := RSI
	Load(Param("x"), x)
	Load(Param("n"), RCX)
	Load(Param("cap"), X12)
	R := v.r
	VBROADCASTSS(X12, R(12))
	c := tanhOperands(v)
	v.loop("cap", "capdone", []ptr{{x, 4}}, func(s step) {
		s.load(Mem{Base: x}, R(0))
		VDIVPS(R(12), R(0), R(1))
		tanhCore(v, c)
		VMULPS(R(12), R(8), R(8))
		s.store(R(8), Mem{Base: x})
	})
	VZEROUPPER()
	RET()
}

// expSubF32 generates x[i] = exp(x[i] - m) (0 below -87) and returns the
// sum (the lanes past n add nothing: zmm's tail zeroes them with the
// underflow lanes).
func expSubF32(v vec) {
	name := v.name("expSubF32")
	TEXT(name, NOSPLIT, "func(x *float32, n uintptr, m float32) float32")
	Doc(
		name+" computes x[i] = exp(x[i]-m) for i < n ("+v.nReq()+") and returns",
		"their sum. Reference: expSubGeneric (exp = 2^k * (1 + expm1(r))).",
	)
	Pragma("noescape")
	c := tanhConstants()
	invln2 := f32c("inv_ln2", 1.44269504088896340736)
	lo := f32c("exp_lo", -87)
	x := RSI
	Load(Param("x"), x)
	Load(Param("n"), RCX)
	Load(Param("m"), X12)
	R := v.r
	VBROADCASTSS(X12, R(12))
	VXORPS(R(13), R(13), R(13)) // sum
	if v.zmm {
		VBROADCASTSS(lo, Z14)
	} else {
		VMOVUPS(lo, Y14)
	}
	k := 16
	konst := func(m Mem) Op { k++; return v.konst(m, k-1) }
	inv, ln2hi, ln2lo, one, bias := konst(invln2), konst(c.ln2hi), konst(c.ln2lo), konst(c.one), konst(c.bias)
	var coef []Op
	for _, m := range c.coef {
		coef = append(coef, konst(m))
	}
	v.loop("exp", "expdone", []ptr{{x, 4}}, func(s step) {
		s.load(Mem{Base: x}, R(0))
		VSUBPS(R(12), R(0), R(0)) // y = x - m
		if v.zmm {
			VCMPPS(U8(5), Z14, Z0, K2) // K2: not y < -87 (NaN included)
			if s.tail {
				KANDW(K1, K2, K2)
			}
		} else {
			VCMPPS(U8(1), Y14, Y0, Y11) // y < -87
		}
		VMAXPS(R(0), R(14), R(0)) // y second: MAXPS returns it when either is NaN, so NaN stays NaN
		VMULPS(inv, R(0), R(3))
		v.roundEven(R(3))
		VFNMADD231PS(ln2hi, R(3), R(0))
		VFNMADD231PS(ln2lo, R(3), R(0)) // r
		VMOVUPS(coef[0], R(5))
		for _, m := range coef[1:] {
			VFMADD213PS(m, R(0), R(5))
		}
		VMULPS(R(0), R(0), R(6))
		VFMADD213PS(R(0), R(5), R(6)) // expm1(r)
		VADDPS(one, R(6), R(6))
		VCVTPS2DQ(R(3), R(7))
		VPADDD(bias, R(7), R(7))
		VPSLLD(U8(23), R(7), R(7))
		if v.zmm {
			VMULPS_Z(Z7, Z6, K2, Z6) // zero where y < -87 and past n
		} else {
			VMULPS(Y7, Y6, Y6)
			VANDNPS(Y6, Y11, Y6) // zero where y < -87
		}
		s.store(R(6), Mem{Base: x})
		VADDPS(R(6), R(13), R(13))
	})
	hsum(v.narrow(R(13), R(4)), Y4)
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
	nextIteration(name+"32", n, 32, ptr{w, 2}, ptr{x, 4})
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
	nextIteration(name+"16", n, 16, ptr{w, esz}, ptr{x, 4})
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

// scaleF32 generates x *= alpha, a register at a time.
func scaleF32(v vec) {
	name := v.name("scaleF32")
	TEXT(name, NOSPLIT, "func(alpha float32, x *float32, n uintptr)")
	Doc(name + " computes x[i] *= alpha for i < n, " + v.nReq() + ". Reference: scaleGeneric.")
	Pragma("noescape")
	x := RSI
	Load(Param("x"), x)
	Load(Param("n"), RCX)
	Load(Param("alpha"), X1)
	R := v.r
	VBROADCASTSS(X1, R(1))
	v.loop("scale", "scaledone", []ptr{{x, 4}}, func(s step) {
		VMULPS(s.src(Mem{Base: x}, R(0)), R(1), R(0))
		s.store(R(0), Mem{Base: x})
	})
	VZEROUPPER()
	RET()
}

// mulScaleOnePlusF32 generates RMSNorm's last step, dst = x*s*(1+w), a
// register at a time in the reference's order of operations (so results
// match it exactly).
func mulScaleOnePlusF32(v vec) {
	name := v.name("mulScaleOnePlusF32")
	TEXT(name, NOSPLIT, "func(dst, x, w *float32, n uintptr, s float32)")
	Doc(
		name+" computes dst[i] = x[i]*s*(1+w[i]) for i < n, "+v.nReq()+".",
		"Reference: mulScaleOnePlusGeneric.",
	)
	Pragma("noescape")
	dst, x, w := RDI, RSI, RDX
	Load(Param("dst"), dst)
	Load(Param("x"), x)
	Load(Param("w"), w)
	Load(Param("n"), RCX)
	Load(Param("s"), X3)
	R := v.r
	VBROADCASTSS(X3, R(3))
	one := tanhConstants().one
	if v.zmm {
		VBROADCASTSS(one, Z2)
	} else {
		VMOVUPS(one, Y2)
	}
	v.loop("msop", "msopdone", []ptr{{x, 4}, {w, 4}, {dst, 4}}, func(s step) {
		VMULPS(s.src(Mem{Base: x}, R(0)), R(3), R(0))
		VADDPS(s.src(Mem{Base: w}, R(1)), R(2), R(1))
		VMULPS(R(1), R(0), R(0))
		s.store(R(0), Mem{Base: dst})
	})
	VZEROUPPER()
	RET()
}

// ropeF32 generates the rotation of one head's halves, a register of pairs
// at a time: x[i], x[i+h] = x[i]*cos[i] - x[i+h]*sin[i], x[i+h]*cos[i] +
// x[i]*sin[i]. It rotates the first n pairs (ymm: n a multiple of 8, the
// caller does the rest).
func ropeF32(v vec) {
	name := v.name("ropeF32")
	TEXT(name, NOSPLIT, "func(x, cos, sin *float32, h, n uintptr)")
	if v.zmm {
		Doc(
			name+" rotates the pairs (x[i], x[i+h]) by (cos[i], sin[i]) for i < n.",
			"Reference: ropeGeneric.",
		)
	} else {
		Doc(
			name+" rotates the pairs (x[i], x[i+h]) by (cos[i], sin[i]) for i < n, n a multiple",
			"of 8. Reference: ropeGeneric.",
		)
	}
	Pragma("noescape")
	x, cs, sn, x1 := RDI, RSI, RDX, RAX
	Load(Param("x"), x)
	Load(Param("cos"), cs)
	Load(Param("sin"), sn)
	Load(Param("h"), x1)
	Load(Param("n"), RCX)
	LEAQ(Mem{Base: x, Index: x1, Scale: 4}, x1)
	R := v.r
	v.loop("rope", "ropedone", []ptr{{x, 4}, {x1, 4}, {cs, 4}, {sn, 4}}, func(s step) {
		s.load(Mem{Base: x}, R(0))
		s.load(Mem{Base: x1}, R(1))
		s.load(Mem{Base: cs}, R(2))
		s.load(Mem{Base: sn}, R(3))
		VMULPS(R(3), R(1), R(4))      // x1*sin
		VFMSUB231PS(R(2), R(0), R(4)) // x0*cos - x1*sin
		VMULPS(R(3), R(0), R(5))      // x0*sin
		VFMADD231PS(R(2), R(1), R(5)) // x1*cos + x0*sin
		s.store(R(4), Mem{Base: x})
		s.store(R(5), Mem{Base: x1})
	})
	VZEROUPPER()
	RET()
}

// axpyF16 generates y += alpha*x for f16 x (a cached value row), a
// register at a time.
func axpyF16(v vec) {
	name := v.name("axpyF16")
	TEXT(name, NOSPLIT, "func(alpha float32, x *uint16, y *float32, n uintptr)")
	Doc(name + " computes y[i] += alpha*f32(x[i]) for i < n, x f16, " + v.nReq() + ". Reference: axpyF16Generic.")
	Pragma("noescape")
	x, y := RSI, RDI
	Load(Param("x"), x)
	Load(Param("y"), y)
	Load(Param("n"), RCX)
	Load(Param("alpha"), X15)
	R := v.r
	VBROADCASTSS(X15, R(15))
	v.loop("axpyh", "axpyhdone", []ptr{{x, 2}, {y, 4}}, func(s step) {
		s.loadF16(Mem{Base: x}, R(1))
		VFMADD213PS(s.src(Mem{Base: y}, R(2)), R(15), R(1)) // Y1 = alpha*x + y
		s.store(R(1), Mem{Base: y})
	})
	VZEROUPPER()
	RET()
}

// toF16 generates the f32 -> f16 rounding (to nearest even, as the
// reference) of cached keys and values, a register at a time.
func toF16(v vec) {
	name := v.name("toF16")
	TEXT(name, NOSPLIT, "func(dst *uint16, src *float32, n uintptr)")
	Doc(name + " rounds src[i] to f16 into dst[i] for i < n, " + v.nReq() + ". Reference: toF16Generic.")
	Pragma("noescape")
	dst, src := RDI, RSI
	Load(Param("dst"), dst)
	Load(Param("src"), src)
	Load(Param("n"), RCX)
	R := v.r
	v.loop("tof16_", "tof16done", []ptr{{src, 4}, {dst, 2}}, func(s step) {
		s.load(Mem{Base: src}, R(0))
		if s.tail {
			VCVTPS2PH(U8(0), Z0, Y1)
			VMOVDQU16(Y1, K1, Mem{Base: dst})
			return
		}
		VCVTPS2PH(U8(0), R(0), Mem{Base: dst})
	})
	VZEROUPPER()
	RET()
}

// dotF16X4 generates attention's scores against an f16 KV cache: four f16
// rows (cached keys, stride xstride) times one f32 vector (the query), two
// accumulators per row so that eight FMA chains run at once; 2 registers of
// values per row and step, then 1 (and zmm's masked tail).
func dotF16X4(v vec) {
	name := v.name("dotF16X4")
	TEXT(name, NOSPLIT, "func(out *float32, w *uint16, wstride uintptr, x *float32, n uintptr)")
	Doc(
		name+" computes out[r] = sum_i f32(w[r*wstride+i])*x[i] for r < 4 and i < n",
		"(w f16, "+v.nReq()+"). Reference: dotRowsF16Generic.",
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
	R := v.r
	even, odd := []VecPhysical{R(0), R(1), R(2), R(3)}, []VecPhysical{R(4), R(5), R(6), R(7)}
	for r := range even {
		VXORPS(even[r], even[r], even[r])
		VXORPS(odd[r], odd[r], odd[r])
	}
	row := func(r, disp int) Mem { return tokenMem(w, ws, ws3, r, disp) }
	l := v.lanes()
	two, one := fmt.Sprintf("dotf16x4_%d", 2*l), fmt.Sprintf("dotf16x4_%d", l)
	Label(two)
	CMPQ(n, U8(2*l))
	JB(LabelRef(one))
	VMOVUPS(Mem{Base: x}, R(8))
	VMOVUPS(Mem{Base: x, Disp: v.bytes()}, R(9))
	for r := range even {
		VCVTPH2PS(row(r, 0), R(10))
		VFMADD231PS(R(10), R(8), even[r])
		VCVTPH2PS(row(r, 2*l), R(11))
		VFMADD231PS(R(11), R(9), odd[r])
	}
	nextIteration(two, n, 2*l, ptr{w, 2}, ptr{x, 4})
	// ymm: one step of 8 (n is a multiple of 8); zmm: steps of 16, then the tail
	body := func(s step) {
		s.load(Mem{Base: x}, R(8))
		for r := range even {
			s.loadF16(row(r, 0), R(10))
			VFMADD231PS(R(10), R(8), even[r])
		}
	}
	if v.zmm {
		v.loop("dotf16x4_", "dotf16x4_done", []ptr{{w, 2}, {x, 4}}, body)
	} else {
		Label(one)
		CMPQ(n, U8(l))
		JB(LabelRef("dotf16x4_done"))
		body(step{v: v})
		Label("dotf16x4_done")
	}
	for r := range even {
		VADDPS(odd[r], even[r], even[r])
	}
	ys := make([]VecPhysical, len(even))
	for r := range even {
		ys[r] = v.narrow(even[r], R(12))
	}
	storeOut(ys, 4, 1)
	VZEROUPPER()
	RET()
}
