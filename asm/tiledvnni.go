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
// The 256-bit kernels (8 rows, one row block) use only Y0..Y15 and no
// EVEX-only feature, so the AVX-VNNI tier (Intel clients without AVX-512)
// runs the very same instruction stream with the VEX encoding of VPDPBUSD.
// The AVX-512 tier also has 512-bit kernels for 16 rows: two row blocks side
// by side, the low half of each ZMM register from one block and the high half
// from the next (BX bytes further), so that one broadcast activation dword
// feeds 16 rows. On Zen 5 they run prefill about 1.8x faster than the 256-bit
// ones (kernels/doc.go); the 256-bit ones take an odd last row block.

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

// vnniRegs returns vector registers 0..15 at the kernel's width.
func vnniRegs(zmm bool) [16]VecPhysical {
	if zmm {
		return [16]VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15}
	}
	return [16]VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}
}

// vnniConstRegs loads the VNNI tiled kernels' constant registers: v[15] = the
// level mask tileVector takes (0x0F for Q4/Q5/Q6, 0x07 for Q3), v[14] = 0x80
// (Q8's sign flip).
func vnniConstRegs(t tier, k kind, v [16]VecPhysical) {
	if t == avx512gfni {
		gfniConstRegs(k, isZMM(v[0]))
	}
	switch k.bits {
	case 4, 5, 6:
		VPBROADCASTD(mask0F, v[15])
	case 3:
		VPBROADCASTD(mask07, v[15])
	case 8:
		VPBROADCASTD(xor80, v[14])
	}
}

// vnniLevels leaves vector v of the chunk tile at w in dst as unsigned levels
// (with GFNI for Q3, Q5 and Q6 in the avx512gfni tier).
func vnniLevels(t tier, k kind, w Mem, v int, dst, raw, tmp, mask, flip VecPhysical) {
	if t == avx512gfni {
		gfniVector(k, w, v, dst, raw, tmp, mask)
		return
	}
	tileVector(k, w, v, dst, raw, tmp, mask)
	if k.bits == 8 {
		vpxor(flip, dst, dst) // stored q-128 -> level q
	}
}

// tileScales converts the f16 scales (off 0) or mins (off 16) of a tile's 8
// rows to f32 in dst; a ZMM dst gets the next row block's in its high half
// (tmp is scratch).
func tileScales(off int, dst, tmp VecPhysical) {
	VCVTPH2PS(Mem{Base: RSI, Disp: off}, dst.AsY())
	if isZMM(dst) {
		VCVTPH2PS(Mem{Base: RSI, Index: RBX, Scale: 1, Disp: off}, tmp.AsY())
		VINSERTF64X4(U8(1), tmp.AsY(), dst, dst)
	}
}

// vnniName is a VNNI tiled kernel's name: X8 (one row block, 256-bit) or X16
// (two row blocks, 512-bit), T1 or T4 tokens, and the tier.
func vnniName(t tier, k kind, zmm bool, tokens int) string {
	rows := 8
	if zmm {
		rows = 16
	}
	return fmt.Sprintf("%sX%dT%d%s", k.name(), rows, tokens, t)
}

// Register plan of tiledDecodeVNNI (8 or 16 rows x 1 token, nblk row blocks
// or npair pairs of them; Yn or Zn by width):
//
//	DI out, SI weights (one stream; BX = bytes per row block for 16 rows),
//	R8/R9/R10 activation values, scales and sums s or ds (reset per row
//	block), CX groups left, DX chunks left, R11 row blocks or pairs left.
//	0 f32 accumulator (8/16 rows), 9 m-term accumulator (asym), 1 and 3
//	int32 chunk sums (even and odd vectors: two dependency chains), 2 levels,
//	4 activation broadcast, 5 raw quad, 6 scale product, 7 m-term factor, 8
//	Q3/Q6 scratch, 10 header scratch (16 rows), 11 mins (asym), 12 scales, 14
//	0x80 (Q8), 15 level mask. Superblocks: AX the chunk's codes, 11/12 the
//	rows' M/D, 13 and 14 (asym) the superblock's code-weighted sums, 6/5
//	codes as f32, 8 ZMM scratch.
func tiledDecodeVNNI(t tier, k kind, zmm bool) {
	name := vnniName(t, k, zmm, 1)
	r := vnniRegs(zmm)
	if zmm {
		TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, w *byte, wstride uintptr, q *int8, d *float32, %s, groups uintptr, cpg uintptr, npair uintptr)", k.sumParam()))
		Doc(
			fmt.Sprintf("%s computes out[0:16*npair], the dot products of npair pairs of row blocks of a Tiled8", name),
			fmt.Sprintf("%s matrix (tiles from w on, wstride bytes per row block) with one 8-bit activation", k.name()),
			fmt.Sprintf("(values q, scales d, %s), groups groups of cpg chunks per row. Reference: mulVecTiledGeneric.", k.sumDoc()),
		)
	} else {
		TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, w *byte, q *int8, d *float32, %s, groups uintptr, cpg uintptr, nblk uintptr)", k.sumParam()))
		Doc(
			fmt.Sprintf("%s computes out[0:8*nblk], the dot products of nblk row blocks of a Tiled8 %s", name, k.name()),
			fmt.Sprintf("matrix (tiles from w on) with one 8-bit activation (values q, scales d, %s),", k.sumDoc()),
			"groups groups of cpg chunks per row. Reference: mulVecTiledGeneric.",
		)
	}
	Pragma("noescape")
	Load(Param("out"), RDI)
	Load(Param("w"), RSI)
	if zmm {
		Load(Param("wstride"), RBX)
		Load(Param("npair"), R11)
	} else {
		Load(Param("nblk"), R11)
	}
	vnniConstRegs(t, k, r)
	Label(name + "_block")
	Load(Param("q"), R8)
	Load(Param("d"), R9)
	Load(Param(k.sumName()), R10)
	Load(Param("groups"), RCX)
	VXORPS(r[0], r[0], r[0])
	if k.asym {
		VXORPS(r[9], r[9], r[9])
	}
	Label(name + "_group")
	Comment("rows' scales (and mins) as f32")
	tileScales(0, r[12], r[10])
	if k.asym {
		tileScales(16, r[11], r[10])
	}
	superCodes(k)
	skipTileHdr(k)
	// superblocks: 13 (14) sums code x activation scale x chunk sum (code
	// x ds) over the block's chunks, times D (M) once per block
	sbAcc, sbMin := r[13], r[14]
	superDecodeStart(k, sbAcc, sbMin)
	Load(Param("cpg"), RDX)
	Label(name + "_chunk")
	for off := 0; off < k.chunkTile(); off += 64 {
		PREFETCHT0(Mem{Base: RSI, Disp: prefetchDist + off})
		if zmm {
			PREFETCHT0(Mem{Base: RSI, Index: RBX, Scale: 1, Disp: prefetchDist + off})
		}
	}
	vpxor(r[1], r[1], r[1])
	vpxor(r[3], r[3], r[3])
	w := Mem{Base: RSI}
	for v := 0; v < 8; v++ {
		Commentf("vector %d x activation dword %d", v, v)
		vnniLevels(t, k, w, v, r[2], r[5], r[8], r[15], r[14])
		VPBROADCASTD(Mem{Base: R8, Disp: 4 * v}, r[4])
		dpbusd(t, r[4], r[2], []VecPhysical{r[1], r[3]}[v%2])
	}
	VPADDD(r[3], r[1], r[1])
	if !k.asym {
		Comment("levels are offset by 2^(bits-1): subtract that times sum(q)")
		VPBROADCASTD(Mem{Base: R10}, r[4])
		VPSLLD(U8(k.offShift()), r[4], r[4])
		VPSUBD(r[4], r[1], r[1])
	}
	VCVTDQ2PS(r[1], r[1])
	tiledDecodeScale(k, [...]VecPhysical{r[0], r[1], r[9], r[12], r[11], r[6], r[7], r[4], r[5], sbAcc, sbMin}, r[8])
	tiledNextChunk(k, name, superDecodeEnd(k, r[0], r[9], r[12], r[11], sbAcc, sbMin))
	if k.asym {
		VADDPS(r[9], r[0], r[0])
	}
	VMOVUPS(r[0], Mem{Base: RDI})
	if zmm {
		Comment("skip the pair's second row block, which the high halves read")
		ADDQ(RBX, RSI)
		ADDQ(U8(64), RDI)
	} else {
		ADDQ(U8(32), RDI)
	}
	DECQ(R11)
	JNZ(LabelRef(name + "_block"))
	VZEROUPPER()
	RET()
}

// Register plan of tiledPrefillVNNI (8 or 16 rows x 4 tokens, one row block
// or a pair; Yn or Zn by width):
//
//	DI out, SI weights (BX = bytes per row block for 16 rows), R8/R9/R10
//	activation values, scales and sums s or ds of token 0 (token t at
//	+t*stride: R11 = Q stride, R12 = 3*Q stride, R13 = D/S stride, R14 =
//	3*D/S stride), CX groups left, DX chunks left. 0..3 f32 accumulators
//	(token t), 4..7 int32 chunk sums (token t), 8 levels, 9 raw quad, 10
//	activation broadcast, 11 Q3/Q6 scratch and scale product, 12 scales,
//	13 mins (asym), 14 0x80 (Q8), 15 level mask. Superblocks: AX the
//	chunk's codes, 12/13 the rows' D/M, 8/9 the chunk's sub-scales/mins.
func tiledPrefillVNNI(t tier, k kind, zmm bool) {
	name := vnniName(t, k, zmm, 4)
	r := vnniRegs(zmm)
	rows := 8
	if zmm {
		rows = 16
		TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, ostride uintptr, w *byte, wstride uintptr, q *int8, d *float32, %s, astride uintptr, groups uintptr, cpg uintptr)", k.sumParam()))
	} else {
		TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, ostride uintptr, w *byte, q *int8, d *float32, %s, astride uintptr, groups uintptr, cpg uintptr)", k.sumParam()))
	}
	blocks := "one row block"
	if zmm {
		blocks = "two row blocks (the second wstride bytes after the first)"
	}
	Doc(
		fmt.Sprintf("%s computes the dot products of %s of a Tiled8 %s matrix", name, blocks, k.name()),
		"(tiles from w on) with 4 8-bit activations (token t's values at q+t*32*astride, scales",
		fmt.Sprintf("and %s at %s+t*astride) into out[r+t*ostride], r = 0..%d. Reference: mulVecTiledGeneric.", k.sumDoc(), k.sumName(), rows-1),
	)
	Pragma("noescape")
	Load(Param("out"), RDI)
	Load(Param("w"), RSI)
	if zmm {
		Load(Param("wstride"), RBX)
	}
	Load(Param("q"), R8)
	Load(Param("d"), R9)
	Load(Param(k.sumName()), R10)
	tokenStrides(R11, R12, R13, R14, true)
	Load(Param("groups"), RCX)
	vnniConstRegs(t, k, r)
	facc := r[0:4]
	iacc := r[4:8]
	for _, a := range facc {
		VXORPS(a, a, a)
	}
	Label(name + "_group")
	tileScales(0, r[12], r[11])
	if k.asym {
		tileScales(16, r[13], r[11])
	}
	superCodes(k)
	skipTileHdr(k)
	Load(Param("cpg"), RDX)
	Label(name + "_chunk")
	for _, a := range iacc {
		vpxor(a, a, a)
	}
	w := Mem{Base: RSI}
	for v := 0; v < 8; v++ {
		Commentf("vector %d x activation dword %d of each token", v, v)
		vnniLevels(t, k, w, v, r[8], r[9], r[11], r[15], r[14])
		for tt := 0; tt < 4; tt++ {
			VPBROADCASTD(tokenMem(R8, R11, R12, tt, 4*v), r[10])
			dpbusd(t, r[10], r[8], iacc[tt])
		}
	}
	scales, mins := r[12], r[13]
	if k.super {
		Comment("the chunk's sub-scales (and sub-mins) from their codes")
		scales = r[8]
		subScales(k, 0, r[12], scales, r[10])
		if k.asym {
			mins = r[9]
			subScales(k, tileMinCodes, r[13], mins, r[10])
		}
	}
	for tt := 0; tt < 4; tt++ {
		Commentf("token %d: scale the rows' chunk sums", tt)
		ia := iacc[tt]
		if !k.asym {
			VPBROADCASTD(tokenMem(R10, R13, R14, tt, 0), r[10])
			VPSLLD(U8(k.offShift()), r[10], r[10])
			VPSUBD(r[10], ia, ia)
		}
		VCVTDQ2PS(ia, ia)
		VBROADCASTSS(tokenMem(R9, R13, R14, tt, 0), r[10])
		VMULPS(scales, r[10], r[10])
		VFMADD231PS(r[10], ia, facc[tt])
		if k.asym {
			VBROADCASTSS(tokenMem(R10, R13, R14, tt, 0), r[11])
			VFMADD231PS(r[11], mins, facc[tt])
		}
	}
	tiledNextChunk(k, name, nil)
	Comment("store token t's rows at out + t*ostride")
	Load(Param("ostride"), RDX)
	SHLQ(U8(2), RDX)
	VMOVUPS(facc[0], Mem{Base: RDI})
	VMOVUPS(facc[1], Mem{Base: RDI, Index: RDX, Scale: 1})
	VMOVUPS(facc[2], Mem{Base: RDI, Index: RDX, Scale: 2})
	LEAQ(Mem{Base: RDI, Index: RDX, Scale: 2}, RAX)
	VMOVUPS(facc[3], Mem{Base: RAX, Index: RDX, Scale: 1})
	VZEROUPPER()
	RET()
}
