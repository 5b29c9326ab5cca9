package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Tiled8 Q3, Q5 and Q6 unpacking with GFNI (the avx512gfni tier: the AVX-512
// VNNI kernels of tiledvnni.go with another tileVector). GF2P8AFFINEQB
// multiplies every byte, as a vector of 8 bits, by an 8x8 bit matrix: with a
// matrix whose rows each pick one source bit it moves any bits of a byte to
// any positions and clears the rest, so a 3-bit field at bits 3..5 or 6..7
// is one instruction where VPSRLW leaves the neighbouring byte's bits behind
// and needs a VPAND. All three Q3 planes (or a Q6 plane) stay in registers
// 16..18, which only EVEX reaches, so each is loaded once per chunk tile.
//
//	Q3, vectors 0, 2, 4: plane & 7 (VPANDD)
//	    vectors 1, 3, 5: plane bits 3..5 -> 0..2 (affine)
//	    vectors 6, 7:    A (B) bits 6..7 -> 0..1 (affine), then + 4 in the
//	                     bytes whose C bit 6 (7) is set (VPTESTMB into K1 and
//	                     a merge-masked VPADDB)
//	Q6, vector v:        plane v/4 bits 2s..2s+1 -> 4..5 (affine, s = v%4),
//	                     then | (quad & 0x0F) in one VPTERNLOGD (odd vectors:
//	                     quad >> 4)
//	Q5, vector v:        plane bit v -> 4 (affine), then as Q6
//
// Every AVX-512 CPU since Ice Lake and Zen 4 has GFNI; Cascade Lake and
// Cooper Lake have AVX512_VNNI without it and keep the avx512 kernels.

// gfniMatrix is the GF2P8AFFINEQB matrix that sets result bit i to source
// bit src[i] (none where src[i] < 0): the instruction computes result bit i
// as the parity of (matrix byte 7-i AND source byte), so byte 7-i is the
// one-bit mask 1 << src[i].
func gfniMatrix(src [8]int) uint64 {
	var q uint64
	for i, s := range src {
		if s >= 0 {
			q |= 1 << s << (8 * (7 - i))
		}
	}
	return q
}

// gfniMove is the matrix that moves n bits from bit from on to bit to on.
func gfniMove(from, to, n int) uint64 {
	src := [8]int{-1, -1, -1, -1, -1, -1, -1, -1}
	for i := 0; i < n; i++ {
		src[to+i] = from + i
	}
	return gfniMatrix(src)
}

var (
	gfniQ3Mid, gfniQ3Top Mem    // Q3: bits 3..5 -> 0..2, bits 6..7 -> 0..1
	gfniQ6Hi             [4]Mem // Q6: bits 2s..2s+1 -> 4..5
	gfniQ5Hi             [8]Mem // Q5: bit v -> 4 (q5Kernels makes them)
)

func gfniConsts() {
	q := func(name string, v uint64) Mem {
		m := GLOBL(name, RODATA|NOPTR)
		DATA(0, U64(v))
		return m
	}
	gfniQ3Mid = q("gfniQ3Mid", gfniMove(3, 0, 3))
	gfniQ3Top = q("gfniQ3Top", gfniMove(6, 0, 2))
	for s := range gfniQ6Hi {
		gfniQ6Hi[s] = q(fmt.Sprintf("gfniQ6Hi%d", s), gfniMove(2*s, 4, 2))
	}
}

// gfniRegs returns vector registers 16..31 at the kernel's width.
func gfniRegs(zmm bool) [16]VecPhysical {
	if zmm {
		return [16]VecPhysical{Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}
	}
	return [16]VecPhysical{Y16, Y17, Y18, Y19, Y20, Y21, Y22, Y23, Y24, Y25, Y26, Y27, Y28, Y29, Y30, Y31}
}

// Registers of the GFNI unpacking (gfniRegs): 0..2 the planes, 3.. the
// constants gfniConstRegs loads.
const (
	gfniPlane = 0
	gfniConst = 3
)

// gfniConstRegs loads the constants gfniVector reads: Q3 the two matrices,
// 0x40, 0x80 and 0x04 bytes; Q6 its four matrices, Q5 its eight.
func gfniConstRegs(k kind, zmm bool) {
	g := gfniRegs(zmm)
	switch k.bits {
	case 3:
		VPBROADCASTQ(gfniQ3Mid, g[gfniConst])
		VPBROADCASTQ(gfniQ3Top, g[gfniConst+1])
		VPBROADCASTD(mask40, g[gfniConst+2])
		VPBROADCASTD(xor80, g[gfniConst+3])
		VPBROADCASTD(mask04, g[gfniConst+4])
	case 6:
		for s, m := range gfniQ6Hi {
			VPBROADCASTQ(m, g[gfniConst+s])
		}
	case 5:
		for v, m := range gfniQ5Hi {
			VPBROADCASTQ(m, g[gfniConst+v])
		}
	}
}

// gfniVector is tileVector for Q3, Q5 and Q6 with GFNI: vector v (0..7) of
// the chunk tile at w into dst as levels; raw holds the Q5/Q6 quad shared by
// vectors 2j and 2j+1, tmp is scratch, mask is 0x07 (Q3) or 0x0F (Q5, Q6).
func gfniVector(k kind, w Mem, v int, dst, raw, tmp, mask VecPhysical) {
	g := gfniRegs(isZMM(dst))
	plane := func(p int) VecPhysical { return g[gfniPlane+p] }
	switch k.bits {
	case 3:
		if v == 0 {
			for p := 0; p < 3; p++ {
				tileLoad(w.Offset(32*p), plane(p))
			}
		}
		switch {
		case v < 6 && v%2 == 0:
			vpand(mask, plane(v/2), dst)
		case v < 6:
			vgf2p8affineqb(g[gfniConst], plane(v/2), dst)
		default:
			// A (v = 6) or B (v = 7) bits 6..7, + 4 where C bit v is set
			vgf2p8affineqb(g[gfniConst+1], plane(v-6), dst)
			VPTESTMB(g[gfniConst+2+v-6], plane(2), K1)
			VPADDB(g[gfniConst+4], dst, K1, dst)
		}
	case 5, 6:
		// the high bits' plane: Q6 has two (vectors 0..3, 4..7), Q5 one
		if v == 0 || (k.bits == 6 && v == 4) {
			tileLoad(w.Offset(128+32*(v/4)), plane(0))
		}
		matrix := g[gfniConst+v%4]
		if k.bits == 5 {
			matrix = g[gfniConst+v]
		}
		lo := raw
		if v%2 == 0 {
			tileLoad(w.Offset(32*(v/2)), raw)
		} else {
			VPSRLW(U8(4), raw, tmp)
			lo = tmp
		}
		vgf2p8affineqb(matrix, plane(0), dst)
		VPTERNLOGD(U8(0xf8), mask, lo, dst) // dst | (lo & mask)
	default:
		panic(fmt.Sprintf("gfniVector: q%d", k.bits))
	}
}

// vgf2p8affineqb emits dst = the affine transform of each byte of src by
// the matrix in matrix's qwords, no constant (imm 0). avo v0.5 has no GFNI
// instructions; Go's assembler takes "VGF2P8AFFINEQB $imm, matrix, src, dst"
// (Intel "vgf2p8affineqb dst, src, matrix, imm").
func vgf2p8affineqb(matrix, src, dst VecPhysical) {
	Instruction(&ir.Instruction{
		Opcode:   "VGF2P8AFFINEQB",
		Operands: []Op{U8(0), matrix, src, dst},
		Inputs:   []Op{matrix, src},
		Outputs:  []Op{dst},
		ISA:      []string{"GFNI", "AVX512VL"},
	})
}
