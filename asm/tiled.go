package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Tiled8 kernels (layout in kernels/tiles.go): vector k of a chunk tile holds
// weights 4k..4k+3 of 8 rows, one row per dword lane, so it is multiplied by
// dword k of the activation chunk broadcast to all lanes (VPMADDUBSW), and the
// 8 products of a chunk add up as int16 (at most 8 x 2 x 15 x 127 = 30480 for
// Q4) before one VPMADDWD widens them to the 8 rows' int32 sums. Scales are
// applied per chunk to all 8 rows at once (VCVTPH2PS of the tile header), and
// results are stored without horizontal sums.

// tileHdr, chunkTile and tileCodes mirror kernels/tiles.go: a superblock
// tile's header holds the f16 super-scales (and super-mins) of its 8 rows,
// then one byte per row and chunk of scale codes (and min codes, 64 bytes
// further) from tileCodes on.
func (k kind) tileHdr() int {
	if k.super {
		return k.tileCodes() + 64*k.codeFields()
	}
	return 8 * k.hdrBytes()
}
func (k kind) chunkTile() int { return 8 * k.chunkBytes() }
func (k kind) tileCodes() int { return 16 * k.codeFields() }
func (k kind) codeFields() int {
	if k.asym {
		return 2
	}
	return 1
}

// skipTileHdr moves RSI past a tile's header to its first chunk tile.
func skipTileHdr(k kind) {
	if k.tileHdr() < 128 {
		ADDQ(U8(k.tileHdr()), RSI)
	} else {
		ADDQ(U32(k.tileHdr()), RSI)
	}
}

// tileMinCodes is the offset of a superblock tile's min codes from its scale codes.
const tileMinCodes = 64

// superCodes points AX at the first chunk's codes of the superblock tile at
// RSI (superblock kinds only); tiledNextChunk moves it on by one chunk.
func superCodes(k kind) {
	if k.super {
		LEAQ(Mem{Base: RSI, Disp: k.tileCodes()}, RAX)
	}
}

// subScales leaves in dst the current chunk's sub-scales (off 0) or sub-mins
// (off tileMinCodes) of a superblock tile's rows: their codes (subCodes)
// times the rows' super-scales super (f32).
func subScales(k kind, off int, super, dst, tmp VecPhysical) {
	subCodes(k, off, dst, tmp)
	VMULPS(super, dst, dst)
}

// subCodes leaves in dst the current chunk's scale codes (off 0) or min
// codes (off tileMinCodes) of a superblock tile's rows as f32: the bytes at
// AX+off, one per row (symmetric scales signed, c-32), widened to dwords and
// converted. A ZMM dst gets the next row block's, BX bytes further, in its
// high half (tmp is scratch).
func subCodes(k kind, off int, dst, tmp VecPhysical) {
	widen := VPMOVZXBD
	if !k.asym && off == 0 {
		widen = VPMOVSXBD
	}
	m := Mem{Base: RAX, Disp: off}
	widen(m, dst.AsY())
	if isZMM(dst) {
		hi := m
		hi.Index, hi.Scale = RBX, 1
		widen(hi, tmp.AsY())
		VINSERTI64X4(U8(1), tmp.AsY(), dst, dst)
	}
	VCVTDQ2PS(dst, dst)
}

// tiledNextChunk ends a tiled kernel's chunk loop: the weights (RSI) move
// on one chunk tile, the activation levels (R8) one chunk, the per-chunk
// scales (R9) and sums or products (R10) one float, a superblock's codes
// (AX) one chunk; RDX counts chunks in the group and RCX groups. groupEnd
// (if not nil) emits the work that ends each group.
func tiledNextChunk(k kind, name string, groupEnd func()) {
	if k.super {
		ADDQ(U8(8), RAX)
	}
	ADDQ(U32(k.chunkTile()), RSI)
	ADDQ(U8(32), R8)
	ADDQ(U8(4), R9)
	ADDQ(U8(4), R10)
	DECQ(RDX)
	JNZ(LabelRef(name + "_chunk"))
	if groupEnd != nil {
		groupEnd()
	}
	DECQ(RCX)
	JNZ(LabelRef(name + "_group"))
}

// mask10 (0x10 bytes, Q5's bit 4) is made by q5Kernels.
var mask04, mask07, mask10, mask30, mask40 Mem

func tiledConsts() {
	for _, c := range []struct {
		m *Mem
		v byte
	}{{&mask04, 4}, {&mask07, 7}, {&mask30, 0x30}, {&mask40, 0x40}} {
		*c.m = GLOBL(fmt.Sprintf("mask%02X", c.v), RODATA|NOPTR)
		for i := 0; i < 64; i++ { // a ZMM operand's width
			DATA(i, U8(c.v))
		}
	}
}

// tiledConstRegs loads the tiled kernels' constant registers: Y14 = ones16
// and Y15 = the level mask tileVector takes (0x0F for Q4/Q5/Q6, 0x07 for Q3).
func tiledConstRegs(k kind) {
	VMOVDQU(ones16, Y14)
	switch k.bits {
	case 4, 5, 6:
		VMOVDQU(mask0F, Y15)
	case 3:
		VMOVDQU(mask07, Y15)
	}
}

// tileVector leaves vector v (0..7) of the chunk tile at w in dst as 32 bytes of
// levels (Q4, Q3: unsigned; Q8: the signed stored bytes). raw holds a loaded
// 32 bytes between the two vectors that share them (vector 2j loads, 2j+1
// reuses); tmp is scratch for Q3. mask is 0x0F (Q4) or 0x07 (Q3). With ZMM
// registers it fills both halves, the low one from the row block at w and the
// high one from the next row block, BX bytes further (see tileLoad).
func tileVector(k kind, w Mem, v int, dst, raw, tmp VecPhysical, mask Op) {
	switch k.bits {
	case 4:
		if v%2 == 0 {
			tileLoad(w.Offset(32*(v/2)), raw)
			vpand(mask, raw, dst)
		} else {
			VPSRLW(U8(4), raw, dst)
			vpand(mask, dst, dst)
		}
	case 3:
		// planes A, B, C at 0, 32, 64: vectors 0/1 in A, 2/3 in B, 4/5 in C
		// (bits 0..2 and 3..5); vector 6 = A bits 6..7 | C bit 6 << 2,
		// vector 7 = B bits 6..7 | C bit 7 << 2
		switch {
		case v < 6 && v%2 == 0:
			tileLoad(w.Offset(32*(v/2)), raw)
			vpand(mask, raw, dst)
		case v < 6:
			VPSRLW(U8(3), raw, dst)
			vpand(mask, dst, dst)
		case isZMM(dst):
			// as below, the last AND and the OR in one VPTERNLOGD
			tileLoad(w.Offset(32*(v-6)), dst)
			VPSRLW(U8(6), dst, dst)
			tileLoad(w.Offset(64), tmp)
			VPSRLW(U8(v-2), tmp, tmp)
			vpand(mask04, tmp, tmp)
			VPTERNLOGD(U8(0xec), mask03, tmp, dst) // dst&3 | tmp
		default:
			tileLoad(w.Offset(32*(v-6)), dst)
			VPSRLW(U8(6), dst, dst)
			vpand(mask03, dst, dst)
			tileLoad(w.Offset(64), tmp)
			VPSRLW(U8(v-2), tmp, tmp)
			vpand(mask04, tmp, tmp)
			vpor(tmp, dst, dst)
		}
	case 6:
		// low 4 bits as Q4; bits 4..5 from plane v/4 at bits 2(v%4)
		tileVector(kind{bits: 4}, w, v, dst, raw, tmp, mask)
		tileLoad(w.Offset(128+32*(v/4)), tmp)
		switch s := v % 4; {
		case s < 2:
			VPSLLW(U8(4-2*s), tmp, tmp)
		case s == 3:
			VPSRLW(U8(2), tmp, tmp)
		}
		if isZMM(dst) {
			VPTERNLOGD(U8(0xf8), mask30, tmp, dst) // dst | tmp&0x30
		} else {
			vpand(mask30, tmp, tmp)
			vpor(tmp, dst, dst)
		}
	case 5:
		// low 4 bits as Q4; bit 4 from the plane's bit v
		tileVector(kind{bits: 4}, w, v, dst, raw, tmp, mask)
		tileLoad(w.Offset(128), tmp)
		switch {
		case v < 4:
			VPSLLW(U8(4-v), tmp, tmp)
		case v > 4:
			VPSRLW(U8(v-4), tmp, tmp)
		}
		if isZMM(dst) {
			VPTERNLOGD(U8(0xf8), mask10, tmp, dst) // dst | tmp&0x10
		} else {
			vpand(mask10, tmp, tmp)
			vpor(tmp, dst, dst)
		}
	case 8:
		tileLoad(w.Offset(32*v), dst)
	}
}

// isZMM reports whether v is a 512-bit register.
func isZMM(v VecPhysical) bool { return v.Size() == 64 }

// evex reports whether an instruction on ops needs the EVEX encoding: a ZMM
// register, or one of registers 16..31, which VEX cannot name.
func evex(ops ...Op) bool {
	for _, o := range ops {
		if v, ok := o.(VecPhysical); ok && (isZMM(v) || v.PhysicalIndex() >= 16) {
			return true
		}
	}
	return false
}

// tileLoad loads the 32 bytes at m into dst; a ZMM dst gets the 32 bytes at
// m + BX (the same bytes of the next row block) in its high half.
func tileLoad(m Mem, dst VecPhysical) {
	if dst.PhysicalIndex() >= 16 { // beyond VEX
		VMOVDQU64(m, dst.AsY())
	} else {
		VMOVDQU(m, dst.AsY())
	}
	if !isZMM(dst) {
		return
	}
	hi := m
	hi.Index, hi.Scale = RBX, 1
	VINSERTI64X4(U8(1), hi, dst, dst)
}

// vpand, vpor and vpxor are the bitwise ops at dst's width (the AVX-512
// forms where an operand needs EVEX, the VEX forms otherwise, which AVX2 and
// AVX-VNNI have).
func vpand(a Op, b, dst VecPhysical) {
	if evex(a, b, dst) {
		VPANDD(a, b, dst)
	} else {
		VPAND(a, b, dst)
	}
}

func vpor(a Op, b, dst VecPhysical) {
	if evex(a, b, dst) {
		VPORD(a, b, dst)
	} else {
		VPOR(a, b, dst)
	}
}

func vpxor(a Op, b, dst VecPhysical) {
	if evex(a, b, dst) {
		VPXORD(a, b, dst)
	} else {
		VPXOR(a, b, dst)
	}
}

// The tiled kernels' last activation operand: symmetric kinds take the
// blocks' sums s (int32, for the level offset), asymmetric ones ds = d*s
// (float32, for the minimum's term; kernels.Activation.DS).
func (k kind) sumName() string {
	if k.asym {
		return "ds"
	}
	return "s"
}

func (k kind) sumParam() string {
	if k.asym {
		return "ds *float32"
	}
	return "s *int32"
}

func (k kind) sumDoc() string {
	if k.asym {
		return "scale-times-sum products ds"
	}
	return "sums s"
}

// wide reports whether a kind's products are widened to int32 before all 8
// vectors are summed: int16 sums of 8 vectors would overflow for Q5 (8 x 2 x
// 31 x 127), Q6 (2 x 63 x 127 per pair) and Q8.
func (k kind) wide() bool { return k.bits >= 5 }

// Register plan of tiledDecode (8 rows x 1 token, nblk row blocks):
//
//	DI out, SI weights (one stream), R8/R9/R10 activation values, scales and
//	sums s or ds (reset per row block), CX groups left, DX chunks left, BX row blocks
//	left. Y0 f32 accumulator (8 rows), Y9 m-term accumulator (asym), Y1 int16
//	(Q8: int32) chunk sums, Y2 levels, Y3 products, Y4 activation broadcast,
//	Y5 raw quad / |w|, Y6 scale product, Y7 m-term factor, Y8 Q3 scratch,
//	Y10 Q6 pair (Q5: quad) sums, Y11 mins (asym), Y12 scales, Y14 ones16, Y15 level mask.
//	Superblocks: AX the chunk's codes, Y11/Y12 the rows' M/D, Y13 and Y10
//	(asym) the superblock's code-weighted sums, Y5/Y6 codes as f32.
func tiledDecode(t tier, k kind) {
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
	tiledConstRegs(k)
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
	superCodes(k)
	skipTileHdr(k)
	// superblocks: Y13 (Y10) sums code x activation scale x chunk sum
	// (code x ds) over the block's chunks, times D (M) once per block
	sbAcc, sbMin := Y13, Y10
	superDecodeStart(k, sbAcc, sbMin)
	Load(Param("cpg"), RDX)
	Label(name + "_chunk")
	for off := 0; off < k.chunkTile(); off += 64 {
		PREFETCHT0(Mem{Base: RSI, Disp: prefetchDist + off})
	}
	w := Mem{Base: RSI}
	for v := 0; v < 8; v++ {
		Commentf("vector %d x activation dword %d", v, v)
		tileVector(k, w, v, Y2, Y5, Y8, Y15)
		VPBROADCASTD(Mem{Base: R8, Disp: 4 * v}, Y4)
		if k.bits == 5 {
			// int16 sums of four vectors fit (4 x 2 x 31 x 127 = 31496):
			// widen once per four
			if v%4 == 0 {
				VPMADDUBSW(Y4, Y2, Y10)
				continue
			}
			VPMADDUBSW(Y4, Y2, Y3)
			VPADDW(Y3, Y10, Y10)
			if v%4 == 3 {
				VPMADDWD(Y14, Y10, Y10)
				if v == 3 {
					VMOVDQA(Y10, Y1)
				} else {
					VPADDD(Y10, Y1, Y1)
				}
			}
			continue
		}
		if k.bits == 6 {
			// int16 sums of two vectors fit (2 x 2 x 63 x 127 = 32004):
			// widen once per pair
			if v%2 == 0 {
				VPMADDUBSW(Y4, Y2, Y10)
				continue
			}
			VPMADDUBSW(Y4, Y2, Y3)
			VPADDW(Y3, Y10, Y10)
			VPMADDWD(Y14, Y10, Y10)
			if v == 1 {
				VMOVDQA(Y10, Y1)
			} else {
				VPADDD(Y10, Y1, Y1)
			}
			continue
		}
		if k.wide() {
			if k.bits == 8 { // signed weights: |w| times a with w's sign
				VPSIGNB(Y2, Y4, Y4)
				VPABSB(Y2, Y2)
			}
			VPMADDUBSW(Y4, Y2, Y3)
			VPMADDWD(Y14, Y3, Y3)
			if v == 0 {
				VMOVDQA(Y3, Y1)
			} else {
				VPADDD(Y3, Y1, Y1)
			}
			continue
		}
		if v == 0 {
			VPMADDUBSW(Y4, Y2, Y1)
		} else {
			VPMADDUBSW(Y4, Y2, Y3)
			VPADDW(Y3, Y1, Y1)
		}
	}
	if !k.wide() {
		VPMADDWD(Y14, Y1, Y1)
	}
	if !k.asym && k.bits != 8 {
		Comment("symmetric levels: subtract 2^(bits-1) * sum(q)")
		VPBROADCASTD(Mem{Base: R10}, Y3)
		VPSLLD(U8(k.offShift()), Y3, Y3)
		VPSUBD(Y3, Y1, Y1)
	}
	VCVTDQ2PS(Y1, Y1)
	tiledDecodeScale(k, [...]VecPhysical{Y0, Y1, Y9, Y12, Y11, Y6, Y7, Y4, Y5, sbAcc, sbMin}, nil)
	tiledNextChunk(k, name, superDecodeEnd(k, Y0, Y9, Y12, Y11, sbAcc, sbMin))
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

// tiledDecodeScale scales a decode kernel's chunk sums and adds them up. r
// names its registers: acc (f32 accumulator), isum (chunk sums as f32),
// macc (m-term accumulator, asym), scales and mins (the rows' f32 scales and
// mins; superblocks: D and M), t1, t2, t3, t4 scratch, and the superblock
// accumulators sbAcc, sbMin (superDecodeStart); tmp is ZMM scratch.
// Plain formats add (scale x d) x isum to acc and mins x ds to macc;
// superblocks add (code x d) x isum to sbAcc and min code x ds to sbMin,
// which superDecodeEnd multiplies by D and M once per superblock.
func tiledDecodeScale(k kind, r [11]VecPhysical, tmp VecPhysical) {
	acc, isum, macc, scales, mins, t1, t2, t3, t4, sbAcc, sbMin := r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]
	if !k.super {
		VBROADCASTSS(Mem{Base: R9}, t1)
		VMULPS(scales, t1, t1)
		VFMADD231PS(t1, isum, acc)
		if k.asym {
			Comment("m-term: m * (d * sum(q))")
			VBROADCASTSS(Mem{Base: R10}, t2)
			VFMADD231PS(t2, mins, macc)
		}
		return
	}
	Comment("superblock: code x d x sum, and min code x (d * sum(q))")
	subCodes(k, 0, t1, tmp)
	VBROADCASTSS(Mem{Base: R9}, t3)
	VMULPS(t3, t1, t1)
	VFMADD231PS(t1, isum, sbAcc)
	if k.asym {
		subCodes(k, tileMinCodes, t4, tmp)
		VBROADCASTSS(Mem{Base: R10}, t2)
		VFMADD231PS(t2, t4, sbMin)
	}
}

// superDecodeStart clears a decode kernel's superblock accumulators.
func superDecodeStart(k kind, sbAcc, sbMin VecPhysical) {
	if !k.super {
		return
	}
	VXORPS(sbAcc, sbAcc, sbAcc)
	if k.asym {
		VXORPS(sbMin, sbMin, sbMin)
	}
}

// superDecodeEnd returns the end of a superblock for tiledNextChunk: acc +=
// D x sbAcc, macc += M x sbMin (nil for plain formats).
func superDecodeEnd(k kind, acc, macc, d, m, sbAcc, sbMin VecPhysical) func() {
	if !k.super {
		return nil
	}
	return func() {
		Comment("superblock done: times the rows' D (and M)")
		VFMADD231PS(d, sbAcc, acc)
		if k.asym {
			VFMADD231PS(m, sbMin, macc)
		}
	}
}

// Register plan of tiledPrefill (8 rows x 4 tokens, one row block):
//
//	DI out, SI weights, R8/R9/R10 activation values, scales and sums s or
//	ds of token 0 (token t at +t*stride: R11 = Q stride, R12 = 3*Q stride, R13 = D/S
//	stride, R14 = 3*D/S stride), CX groups left, DX chunks left.
//	Y0..Y3 f32 accumulators (token t), Y4..Y7 int16 (Q8: int32) chunk sums,
//	Y8 levels, Y9 raw quad / |w|, Y10 activation broadcast, Y11 products and
//	Q3 scratch, Y12 scales, Y13 mins (asym) or Q5/Q6's second vector of a pair,
//	Y14 ones16, Y15 level mask. Superblocks: AX the chunk's codes, Y12/Y13
//	the rows' D/M, Y8/Y9 the chunk's sub-scales/mins.
func tiledPrefill(t tier, k kind) {
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
	tiledConstRegs(k)
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
	superCodes(k)
	skipTileHdr(k)
	Load(Param("cpg"), RDX)
	Label(name + "_chunk")
	w := Mem{Base: RSI}
	// Q5 takes Q6's pairs: four vectors' int16 sums would fit, but not
	// four tokens' worth of registers for them
	pairs := k.bits == 5 || k.bits == 6
	for v := 0; v < 8 && pairs; v += 2 {
		Commentf("vectors %d, %d x activation dwords %d, %d of each token (int16 pair sums)", v, v+1, v, v+1)
		tileVector(k, w, v, Y8, Y9, Y11, Y15)
		tileVector(k, w, v+1, Y13, Y9, Y11, Y15)
		for tt := 0; tt < 4; tt++ {
			VPBROADCASTD(tokenMem(R8, R11, R12, tt, 4*v), Y10)
			VPMADDUBSW(Y10, Y8, Y10)
			VPBROADCASTD(tokenMem(R8, R11, R12, tt, 4*v+4), Y11)
			VPMADDUBSW(Y11, Y13, Y11)
			VPADDW(Y11, Y10, Y10)
			VPMADDWD(Y14, Y10, Y10)
			if v == 0 {
				VMOVDQA(Y10, iacc[tt])
			} else {
				VPADDD(Y10, iacc[tt], iacc[tt])
			}
		}
	}
	for v := 0; v < 8 && !pairs; v++ {
		Commentf("vector %d x activation dword %d of each token", v, v)
		tileVector(k, w, v, Y8, Y9, Y11, Y15)
		lv := Y8
		if k.bits == 8 {
			VPABSB(Y8, Y9)
			lv = Y9
		}
		for tt := 0; tt < 4; tt++ {
			VPBROADCASTD(tokenMem(R8, R11, R12, tt, 4*v), Y10)
			if k.wide() {
				if k.bits == 8 {
					VPSIGNB(Y8, Y10, Y10)
				}
				VPMADDUBSW(Y10, lv, Y11)
				VPMADDWD(Y14, Y11, Y11)
				if v == 0 {
					VMOVDQA(Y11, iacc[tt])
				} else {
					VPADDD(Y11, iacc[tt], iacc[tt])
				}
				continue
			}
			if v == 0 {
				VPMADDUBSW(Y10, Y8, iacc[tt])
			} else {
				VPMADDUBSW(Y10, Y8, Y11)
				VPADDW(Y11, iacc[tt], iacc[tt])
			}
		}
	}
	scales, mins := Y12, Y13
	if k.super {
		Comment("the chunk's sub-scales (and sub-mins) from their codes")
		scales = Y8
		subScales(k, 0, Y12, scales, nil)
		if k.asym {
			mins = Y9
			subScales(k, tileMinCodes, Y13, mins, nil)
		}
	}
	for tt := 0; tt < 4; tt++ {
		Commentf("token %d: scale the 8 rows' chunk sums", tt)
		ia := iacc[tt]
		if !k.wide() {
			VPMADDWD(Y14, ia, ia)
		}
		if !k.asym && k.bits != 8 {
			VPBROADCASTD(tokenMem(R10, R13, R14, tt, 0), Y10)
			VPSLLD(U8(k.offShift()), Y10, Y10)
			VPSUBD(Y10, ia, ia)
		}
		VCVTDQ2PS(ia, ia)
		VBROADCASTSS(tokenMem(R9, R13, R14, tt, 0), Y10)
		VMULPS(scales, Y10, Y10)
		VFMADD231PS(Y10, ia, facc[tt])
		if k.asym {
			VBROADCASTSS(tokenMem(R10, R13, R14, tt, 0), Y11)
			VFMADD231PS(Y11, mins, facc[tt])
		}
	}
	tiledNextChunk(k, name, nil)
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
