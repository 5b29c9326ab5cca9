package kernels

import (
	"fmt"
	"math"
)

// Superblock formats (q4_k, q4_k_asym, q3_k, q3_k_asym, q6_k, q5_k): a row
// is blocks of SuperBlock = 256 weights, each made of 8 sub-groups of 32
// weights (one chunk each, packed exactly as the plain formats' Q4/Q3/Q6/Q5
// chunks).
// Every sub-group has its own scale (and min), stored as a 6-bit code times
// an f16 super-scale shared by the block, so small groups cost 0.1875 bits of
// scale per weight instead of 0.5 (f16 per 32).
//
// Symmetric superblock (q4_k 136 bytes, 4.25 bpw; q3_k 104 bytes, 3.25 bpw;
// q6_k 200 bytes, 6.25 bpw; q5_k 168 bytes, 5.25 bpw):
//
//	[0:2]   D f16 super-scale
//	[2:8]   8 scale codes c_0..c_7 (6 bits each, code j at bits 6j..6j+5 of the little-endian 48-bit integer)
//	[8:...] 8 chunks, chunk j = weights 32j..32j+31 (Q4: 16, Q3: 12, Q6: 24, Q5: 20 bytes each)
//
//	sub-scale d_j = D * (c_j - 32)      (signed: -32..31 steps of D)
//	weight      w = d_j * (q - 2^(bits-1))
//
// Asymmetric superblock (q4_k_asym 144 bytes, 4.5 bpw; q3_k_asym 112 bytes,
// 3.5 bpw):
//
//	[0:2]    D f16 super-scale of the scales
//	[2:4]    M f16 super-scale of the mins
//	[4:16]   16 codes (6 bits each, code j at bits 6j..6j+5 of the little-endian 96-bit integer):
//	         codes 0..7 the scales c_j, codes 8..15 the mins n_j
//	[16:...] 8 chunks as above
//
//	sub-scale d_j = D * c_j,  sub-min m_j = M * n_j   (c, n in 0..63)
//	weight      w = d_j * q + m_j
//
// D*code is exact in float32 (11 + 6 significant bits), so every tier sees
// the same sub-scales. The integer dot of a chunk is that of the plain
// formats; only the per-chunk scale and min differ (dotRowSuperGeneric).
//
// The codes are chosen by SnapSuperScales: D puts the sub-scale of largest
// magnitude on code 0 (symmetric: d = -32 D, like the symmetric weights'
// rule) or 63 (asymmetric), and M puts the min of largest magnitude on 63,
// keeping its sign (mins of the other sign become 0). Quantizers may keep D
// and M and move single codes (PackSuperRow, SnapSub).
const (
	SuperBlock    = 256                 // weights per superblock
	superChunks   = SuperBlock / 32     // sub-groups (chunks) per superblock
	codeBits      = 6                   // bits per sub-scale or sub-min code
	codeMax       = 1<<codeBits - 1     // 63
	symCodeOffset = 1 << (codeBits - 1) // 32: a symmetric code c means c-32 steps
)

// superHeaderBytes is the size of a superblock's super-scales and codes.
func superHeaderBytes(asym bool) int {
	if asym {
		return 4 + 2*superChunks*codeBits/8 // 16
	}
	return 2 + superChunks*codeBits/8 // 8
}

// superCodes reads n 6-bit codes from b (little-endian bit stream).
func superCodes(dst []uint8, b []byte) {
	var acc uint64
	bits := 0
	k := 0
	for i := range dst {
		for bits < codeBits {
			acc |= uint64(b[k]) << bits
			k++
			bits += 8
		}
		dst[i] = uint8(acc & codeMax)
		acc >>= codeBits
		bits -= codeBits
	}
}

// putSuperCodes writes n 6-bit codes to b (len n*6/8), the inverse of superCodes.
func putSuperCodes(b []byte, codes []uint8) {
	clear(b)
	for i, c := range codes {
		for k := 0; k < codeBits; k++ {
			bit := codeBits*i + k
			b[bit/8] |= (c >> k & 1) << (bit % 8)
		}
	}
}

// subValue is the sub-scale or sub-min of a code: D*(c-32) for symmetric
// scales, D*c otherwise.
func subValue(super float32, code uint8, signed bool) float32 {
	if signed {
		return super * float32(int(code)-symCodeOffset)
	}
	return super * float32(code)
}

// subCode is the code nearest x for super-scale super, clamped to the codes'
// range.
func subCode(super, x float32, signed bool) uint8 {
	if super == 0 {
		if signed {
			return symCodeOffset
		}
		return 0
	}
	r := float32(math.Round(float64(x / super)))
	if signed {
		return uint8(min(max(r, -symCodeOffset), symCodeOffset-1) + symCodeOffset)
	}
	return uint8(min(max(r, 0), codeMax))
}

// SnapSub returns the value nearest x that a sub-scale (isMin false) or
// sub-min (isMin true) of superblock format f can take under super-scale
// super.
func SnapSub(f Format, super, x float32, isMin bool) float32 {
	signed := !isMin && !f.Asym
	return subValue(super, subCode(super, x, signed), signed)
}

// SnapSuperScales chooses the super-scale(s) of one superblock of format f
// for the given sub-scales and sub-mins (8 each; mins ignored, and m 0, when
// symmetric), and replaces both with the values the codes give. d and m are
// f16-representable.
func SnapSuperScales(f Format, scales, mins []float32) (d, m float32) {
	signed := !f.Asym
	var ext float32
	for _, s := range scales {
		if abs32(s) > abs32(ext) || (signed && abs32(s) == abs32(ext) && s < ext) {
			ext = s
		}
	}
	if signed {
		d = RoundF16(ext / -symCodeOffset)
	} else {
		d = RoundF16(max(ext, 0) / codeMax)
	}
	for j, s := range scales {
		scales[j] = subValue(d, subCode(d, s, signed), signed)
	}
	if !f.Asym {
		return d, 0
	}
	ext = 0
	for _, v := range mins {
		if abs32(v) > abs32(ext) {
			ext = v
		}
	}
	m = RoundF16(ext / codeMax)
	for j, v := range mins {
		mins[j] = subValue(m, subCode(m, v, false), false)
	}
	return d, m
}

// PackSuperRow stores one row of a superblock format with explicit
// super-scales: supers[b] (and superMins[b] when asymmetric) for superblock b,
// and per 32-weight sub-group j the scale scales[j] and min mins[j], each
// stored as the nearest code (exact when they came from SnapSuperScales or
// SnapSub with the same super-scale). dst is f.RowBytes(len(levels)) bytes.
func PackSuperRow(f Format, dst []byte, levels []uint8, scales, mins, supers, superMins []float32) error {
	cols := len(levels)
	if err := checkRow(f, cols, len(dst)); err != nil {
		return fmt.Errorf("kernels: pack row: %w", err)
	}
	if !f.Super {
		return fmt.Errorf("kernels: pack row: %w: %s is not a superblock format", ErrFormat, f)
	}
	nb := cols / SuperBlock
	if len(scales) != nb*superChunks || len(supers) != nb || (f.Asym && (len(mins) != len(scales) || len(superMins) != nb)) {
		return fmt.Errorf("kernels: pack row: %w: %d superblocks need %d scales and %d super-scales (and as many mins when asym), got %d, %d, %d, %d",
			ErrShape, nb, nb*superChunks, nb, len(scales), len(supers), len(mins), len(superMins))
	}
	top := maxLevel(f.Type)
	for i, q := range levels {
		if int(q) > top {
			return fmt.Errorf("kernels: pack row: %w: level %d of weight %d exceeds %d for %s", ErrShape, q, i, top, f)
		}
	}
	bb, hb := f.BlockBytes(), f.headerBytes()
	cb := f.Type.chunkBytes()
	var codes [2 * superChunks]uint8
	for b := 0; b < nb; b++ {
		blk := dst[b*bb : (b+1)*bb]
		putF16(blk, 0, supers[b])
		d := f16At(blk, 0)
		n := superChunks
		codeOff := 2
		if f.Asym {
			putF16(blk, 2, superMins[b])
			m := f16At(blk, 2)
			for j := 0; j < superChunks; j++ {
				codes[superChunks+j] = subCode(m, mins[b*superChunks+j], false)
			}
			n, codeOff = 2*superChunks, 4
		}
		for j := 0; j < superChunks; j++ {
			codes[j] = subCode(d, scales[b*superChunks+j], !f.Asym)
		}
		putSuperCodes(blk[codeOff:hb], codes[:n])
		for c := 0; c < superChunks; c++ {
			packChunk(f.Type, blk[hb+c*cb:][:cb], levels[b*SuperBlock+c*ChunkSize:][:ChunkSize])
		}
	}
	return nil
}

// packSuperRow is PackRow for superblock formats: SnapSuperScales chooses
// each block's super-scales from the given sub-scales and mins.
func packSuperRow(f Format, dst []byte, levels []uint8, scales, mins []float32) error {
	nb := len(levels) / SuperBlock
	if len(levels)%SuperBlock != 0 || len(scales) != nb*superChunks || (f.Asym && len(mins) != len(scales)) {
		return fmt.Errorf("kernels: pack row: %w: %d weights need %d sub-group scales (and mins when asym), got %d and %d",
			ErrShape, len(levels), len(levels)/ChunkSize, len(scales), len(mins))
	}
	sc := append([]float32(nil), scales...)
	var mn []float32
	if f.Asym {
		mn = append([]float32(nil), mins...)
	}
	supers := make([]float32, nb)
	var superMins []float32
	if f.Asym {
		superMins = make([]float32, nb)
	}
	for b := 0; b < nb; b++ {
		var bm []float32
		if f.Asym {
			bm = mn[b*superChunks : (b+1)*superChunks]
		}
		d, m := SnapSuperScales(f, sc[b*superChunks:(b+1)*superChunks], bm)
		supers[b] = d
		if f.Asym {
			superMins[b] = m
		}
	}
	return PackSuperRow(f, dst, levels, sc, mn, supers, superMins)
}

// superHeader decodes superblock blk's 8 sub-scales and (asym) sub-mins.
func superHeader(f Format, blk []byte, scales, mins *[superChunks]float32) {
	var codes [2 * superChunks]uint8
	d := f16At(blk, 0)
	if !f.Asym {
		superCodes(codes[:superChunks], blk[2:8])
		for j := range scales {
			scales[j] = subValue(d, codes[j], true)
		}
		return
	}
	m := f16At(blk, 2)
	superCodes(codes[:], blk[4:16])
	for j := range scales {
		scales[j] = subValue(d, codes[j], false)
		mins[j] = subValue(m, codes[superChunks+j], false)
	}
}

// UnpackSuperRow is UnpackRow for superblock formats that also returns the
// super-scales (supers, and superMins when asymmetric; either may be nil).
func UnpackSuperRow(f Format, levels []uint8, scales, mins, supers, superMins []float32, src []byte) error {
	if err := UnpackRow(f, levels, scales, mins, src); err != nil {
		return err
	}
	bb := f.BlockBytes()
	for b := 0; b < len(src)/bb; b++ {
		if supers != nil {
			supers[b] = f16At(src, b*bb)
		}
		if f.Asym && superMins != nil {
			superMins[b] = f16At(src, b*bb+2)
		}
	}
	return nil
}

// unpackSuperRow is UnpackRow's superblock case (shapes checked).
func unpackSuperRow(f Format, levels []uint8, scales, mins []float32, src []byte) {
	bb, hb, cb := f.BlockBytes(), f.headerBytes(), f.Type.chunkBytes()
	var sc, mn [superChunks]float32
	for b := 0; b < len(src)/bb; b++ {
		blk := src[b*bb : (b+1)*bb]
		superHeader(f, blk, &sc, &mn)
		copy(scales[b*superChunks:], sc[:])
		if f.Asym {
			copy(mins[b*superChunks:], mn[:])
		}
		for c := 0; c < superChunks; c++ {
			unpackChunk(f.Type, levels[b*SuperBlock+c*ChunkSize:][:ChunkSize], blk[hb+c*cb:])
		}
	}
}

// unpackChunk reads one RowMajor chunk's 32 levels (Q8: the unsigned level).
func unpackChunk(t Type, dst []uint8, src []byte) {
	switch t {
	case Q4:
		unpackQ4Chunk(dst, src)
	case Q3:
		unpackQ3Chunk(dst, src)
	case Q6:
		unpackQ6Chunk(dst, src)
	case Q5:
		unpackQ5Chunk(dst, src)
	case Q8:
		for i := range dst {
			dst[i] = src[i] ^ 0x80
		}
	}
}

// dequantizeSuperRow is dequantizeRow for superblock formats.
func dequantizeSuperRow(f Format, dst []float32, src []byte) {
	bb, hb, cb := f.BlockBytes(), f.headerBytes(), f.Type.chunkBytes()
	off := float32(int(1) << (f.Type.Bits() - 1))
	var sc, mn [superChunks]float32
	var q [ChunkSize]uint8
	for b := 0; b < len(src)/bb; b++ {
		blk := src[b*bb : (b+1)*bb]
		superHeader(f, blk, &sc, &mn)
		for c := 0; c < superChunks; c++ {
			unpackChunk(f.Type, q[:], blk[hb+c*cb:])
			out := dst[b*SuperBlock+c*ChunkSize:][:ChunkSize]
			for i, v := range q {
				if f.Asym {
					out[i] = sc[c]*float32(v) + mn[c]
				} else {
					out[i] = sc[c] * (float32(v) - off)
				}
			}
		}
	}
}

// dotRowSuperGeneric is dotRowGeneric for superblock formats: per chunk c of
// block b (activation block k), with sub-scale d_c and sub-min m_c,
//
//	sym:  acc += (d_c*d[k]) * float32(isum - o*s[k])
//	asym: acc += (d_c*d[k]) * float32(isum) + m_c*(d[k]*float32(s[k]))
func dotRowSuperGeneric(f Format, row []byte, q []int8, d []float32, s []int32) float32 {
	bb, hb, cb := f.BlockBytes(), f.headerBytes(), f.Type.chunkBytes()
	off := int32(1) << (f.Type.Bits() - 1)
	var sc, mn [superChunks]float32
	var lv [ChunkSize]uint8
	var acc float32
	for b := 0; b < len(row)/bb; b++ {
		blk := row[b*bb : (b+1)*bb]
		superHeader(f, blk, &sc, &mn)
		for c := 0; c < superChunks; c++ {
			k := b*superChunks + c
			unpackChunk(f.Type, lv[:], blk[hb+c*cb:])
			isum := dotLevels(&lv, q[k*ChunkSize:(k+1)*ChunkSize])
			if f.Asym {
				acc += (sc[c]*d[k])*float32(isum) + mn[c]*(d[k]*float32(s[k]))
			} else {
				acc += (sc[c] * d[k]) * float32(isum-off*s[k])
			}
		}
	}
	return acc
}

// quantizeSuperRowRTN is QuantizeRowRTN for superblock formats: each
// sub-group's min-max (or absmax) scale and min, snapped to the block's codes
// (SnapSuperScales), then every weight rounded to the nearest level of its
// snapped sub-group grid.
func quantizeSuperRowRTN(f Format, dst []byte, src []float32) error {
	cols := len(src)
	ng := cols / ChunkSize
	levels := make([]uint8, cols)
	scales := make([]float32, ng)
	var mins []float32
	if f.Asym {
		mins = make([]float32, ng)
	}
	top := float32(maxLevel(f.Type))
	off := float32(int(1) << (f.Type.Bits() - 1))
	for j := 0; j < ng; j++ {
		x := src[j*ChunkSize : (j+1)*ChunkSize]
		if f.Asym {
			lo, hi := x[0], x[0]
			for _, v := range x {
				lo, hi = min(lo, v), max(hi, v)
			}
			scales[j], mins[j] = (hi-lo)/top, lo
			continue
		}
		var amax, vmax float32
		for _, v := range x {
			if a := abs32(v); a > amax {
				amax, vmax = a, v
			}
		}
		scales[j] = vmax / -off
	}
	nb := cols / SuperBlock
	supers := make([]float32, nb)
	superMins := make([]float32, nb)
	for b := 0; b < nb; b++ {
		var bm []float32
		if f.Asym {
			bm = mins[b*superChunks : (b+1)*superChunks]
		}
		supers[b], superMins[b] = SnapSuperScales(f, scales[b*superChunks:(b+1)*superChunks], bm)
	}
	for j := 0; j < ng; j++ {
		x := src[j*ChunkSize : (j+1)*ChunkSize]
		q := levels[j*ChunkSize : (j+1)*ChunkSize]
		var inv, m float32
		if scales[j] != 0 {
			inv = 1 / scales[j]
		}
		if f.Asym {
			m = mins[j]
		} else {
			m = -off * scales[j]
		}
		for i, v := range x {
			q[i] = uint8(clampRound((v-m)*inv, 0, top))
		}
	}
	if !f.Asym {
		superMins = nil
	}
	return PackSuperRow(f, dst, levels, scales, mins, supers, superMins)
}
