package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Tiled8 kernels with VPDPBUSD (the AVX-512 VNNI and AVX-VNNI tiers). Each
// vector k of a chunk tile (kernels/tiles.go) meets dword k of the activation
// chunk broadcast to all lanes in one VPDPBUSD, which adds the 4 u8 x s8
// products of each row straight into that row's int32 lane: no int16 stage,
// no widening, and Q6 and Q8 take the same path as Q4 and Q3. Q8's stored
// signed bytes q-128 are flipped to the unsigned level q (XOR 0x80), so every
// format subtracts its level offset 2^(bits-1) * sum(a) per chunk, as the
// symmetric ones always did.
//
// The kernels use 256-bit vectors and only Y0..Y15 with no EVEX-only
// feature, so the AVX-VNNI tier (Intel clients without AVX-512) runs the very
// same instruction stream with the VEX encoding of VPDPBUSD.

// dpbusd emits acc += VPDPBUSD(u8, s8) for tier t: the EVEX mnemonic for
// AVX-512 VNNI (Go assembles the YMM form as EVEX) or the hand-encoded VEX
// form for AVX-VNNI, which Go's assembler does not know.
func dpbusd(t tier, s8, u8, acc VecPhysical) {
	if t == avxvnni {
		vexVPDPBUSD(s8, u8, acc)
		return
	}
	vpdpbusd(s8, u8, acc)
}

// vexVPDPBUSD emits the bytes of the AVX-VNNI instruction
// "vpdpbusd acc, u8, s8" (Intel order; Go order would be VPDPBUSD s8, u8, acc)
// on YMM registers: VEX.256.66.0F38.W0 50 /r, three-byte VEX prefix
//
//	C4  [~R ~X ~B 00010]  [W=0 ~vvvv L=1 pp=01]  50  [11 reg r/m]
//
// with ModRM.reg = acc, VEX.vvvv = u8 and ModRM.r/m = s8 (R and B are their
// bit 3, inverted, as is vvvv).
func vexVPDPBUSD(s8, u8, acc VecPhysical) {
	r, v, b := byte(acc.PhysicalIndex()), byte(u8.PhysicalIndex()), byte(s8.PhysicalIndex())
	p1 := (^r>>3&1)<<7 | 1<<6 | (^b>>3&1)<<5 | 0x02 // X is unused (no SIB)
	p2 := (^v&15)<<3 | 1<<2 | 0x01
	modrm := 0xc0 | (r&7)<<3 | b&7
	Commentf("VPDPBUSD %s, %s, %s (AVX-VNNI, VEX-encoded: vpdpbusd %s, %s, %s)",
		s8.Asm(), u8.Asm(), acc.Asm(), acc.Asm(), u8.Asm(), s8.Asm())
	for _, x := range []byte{0xc4, p1, p2, 0x50, modrm} {
		Instruction(&ir.Instruction{Opcode: "BYTE", Operands: []Op{U8(x)}, ISA: []string{"AVXVNNI"}})
	}
}

// vnniConstRegs loads the VNNI tiled kernels' constant registers: Y15 = the
// level mask tileVector takes (0x0F for Q4/Q6, 0x07 for Q3), Y14 = 0x80
// (Q8's sign flip).
func vnniConstRegs(k kind) {
	switch k.bits {
	case 4, 6:
		VMOVDQU(mask0F, Y15)
	case 3:
		VMOVDQU(mask07, Y15)
	case 8:
		VMOVDQU(xor80, Y14)
	}
}

// vnniLevels leaves vector v of the chunk tile at w in dst as unsigned levels.
func vnniLevels(k kind, w Mem, v int, dst, raw, tmp VecPhysical) {
	tileVector(k, w, v, dst, raw, tmp, Y15)
	if k.bits == 8 {
		VPXOR(Y14, dst, dst) // stored q-128 -> level q
	}
}

// Register plan of tiledDecodeVNNI (8 rows x 1 token, nblk row blocks):
//
//	DI out, SI weights (one stream), R8/R9/R10 activation values, scales and
//	sums s or ds (reset per row block), CX groups left, DX chunks left, BX row
//	blocks left. Y0 f32 accumulator (8 rows), Y9 m-term accumulator (asym),
//	Y1 and Y3 int32 chunk sums (even and odd vectors: two dependency chains),
//	Y2 levels, Y4 activation broadcast, Y5 raw quad, Y6 scale product, Y7
//	m-term factor, Y8 Q3/Q6 scratch, Y11 mins (asym), Y12 scales, Y14 0x80
//	(Q8), Y15 level mask.
func tiledDecodeVNNI(t tier, k kind) {
	name := fmt.Sprintf("%sX8T1%s", k.name(), t)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, w *byte, q *int8, d *float32, %s, groups uintptr, cpg uintptr, nblk uintptr)", k.sumParam()))
	Doc(
		fmt.Sprintf("%s computes out[0:8*nblk], the dot products of nblk row blocks of a Tiled8 %s", name, k.name()),
		fmt.Sprintf("matrix (tiles from w on) with one 8-bit activation (values q, scales d, %s),", k.sumDoc()),
		"groups groups of cpg chunks per row. Reference: mulVecTiledGeneric.",
	)
	Pragma("noescape")
	Load(Param("out"), RDI)
	Load(Param("w"), RSI)
	Load(Param("nblk"), RBX)
	vnniConstRegs(k)
	Label(name + "_block")
	Load(Param("q"), R8)
	Load(Param("d"), R9)
	Load(Param(k.sumName()), R10)
	Load(Param("groups"), RCX)
	VXORPS(Y0, Y0, Y0)
	if k.asym {
		VXORPS(Y9, Y9, Y9)
	}
	Label(name + "_group")
	Comment("8 rows' scales (and mins) as f32")
	VCVTPH2PS(Mem{Base: RSI}, Y12)
	if k.asym {
		VCVTPH2PS(Mem{Base: RSI, Disp: 16}, Y11)
	}
	ADDQ(U8(k.tileHdr()), RSI)
	Load(Param("cpg"), RDX)
	Label(name + "_chunk")
	for off := 0; off < k.chunkTile(); off += 64 {
		PREFETCHT0(Mem{Base: RSI, Disp: prefetchDist + off})
	}
	VPXOR(Y1, Y1, Y1)
	VPXOR(Y3, Y3, Y3)
	w := Mem{Base: RSI}
	for v := 0; v < 8; v++ {
		Commentf("vector %d x activation dword %d", v, v)
		vnniLevels(k, w, v, Y2, Y5, Y8)
		VPBROADCASTD(Mem{Base: R8, Disp: 4 * v}, Y4)
		dpbusd(t, Y4, Y2, []VecPhysical{Y1, Y3}[v%2])
	}
	VPADDD(Y3, Y1, Y1)
	if !k.asym {
		Comment("levels are offset by 2^(bits-1): subtract that times sum(q)")
		VPBROADCASTD(Mem{Base: R10}, Y4)
		VPSLLD(U8(k.offShift()), Y4, Y4)
		VPSUBD(Y4, Y1, Y1)
	}
	VCVTDQ2PS(Y1, Y1)
	VBROADCASTSS(Mem{Base: R9}, Y6)
	VMULPS(Y12, Y6, Y6)
	VFMADD231PS(Y6, Y1, Y0)
	if k.asym {
		Comment("m-term: m * (d * sum(q))")
		VBROADCASTSS(Mem{Base: R10}, Y7)
		VFMADD231PS(Y7, Y11, Y9)
	}
	ADDQ(U32(k.chunkTile()), RSI)
	ADDQ(U8(32), R8)
	ADDQ(U8(4), R9)
	ADDQ(U8(4), R10)
	DECQ(RDX)
	JNZ(LabelRef(name + "_chunk"))
	DECQ(RCX)
	JNZ(LabelRef(name + "_group"))
	if k.asym {
		VADDPS(Y9, Y0, Y0)
	}
	VMOVUPS(Y0, Mem{Base: RDI})
	ADDQ(U8(32), RDI)
	DECQ(RBX)
	JNZ(LabelRef(name + "_block"))
	VZEROUPPER()
	RET()
}

// Register plan of tiledPrefillVNNI (8 rows x 4 tokens, one row block):
//
//	DI out, SI weights, R8/R9/R10 activation values, scales and sums s or
//	ds of token 0 (token t at +t*stride: R11 = Q stride, R12 = 3*Q stride,
//	R13 = D/S stride, R14 = 3*D/S stride), CX groups left, DX chunks left.
//	Y0..Y3 f32 accumulators (token t), Y4..Y7 int32 chunk sums (token t),
//	Y8 levels, Y9 raw quad, Y10 activation broadcast, Y11 Q3/Q6 scratch and
//	scale product, Y12 scales, Y13 mins (asym), Y14 0x80 (Q8), Y15 level mask.
func tiledPrefillVNNI(t tier, k kind) {
	name := fmt.Sprintf("%sX8T4%s", k.name(), t)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, ostride uintptr, w *byte, q *int8, d *float32, %s, astride uintptr, groups uintptr, cpg uintptr)", k.sumParam()))
	Doc(
		fmt.Sprintf("%s computes the dot products of one row block of a Tiled8 %s matrix", name, k.name()),
		"(tiles from w on) with 4 8-bit activations (token t's values at q+t*32*astride, scales",
		fmt.Sprintf("and %s at %s+t*astride) into out[r+t*ostride], r = 0..7. Reference: mulVecTiledGeneric.", k.sumDoc(), k.sumName()),
	)
	Pragma("noescape")
	Load(Param("out"), RDI)
	Load(Param("w"), RSI)
	Load(Param("q"), R8)
	Load(Param("d"), R9)
	Load(Param(k.sumName()), R10)
	tokenStrides(R11, R12, R13, R14, true)
	Load(Param("groups"), RCX)
	vnniConstRegs(k)
	facc := []VecPhysical{Y0, Y1, Y2, Y3}
	iacc := []VecPhysical{Y4, Y5, Y6, Y7}
	for _, a := range facc {
		VXORPS(a, a, a)
	}
	Label(name + "_group")
	VCVTPH2PS(Mem{Base: RSI}, Y12)
	if k.asym {
		VCVTPH2PS(Mem{Base: RSI, Disp: 16}, Y13)
	}
	ADDQ(U8(k.tileHdr()), RSI)
	Load(Param("cpg"), RDX)
	Label(name + "_chunk")
	for _, a := range iacc {
		VPXOR(a, a, a)
	}
	w := Mem{Base: RSI}
	for v := 0; v < 8; v++ {
		Commentf("vector %d x activation dword %d of each token", v, v)
		vnniLevels(k, w, v, Y8, Y9, Y11)
		for tt := 0; tt < 4; tt++ {
			VPBROADCASTD(tokenMem(R8, R11, R12, tt, 4*v), Y10)
			dpbusd(t, Y10, Y8, iacc[tt])
		}
	}
	for tt := 0; tt < 4; tt++ {
		Commentf("token %d: scale the 8 rows' chunk sums", tt)
		ia := iacc[tt]
		if !k.asym {
			VPBROADCASTD(tokenMem(R10, R13, R14, tt, 0), Y10)
			VPSLLD(U8(k.offShift()), Y10, Y10)
			VPSUBD(Y10, ia, ia)
		}
		VCVTDQ2PS(ia, ia)
		VBROADCASTSS(tokenMem(R9, R13, R14, tt, 0), Y10)
		VMULPS(Y12, Y10, Y10)
		VFMADD231PS(Y10, ia, facc[tt])
		if k.asym {
			VBROADCASTSS(tokenMem(R10, R13, R14, tt, 0), Y11)
			VFMADD231PS(Y11, Y13, facc[tt])
		}
	}
	ADDQ(U32(k.chunkTile()), RSI)
	ADDQ(U8(32), R8)
	ADDQ(U8(4), R9)
	ADDQ(U8(4), R10)
	DECQ(RDX)
	JNZ(LabelRef(name + "_chunk"))
	DECQ(RCX)
	JNZ(LabelRef(name + "_group"))
	Comment("store token t's 8 rows at out + t*ostride")
	Load(Param("ostride"), RDX)
	SHLQ(U8(2), RDX)
	VMOVUPS(Y0, Mem{Base: RDI})
	VMOVUPS(Y1, Mem{Base: RDI, Index: RDX, Scale: 1})
	VMOVUPS(Y2, Mem{Base: RDI, Index: RDX, Scale: 2})
	LEAQ(Mem{Base: RDI, Index: RDX, Scale: 2}, RAX)
	VMOVUPS(Y3, Mem{Base: RAX, Index: RDX, Scale: 1})
	VZEROUPPER()
	RET()
}
