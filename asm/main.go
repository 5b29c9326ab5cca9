// Command asm generates cafeq's amd64 kernels (kernels/*_amd64.s and their Go
// stubs) with avo. Run `make generate` (or `go generate ./kernels`) from the
// repository root; the output is deterministic and checked in.
//
// Usage: go run . -out ../kernels/dot_amd64.s -stubs ../kernels/dot_stubs_amd64.go -pkg kernels
//
// Register use is explicit (physical registers, no allocation) so that the
// generated code is easy to read next to this file: the register plan of each
// kernel is documented above its generator function, and the .s output
// carries the Go signature above each TEXT and a comment per step.
//
// avo v0.5 has no AVX512_VNNI instructions; vpdpbusd emits VPDPBUSD by hand
// (Go's assembler encodes the YMM form as EVEX, so it needs AVX512VL).
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("amd64,!purego")
	consts()
	for _, tier := range []tier{avx2, avx512} {
		for _, k := range []kind{{4, false, false}, {4, true, false}, {3, false, false}, {3, true, false}, {6, false, false}, {8, false, false}} {
			// decode kernel: 4 rows share each activation load (asymmetric
			// rows keep their broadcast mins in the stack frame)
			for _, rt := range [][2]int{{4, 1}, {1, 1}, {1, 4}} {
				dotKernel(tier, k, rt[0], rt[1])
			}
		}
	}
	// superblock (_k) formats: AVX2 row-major kernels, which every amd64 tier
	// runs on matrices it does not tile (rows not a multiple of 8)
	for _, k := range []kind{{4, false, true}, {4, true, true}, {3, false, true}, {3, true, true}, {6, false, true}} {
		for _, rt := range [][2]int{{4, 1}, {1, 1}, {1, 4}} {
			dotKernel(avx2, k, rt[0], rt[1])
		}
	}
	for _, tier := range []tier{avx2, avx512} {
		for _, k := range []kind{{4, false, false}, {4, true, false}, {3, false, false}, {3, true, false}} {
			for _, g := range []int{32, 64, 128} {
				sbKernel(tier, k, g)
			}
		}
	}
	// Tiled8 kernels: VPMADDUBSW for AVX2, VPDPBUSD for the VNNI tiers;
	// plain formats, then the superblock ones.
	tiledConsts()
	gfniConsts()
	for _, k := range []kind{{4, false, false}, {4, true, false}, {3, false, false}, {3, true, false}, {6, false, false}, {8, false, false},
		{4, false, true}, {4, true, true}, {3, false, true}, {3, true, true}, {6, false, true}} {
		tiledKernels(k)
		if k.bits == 3 || k.bits == 6 {
			for _, zmm := range []bool{false, true} {
				tiledDecodeVNNI(avx512gfni, k, zmm)
				tiledPrefillVNNI(avx512gfni, k, zmm)
			}
		}
	}
	f32Kernels()
	q5Kernels()
	Generate()
}

// tiledKernels generates kind k's Tiled8 kernels on the AVX2, AVX-VNNI and
// AVX-512 tiers (256- and 512-bit).
func tiledKernels(k kind) {
	tiledDecode(avx2, k)
	tiledPrefill(avx2, k)
	for _, t := range []tier{avxvnni, avx512} {
		tiledDecodeVNNI(t, k, false)
		tiledPrefillVNNI(t, k, false)
	}
	tiledDecodeVNNI(avx512, k, true)
	tiledPrefillVNNI(avx512, k, true)
}

// q5Kernels generates the Q5 formats' kernels (q5_g32 and q5_k), last so
// that adding them left the other kernels' generated text where it was: the
// row-major ones as Q6's (q5_k: AVX2 only, as every superblock format) and
// the Tiled8 ones, with GFNI variants as Q6 (the plane stays in a register
// and each vector's bit 4 is one affine transform).
func q5Kernels() {
	q5, q5k := kind{5, false, false}, kind{5, false, true}
	for _, t := range []tier{avx2, avx512} {
		for _, rt := range [][2]int{{4, 1}, {1, 1}, {1, 4}} {
			dotKernel(t, q5, rt[0], rt[1])
		}
	}
	for _, rt := range [][2]int{{4, 1}, {1, 1}, {1, 4}} {
		dotKernel(avx2, q5k, rt[0], rt[1])
	}
	mask10 = GLOBL("mask10", RODATA|NOPTR)
	for i := 0; i < 64; i++ { // a ZMM operand's width
		DATA(i, U8(0x10))
	}
	for v := range gfniQ5Hi {
		gfniQ5Hi[v] = GLOBL(fmt.Sprintf("gfniQ5Hi%d", v), RODATA|NOPTR)
		DATA(0, U64(gfniMove(v, 4, 1)))
	}
	for _, k := range []kind{q5, q5k} {
		tiledKernels(k)
		for _, zmm := range []bool{false, true} {
			tiledDecodeVNNI(avx512gfni, k, zmm)
			tiledPrefillVNNI(avx512gfni, k, zmm)
		}
	}
}

// prefetchDist is how far ahead of each row the multi-row decode kernels
// prefetch (PREFETCHT0, once per group). Measured on the development machine
// (Zen 3, 2 threads, 2B-shaped q4 model): without it a core streams packed
// weights from DRAM at about half its in-cache speed, because the hardware
// prefetchers do not run far enough ahead of four interleaved row streams;
// 16 KiB took decode from 5.9 to 8.5-9.5 tok/s (4 KiB: 7.5, 32-64 KiB: no
// better).
const prefetchDist = 16384

type tier int

const (
	avx2       tier = iota
	avxvnni         // AVX2 + AVX-VNNI (VEX-encoded VPDPBUSD on YMM)
	avx512          // AVX-512 F/BW/VL/DQ + AVX512_VNNI
	avx512gfni      // avx512 + GFNI: Tiled8 Q3, Q5 and Q6 kernels only (tiledgfni.go)
)

func (t tier) String() string {
	return [...]string{"AVX2", "AVXVNNI", "AVX512", "AVX512GFNI"}[t]
}

// kind is a quantized weight type: bits 3, 4, 5, 6 or 8, whether groups carry a
// min, and whether a group is a superblock of 8 chunks with 6-bit sub-scale
// codes (kernels/superblock.go).
type kind struct {
	bits  int
	asym  bool
	super bool
}

func (k kind) name() string {
	s := fmt.Sprintf("q%d", k.bits)
	if k.super {
		s += "k"
	}
	if k.asym {
		return s + "Asym"
	}
	return s + "Sym"
}

// chunkBytes and offShift mirror kernels/blocks.go: packed bytes per 32
// weights and log2 of the symmetric level offset (4, 8, 16, 32, 128).
func (k kind) chunkBytes() int { return map[int]int{3: 12, 4: 16, 5: 20, 6: 24, 8: 32}[k.bits] }
func (k kind) offShift() int   { return map[int]int{3: 2, 4: 3, 5: 4, 6: 5, 8: 7}[k.bits] }
func (k kind) hdrBytes() int {
	if k.super && k.asym {
		return 16
	}
	if k.super {
		return 8
	}
	if k.asym {
		return 4
	}
	return 2
}

var (
	mask0F, mask03, mask01, ones16, xor80, shiftQ3lo, shiftQ3hi, shiftQ4 Mem
	// superblock codes: code c of a 6-bit stream starting at bit b of a
	// qword is (qword >> (b+6c)) & 63; qword j of codeEven<b> shifts by
	// b+12j (code 2j), of codeOdd<b> by b+12j+6 (code 2j+1)
	codeEven0, codeOdd0, codeEven16, codeOdd16, mask3FD, sym32D Mem
)

func consts() {
	bytesConst := func(name string, v byte) Mem {
		m := GLOBL(name, RODATA|NOPTR)
		for i := 0; i < 64; i++ { // a ZMM operand's width
			DATA(i, U8(v))
		}
		return m
	}
	mask0F = bytesConst("mask0F", 0x0f)
	mask03 = bytesConst("mask03", 0x03)
	mask01 = bytesConst("mask01", 0x01)
	xor80 = bytesConst("xor80", 0x80)
	ones16 = GLOBL("ones16", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(2*i, U16(1))
	}
	// Q4: the upper 128-bit half (qwords 2, 3) holds the high nibbles.
	shiftQ4 = GLOBL("shiftQ4", RODATA|NOPTR)
	for k, v := range []int{0, 0, 4, 4} {
		DATA(8*k, U64(v))
	}
	// Q3 low plane: qword k of the broadcast chunk is shifted right by 2k.
	shiftQ3lo = GLOBL("shiftQ3lo", RODATA|NOPTR)
	for k := 0; k < 4; k++ {
		DATA(8*k, U64(2*k))
	}
	for _, c := range []struct {
		m    *Mem
		name string
		base int
	}{{&codeEven0, "codeEven0", 0}, {&codeOdd0, "codeOdd0", 6}, {&codeEven16, "codeEven16", 16}, {&codeOdd16, "codeOdd16", 22}} {
		*c.m = GLOBL(c.name, RODATA|NOPTR)
		for j := 0; j < 4; j++ {
			DATA(8*j, U64(c.base+12*j))
		}
	}
	mask3FD = GLOBL("mask3FD", RODATA|NOPTR)
	for l := 0; l < 8; l++ {
		DATA(4*l, U32(63))
	}
	sym32D = GLOBL("sym32D", RODATA|NOPTR)
	for l := 0; l < 8; l++ {
		DATA(4*l, U32(32))
	}
	// Q3 high plane: dword l of the broadcast uint32 is shifted right by l.
	shiftQ3hi = GLOBL("shiftQ3hi", RODATA|NOPTR)
	for l := 0; l < 8; l++ {
		DATA(4*l, U32(l))
	}
}

// vpdpbusd emits VPDPBUSD src(s8), u8, acc (acc += dot of 4-byte groups);
// avo v0.5 has no AVX512_VNNI table, so the instruction is built by hand.
func vpdpbusd(s8 Op, u8, acc VecPhysical) {
	Instruction(&ir.Instruction{
		Opcode:   "VPDPBUSD",
		Operands: []Op{s8, u8, acc},
		Inputs:   []Op{s8, u8, acc},
		Outputs:  []Op{acc},
		ISA:      []string{"AVX512VNNI", "AVX512VL"},
	})
}

// Register plan of dotKernel (R rows x T tokens; R*T <= 4, R == 1 or T == 1):
//
//	DI out, BX/R8/R12/R14 rows 0..3, CX groups left, DX chunks left,
//	SI activation values, R9 scales, R10 sums (token 0; token t at +t*stride),
//	R11 = Q stride, R13 = D/S stride, and for T = 4 (one row) R12 = 3*Q stride,
//	R14 = 3*D/S stride.
//	Y0..Y3 accumulators acc[r*T+t], Y4..Y7 row scales d (broadcast), mins m
//	(asym) in Y6/Y7 for R <= 2 or in stack slots for R = 4, Y8 unpacked levels,
//	Y9 activation scale (broadcast), Y10 per-token integer offset (sym) or
//	m-term factor D*S (asym), Y11 integer sums, Y12 scale / unpack scratch,
//	Y13 0x01 mask (Q3) or |w| (Q8 AVX2), Y14 ones16 (AVX2) or 0x80 (Q8 AVX-512),
//	Y15 0x0F or 0x03 mask.
func dotKernel(t tier, k kind, R, T int) {
	name := fmt.Sprintf("%sR%dT%d%s", k.name(), R, T, t)
	TEXT(name, NOSPLIT, "func(out *float32, ostride uintptr, w *byte, wstride uintptr, q *int8, d *float32, s *int32, astride uintptr, groups uintptr, cpg uintptr)")
	Doc(
		fmt.Sprintf("%s computes the dot products of %d packed %s rows (row r at w+r*wstride)", name, R, k.name()),
		fmt.Sprintf("with %d 8-bit activations (token t's values at q+t*32*astride, scales and sums at", T),
		"d/s+t*astride), over groups groups of cpg 32-weight chunks, into out[r+t*ostride].",
		"Reference: dotRowGeneric (same integer chunk sums, f32 additions in another order).",
	)
	Pragma("noescape")

	out := RDI
	qp, dp, sp := RSI, R9, R10
	qs, qs3, ds, ds3 := R11, R12, R13, R14
	wp := []GPPhysical{RBX, R8, R12, R14}[:R]
	Load(Param("out"), out)
	Load(Param("w"), wp[0])
	if R > 1 {
		Load(Param("wstride"), RCX)
		for r := 1; r < R; r++ {
			LEAQ(Mem{Base: wp[r-1], Index: RCX, Scale: 1}, wp[r])
		}
	}
	Load(Param("q"), qp)
	Load(Param("d"), dp)
	Load(Param("s"), sp)
	tokenStrides(qs, qs3, ds, ds3, T > 3)
	Load(Param("groups"), RCX)

	acc := []VecPhysical{Y0, Y1, Y2, Y3}
	dw := []VecPhysical{Y4, Y5, Y6, Y7}
	// mins: registers Y6/Y7 for up to 2 rows, else 32-byte stack slots
	// (read as FMA memory operands).
	var mw []Op
	var mwStack Mem
	if k.asym && R > 2 {
		mwStack = AllocLocal(32 * R)
		for r := 0; r < R; r++ {
			mw = append(mw, mwStack.Offset(32*r))
		}
	} else {
		mw = []Op{Y6, Y7}
	}
	// superblocks: each row's 8 decoded sub-scales (and sub-mins) as f32 in
	// 32-byte stack slots, read by chunk (RAX = 4*chunk)
	var scStack, mnStack Mem
	if k.super {
		scStack = AllocLocal(32 * R)
		if k.asym {
			mnStack = AllocLocal(32 * R)
		}
	}
	lv := Y8
	for i := 0; i < R*T; i++ {
		VXORPS(acc[i], acc[i], acc[i])
	}
	switch k.bits {
	case 4, 5, 6:
		VMOVDQU(mask0F, Y15)
	case 3:
		VMOVDQU(mask03, Y15)
		VMOVDQU(mask01, Y13)
	}
	if t == avx2 {
		VMOVDQU(ones16, Y14)
	} else if k.bits == 8 {
		VMOVDQU(xor80, Y14)
	}
	needOff := !k.asym && !(k.bits == 8 && t == avx2)

	// dot accumulates row r x token tt into acc (levels in Y8).
	dot := func(r, tt int) {
		qm := tokenMem(qp, qs, qs3, tt, 0)
		a := acc[r*T+tt]
		Commentf("row %d x token %d", r, tt)
		switch {
		case t == avx2 && k.bits == 8:
			VMOVDQU(qm, Y11)
			VPSIGNB(lv, Y11, Y11)
			VPMADDUBSW(Y11, Y13, Y11)
			VPMADDWD(Y14, Y11, Y11)
		case t == avx2:
			VPMADDUBSW(qm, lv, Y11)
			VPMADDWD(Y14, Y11, Y11)
			if needOff {
				VPADDD(Y10, Y11, Y11)
			}
		default:
			if needOff {
				VMOVDQA(Y10, Y11)
			} else {
				VPXOR(Y11, Y11, Y11)
			}
			vpdpbusd(qm, lv, Y11)
		}
		VCVTDQ2PS(Y11, Y11)
		VMULPS(dw[r], Y9, Y12)
		VFMADD231PS(Y11, Y12, a)
		if k.asym {
			VFMADD231PS(mw[r], Y10, a)
		}
	}

	Label(name + "_group")
	if k.super {
		superHeader(k, R, wp, scStack, mnStack)
	}
	Comment("group header: d (and m) as f32 broadcasts; VCVTPH2PS reads 4 halves")
	Comment("(d, m and 2 or 4 level bytes, all inside the group)")
	for r := 0; r < R && !k.super; r++ {
		if R > 1 {
			PREFETCHT0(Mem{Base: wp[r], Disp: prefetchDist})
		}
		VCVTPH2PS(Mem{Base: wp[r]}, dw[r].AsX())
		if k.asym {
			if reg, ok := mw[r].(VecPhysical); ok {
				VMOVSHDUP(dw[r].AsX(), reg.AsX())
				VBROADCASTSS(reg.AsX(), reg)
			} else {
				VMOVSHDUP(dw[r].AsX(), X12)
				VBROADCASTSS(X12, Y12)
				VMOVUPS(Y12, mw[r])
			}
		}
		VBROADCASTSS(dw[r].AsX(), dw[r])
		ADDQ(U32(k.hdrBytes()), wp[r])
	}
	if k.super {
		for r := 0; r < R; r++ {
			ADDQ(U32(k.hdrBytes()), wp[r])
		}
		XORQ(RAX, RAX)
	}
	Load(Param("cpg"), RDX)

	Label(name + "_chunk")
	if k.super {
		Comment("this chunk's sub-scale (and sub-min) of each row, broadcast")
		for r := 0; r < R; r++ {
			sm := scStack.Offset(32 * r)
			sm.Index, sm.Scale = RAX, 1
			VBROADCASTSS(sm, dw[r])
			if k.asym {
				mm := mnStack.Offset(32 * r)
				mm.Index, mm.Scale = RAX, 1
				if reg, ok := mw[r].(VecPhysical); ok {
					VBROADCASTSS(mm, reg)
				} else {
					VBROADCASTSS(mm, Y12)
					VMOVUPS(Y12, mw[r])
				}
			}
		}
		ADDQ(U8(4), RAX)
	}
	prep := func(tt int) {
		dm, sm := tokenMem(dp, ds, ds3, tt, 0), tokenMem(sp, ds, ds3, tt, 0)
		Commentf("token %d: activation scale (Y9) and offset or m-term (Y10)", tt)
		VBROADCASTSS(dm, Y9)
		if needOff {
			// Y10 = (0 - (sum << shift)) in lane 0, zeros elsewhere
			VMOVD(sm, X10)
			VPSLLD(U8(k.offShift()), X10, X10)
			VPXOR(X12, X12, X12)
			VPSUBD(X10, X12, X10)
		}
		if k.asym {
			VXORPS(X10, X10, X10)
			VCVTSI2SSL(sm, X10, X10)
			VMULSS(dm, X10, X10)
		}
	}
	unpackRow := func(r int) {
		Commentf("unpack row %d's chunk into 32 bytes of levels", r)
		unpack(t, k, Mem{Base: wp[r]}, lv)
		if k.bits == 8 && t == avx2 {
			VPABSB(lv, Y13)
		}
		ADDQ(U32(k.chunkBytes()), wp[r])
	}
	if T == 1 {
		prep(0)
		for r := 0; r < R; r++ {
			unpackRow(r)
			dot(r, 0)
		}
	} else {
		unpackRow(0)
		for tt := 0; tt < T; tt++ {
			prep(tt)
			dot(0, tt)
		}
	}
	ADDQ(U8(32), qp)
	ADDQ(U8(4), dp)
	ADDQ(U8(4), sp)
	DECQ(RDX)
	JNZ(LabelRef(name + "_chunk"))
	DECQ(RCX)
	JNZ(LabelRef(name + "_group"))

	Comment("horizontal sums into out")
	storeOut(acc[:R*T], R, T)
	VZEROUPPER()
	RET()
}

// superHeader decodes the superblock header of each row (at wp[r]) into its
// stack slots: sub-scale c = D*(code-32) (sym) or D*code (asym) in f32 lane c
// of scStack slot r, and sub-min c = M*code in mnStack slot r (asym). Codes
// are 6-bit fields of a little-endian stream (kernels/superblock.go): a
// broadcast qword shifted per qword lane puts codes 2j and 2j+1 at the bottom
// of qword j of two vectors; the second's low dwords move up and blend in.
// Uses Y8..Y12.
func superHeader(k kind, R int, wp []GPPhysical, scStack, mnStack Mem) {
	decode := func(m Mem, even, odd Mem, signed bool, dst VecPhysical) {
		VPBROADCASTQ(m, Y12)
		VPSRLVQ(even, Y12, dst)
		VPSRLVQ(odd, Y12, Y12)
		VPSLLQ(U8(32), Y12, Y12)
		VPBLENDD(U8(0xaa), Y12, dst, dst)
		VPAND(mask3FD, dst, dst)
		if signed {
			VPSUBD(sym32D, dst, dst)
		}
		VCVTDQ2PS(dst, dst)
	}
	for r := 0; r < R; r++ {
		Commentf("row %d: superblock sub-scales (and sub-mins) into the stack", r)
		w := Mem{Base: wp[r]}
		VCVTPH2PS(w, X9) // D (and M in lane 1)
		VBROADCASTSS(X9, Y10)
		if !k.asym {
			decode(w, codeEven16, codeOdd16, true, Y11)
			VMULPS(Y10, Y11, Y11)
			VMOVUPS(Y11, scStack.Offset(32*r))
			continue
		}
		decode(w.Offset(4), codeEven0, codeOdd0, false, Y11)
		VMULPS(Y10, Y11, Y11)
		VMOVUPS(Y11, scStack.Offset(32*r))
		VMOVSHDUP(X9, X10)
		VBROADCASTSS(X10, Y10)
		decode(w.Offset(8), codeEven16, codeOdd16, false, Y11)
		VMULPS(Y10, Y11, Y11)
		VMOVUPS(Y11, mnStack.Offset(32*r))
	}
}

// tokenStrides turns the astride parameter (activation blocks per token)
// into the stride registers of the 4-token kernels: qs = 32*astride bytes of
// 8-bit values, ds = 4*astride bytes of scales and sums, and, when with3,
// qs3/ds3 = three times those, for token 3.
func tokenStrides(qs, qs3, ds, ds3 GPPhysical, with3 bool) {
	Load(Param("astride"), ds)
	MOVQ(ds, qs)
	SHLQ(U8(5), qs)
	SHLQ(U8(2), ds)
	if with3 {
		LEAQ(Mem{Base: qs, Index: qs, Scale: 2}, qs3)
		LEAQ(Mem{Base: ds, Index: ds, Scale: 2}, ds3)
	}
}

// tokenMem is token t's (0..3) operand at base p plus disp, with st the
// per-token stride register and st3 its triple.
func tokenMem(p, st, st3 GPPhysical, t, disp int) Mem {
	m := []Mem{{Base: p}, {Base: p, Index: st, Scale: 1}, {Base: p, Index: st, Scale: 2}, {Base: p, Index: st3, Scale: 1}}[t]
	m.Disp = disp
	return m
}

// storeOut reduces each accumulator and stores acc[r*T+t] to
// out[r + t*ostride] (DI = out; uses DX and Y12).
func storeOut(acc []VecPhysical, R, T int) {
	if T > 1 {
		Load(Param("ostride"), RDX)
		SHLQ(U8(2), RDX)
	}
	for r := 0; r < R; r++ {
		for t := 0; t < T; t++ {
			a := acc[r*T+t]
			hsum(a, Y12)
			m := Mem{Base: RDI, Disp: 4 * r}
			switch t {
			case 1:
				m.Index, m.Scale = RDX, 1
			case 2:
				m.Index, m.Scale = RDX, 2
			case 3:
				LEAQ(Mem{Base: RDI, Index: RDX, Scale: 2}, RAX)
				m = Mem{Base: RAX, Index: RDX, Scale: 1, Disp: 4 * r}
			}
			VMOVSS(a.AsX(), m)
		}
	}
}

// unpack loads one chunk of levels at m into dst as 32 bytes in element order
// (see kernels/blocks.go for the layouts). Uses Y12 as scratch.
func unpack(t tier, k kind, m Mem, dst VecPhysical) {
	switch k.bits {
	case 4, 3:
		unpackLevels(k, m, dst, Y12, Y15, Y13)
	case 6:
		// low 4 bits as Q4; bits 4..5 from the 2-bit plane as Q3's low plane
		unpackLevels(kind{bits: 4}, m, dst, Y12, Y15, Y13)
		VPBROADCASTQ(m.Offset(16), Y12)
		VPSRLVQ(shiftQ3lo, Y12, Y12)
		VPAND(mask03, Y12, Y12)
		VPSLLW(U8(4), Y12, Y12)
		VPOR(Y12, dst, dst)
	case 5:
		// low 4 bits as Q4; bit 4 from the 1-bit plane as Q3's high plane
		unpackLevels(kind{bits: 4}, m, dst, Y12, Y15, Y13)
		VPBROADCASTD(m.Offset(16), Y12)
		VPSRLVD(shiftQ3hi, Y12, Y12)
		VPAND(mask01, Y12, Y12)
		VPSLLW(U8(4), Y12, Y12)
		VPOR(Y12, dst, dst)
	case 8:
		VMOVDQU(m, dst)
		if t == avx512 {
			// stored q-128 -> unsigned level q for VPDPBUSD
			VPXOR(Y14, dst, dst)
		}
	}
}

// unpackLevels is unpack for Q4 and Q3 with its operands named: low is the
// level mask (0x0F for Q4, 0x03 for Q3's 2-bit plane), one is 0x01 per byte
// (Q3's 1-bit plane), scratch is clobbered (Q3).
func unpackLevels(k kind, m Mem, dst, scratch VecPhysical, low, one Op) {
	switch k.bits {
	case 4:
		// low nibbles are weights 0..15, high nibbles 16..31: broadcast the
		// 16 bytes to both halves, shift the upper half's qwords by 4, mask
		VBROADCASTI128(m, dst)
		VPSRLVQ(shiftQ4, dst, dst)
		VPAND(low, dst, dst)
	case 3:
		// 2-bit plane: qword k shifted by 2k; 1-bit plane: dword l shifted by l
		VPBROADCASTQ(m, dst)
		VPSRLVQ(shiftQ3lo, dst, dst)
		VPAND(low, dst, dst)
		VPBROADCASTD(m.Offset(8), scratch)
		VPSRLVD(shiftQ3hi, scratch, scratch)
		VPAND(one, scratch, scratch)
		VPSLLW(U8(2), scratch, scratch)
		VPOR(scratch, dst, dst)
	}
}

// hsum reduces the 8 lanes of v into lane 0 of v.X (scratch tmp).
func hsum(v, tmp VecPhysical) {
	VEXTRACTF128(U8(1), v, tmp.AsX())
	VADDPS(tmp.AsX(), v.AsX(), v.AsX())
	VMOVHLPS(v.AsX(), v.AsX(), tmp.AsX())
	VADDPS(tmp.AsX(), v.AsX(), v.AsX())
	VMOVSHDUP(v.AsX(), tmp.AsX())
	VADDSS(tmp.AsX(), v.AsX(), v.AsX())
}
