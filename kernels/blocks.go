package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Packed block layouts. A row of a quantized matrix is its groups one after
// another; a group is a header (f16 scale d, then f16 min m when asymmetric,
// both little-endian) followed by Group/32 chunks of packed levels. Levels are
// unsigned: 0..15 (Q4), 0..7 (Q3), 0..31 (Q5), 0..63 (Q6), 0..255 (Q8). A weight is
//
//	symmetric:  w = d * (q - 2^(bits-1))   (q - 8 for Q4, q - 4 for Q3, q - 16 for Q5, q - 32 for Q6, q - 128 for Q8)
//	asymmetric: w = d * q + m
//
// The chunk layouts below are chosen so that AVX2/AVX-512 unpack a chunk into
// 32 bytes in element order with a handful of instructions.

// Q4 chunk: 16 bytes for 32 weights (ggml nibble order).
//
//	byte i (0..15): bits 0..3 = level of weight i, bits 4..7 = level of weight 16+i
//
// Unpack: load 16 bytes, (x & 0x0F) gives weights 0..15 and (x >> 4) & 0x0F
// gives 16..31.
//
// Q4 group (Group = 32, 64, 128; n = Group/32 chunks):
//
//	sym:  [0:2] d f16 | [2:2+16n] chunks                 -> 18/34/66 bytes: 4.5/4.25/4.125 bpw
//	asym: [0:2] d f16 | [2:4] m f16 | [4:4+16n] chunks   -> 20/36/68 bytes: 5.0/4.5/4.25 bpw
const q4ChunkBytes = 16

// Q3 chunk: 12 bytes for 32 weights, a 2-bit plane then a 1-bit plane.
//
//	bytes 0..7  (low plane):  byte i, bits 2k..2k+1 = bits 0..1 of the level of weight 8k+i (k = 0..3)
//	bytes 8..11 (high plane): byte 8+j, bit l      = bit 2 of the level of weight 4l+j   (j = 0..3, l = 0..7)
//
// Unpack (AVX2): broadcast the 8 low-plane bytes to 4 qwords and shift qword k
// right by 2k (VPSRLVQ), mask 0x03: byte 8k+i is weight 8k+i. Broadcast the
// high-plane uint32 to 8 dwords and shift dword l right by l (VPSRLVD), mask
// 0x01: byte 4l+j is bit 2 of weight 4l+j; shift it left by 2 and OR.
//
// Q3 group (n = Group/32 chunks):
//
//	sym:  [0:2] d f16 | [2:2+12n] chunks                 -> 14/26/50 bytes: 3.5/3.25/3.125 bpw
//	asym: [0:2] d f16 | [2:4] m f16 | [4:4+12n] chunks   -> 16/28/52 bytes: 4.0/3.5/3.25 bpw
const q3ChunkBytes = 12

// Q6 chunk: 24 bytes for 32 weights, the Q4 chunk of the low 4 bits, then a
// 2-bit plane of the high 2 bits in the order of Q3's low plane.
//
//	bytes 0..15:  byte i, bits 0..3 = bits 0..3 of weight i, bits 4..7 = of weight 16+i
//	bytes 16..23: byte 16+i, bits 2k..2k+1 = bits 4..5 of weight 8k+i (k = 0..3)
//
// Q6 group (always 32 weights, symmetric; the embedding/output default):
//
//	[0:2] d f16 | [2:26] chunk   -> 26 bytes: 6.5 bpw
const q6ChunkBytes = 24

// Q5 chunk: 20 bytes for 32 weights, the Q4 chunk of the low 4 bits, then a
// 1-bit plane of bit 4 in the order of Q3's high plane.
//
//	bytes 0..15:  byte i, bits 0..3 = bits 0..3 of weight i, bits 4..7 = of weight 16+i
//	bytes 16..19: byte 16+j, bit l = bit 4 of the level of weight 4l+j   (j = 0..3, l = 0..7)
//
// Unpack (AVX2): the Q4 chunk as above; broadcast the high-plane uint32 to 8
// dwords and shift dword l right by l (VPSRLVD), mask 0x01, shift left by 4
// and OR (NEON: the Q3 high plane's VCMTST, moved to bit 4).
//
// Q5 group (always 32 weights, symmetric):
//
//	[0:2] d f16 | [2:22] chunk   -> 22 bytes: 5.5 bpw
const q5ChunkBytes = 20

// Q8 group (always 32 weights, symmetric):
//
//	[0:2] d f16 | [2:34] 32 x int8 (q - 128, two's complement)   -> 34 bytes: 8.5 bpw
//
// The level q (0..255) is stored as the signed byte q-128, so w = d * int8.
const q8ChunkBytes = 32

// Float formats store one little-endian element per weight with no header:
// F32 4 bytes (32 bpw), F16 and BF16 2 bytes (16 bpw).

// RoundF16 rounds x to the nearest binary16 value and back, so a quantizer can
// score exactly the scale that will be stored. Values beyond the f16 range
// become ±Inf, as they would when stored.
func RoundF16(x float32) float32 { return float16.Fromfloat32(x).Float32() }

func f16At(b []byte, off int) float32 {
	return float16.Frombits(binary.LittleEndian.Uint16(b[off:])).Float32()
}

func putF16(b []byte, off int, x float32) {
	binary.LittleEndian.PutUint16(b[off:], float16.Fromfloat32(x).Bits())
}

// BF16ToF32 widens a bfloat16 bit pattern.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 rounds x to bfloat16 (round to nearest even; NaN stays NaN).
func F32ToBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// checkRow validates a row operation's buffers: the format against cols, and
// the packed buffer's length.
func checkRow(f Format, cols, packed int) error {
	if err := f.Valid(cols); err != nil {
		return err
	}
	if want := f.RowBytes(cols); packed != want {
		return fmt.Errorf("%w: %s row of %d weights is %d bytes, buffer has %d", ErrShape, f, cols, want, packed)
	}
	return nil
}

// maxLevel is the largest level of a quantized type.
func maxLevel(t Type) int { return 1<<t.Bits() - 1 }

// PackRow stores one row from integer levels chosen by a quantizer:
// levels[i] is weight i's level (0..2^bits-1), scales[g] and mins[g] are group
// g's scale and min (mins is ignored for symmetric formats and may be nil).
// Scales and mins are rounded to f16 (see RoundF16). Superblock formats take
// one scale (and min) per 32-weight sub-group (Format.SubGroup), rounded to
// the codes SnapSuperScales chooses; PackSuperRow takes the super-scales. dst must be exactly
// f.RowBytes(len(levels)) long.
func PackRow(f Format, dst []byte, levels []uint8, scales, mins []float32) error {
	cols := len(levels)
	if err := checkRow(f, cols, len(dst)); err != nil {
		return fmt.Errorf("kernels: pack row: %w", err)
	}
	if !f.Type.Quantized() {
		return fmt.Errorf("kernels: pack row: %w: %s has no integer levels", ErrFormat, f)
	}
	if f.Super {
		return packSuperRow(f, dst, levels, scales, mins)
	}
	groups := cols / f.Group
	if len(scales) != groups || (f.Asym && len(mins) != groups) {
		return fmt.Errorf("kernels: pack row: %w: %d groups need %d scales (and mins when asym), got %d and %d", ErrShape, groups, groups, len(scales), len(mins))
	}
	top := maxLevel(f.Type)
	for i, q := range levels {
		if int(q) > top {
			return fmt.Errorf("kernels: pack row: %w: level %d of weight %d exceeds %d for %s", ErrShape, q, i, top, f)
		}
	}
	bb := f.BlockBytes()
	for g := 0; g < groups; g++ {
		blk := dst[g*bb : (g+1)*bb]
		putF16(blk, 0, scales[g])
		if f.Asym {
			putF16(blk, 2, mins[g])
		}
		body := blk[f.headerBytes():]
		for c := 0; c < f.Group/ChunkSize; c++ {
			q := levels[g*f.Group+c*ChunkSize:][:ChunkSize]
			switch f.Type {
			case Q4:
				packQ4Chunk(body[c*q4ChunkBytes:][:q4ChunkBytes], q)
			case Q3:
				packQ3Chunk(body[c*q3ChunkBytes:][:q3ChunkBytes], q)
			case Q6:
				packQ6Chunk(body[c*q6ChunkBytes:][:q6ChunkBytes], q)
			case Q5:
				packQ5Chunk(body[c*q5ChunkBytes:][:q5ChunkBytes], q)
			case Q8:
				for i, v := range q {
					body[c*q8ChunkBytes+i] = v ^ 0x80
				}
			}
		}
	}
	return nil
}

func packQ4Chunk(dst []byte, q []uint8) {
	for i := 0; i < 16; i++ {
		dst[i] = q[i] | q[16+i]<<4
	}
}

func packQ3Chunk(dst []byte, q []uint8) {
	clear(dst)
	for e := 0; e < ChunkSize; e++ {
		k, i := e/8, e%8
		dst[i] |= (q[e] & 3) << (2 * k)
		l, j := e/4, e%4
		dst[8+j] |= (q[e] >> 2 & 1) << l
	}
}

func packQ6Chunk(dst []byte, q []uint8) {
	clear(dst[16:24])
	for i := 0; i < 16; i++ {
		dst[i] = q[i]&0x0f | q[16+i]<<4
	}
	for e := 0; e < ChunkSize; e++ {
		k, i := e/8, e%8
		dst[16+i] |= (q[e] >> 4 & 3) << (2 * k)
	}
}

func packQ5Chunk(dst []byte, q []uint8) {
	clear(dst[16:20])
	for i := 0; i < 16; i++ {
		dst[i] = q[i]&0x0f | q[16+i]<<4
	}
	for e := 0; e < ChunkSize; e++ {
		l, j := e/4, e%4
		dst[16+j] |= (q[e] >> 4 & 1) << l
	}
}

func unpackQ5Chunk(dst []uint8, src []byte) {
	for e := 0; e < ChunkSize; e++ {
		l, j := e/4, e%4
		dst[e] = src[e%16]>>(4*(e/16))&0x0f | (src[16+j]>>l&1)<<4
	}
}

func unpackQ6Chunk(dst []uint8, src []byte) {
	for e := 0; e < ChunkSize; e++ {
		k, i := e/8, e%8
		dst[e] = src[e%16]>>(4*(e/16))&0x0f | (src[16+i]>>(2*k)&3)<<4
	}
}

func unpackQ4Chunk(dst []uint8, src []byte) {
	for i := 0; i < 16; i++ {
		dst[i] = src[i] & 0x0f
		dst[16+i] = src[i] >> 4
	}
}

func unpackQ3Chunk(dst []uint8, src []byte) {
	for e := 0; e < ChunkSize; e++ {
		k, i := e/8, e%8
		l, j := e/4, e%4
		dst[e] = src[i]>>(2*k)&3 | (src[8+j]>>l&1)<<2
	}
}

// UnpackRow is the inverse of PackRow: it reads the levels, scales and mins
// (mins only for asymmetric formats; may be nil otherwise) of one packed row.
// len(levels) is the row's column count.
func UnpackRow(f Format, levels []uint8, scales, mins []float32, src []byte) error {
	cols := len(levels)
	if err := checkRow(f, cols, len(src)); err != nil {
		return fmt.Errorf("kernels: unpack row: %w", err)
	}
	if !f.Type.Quantized() {
		return fmt.Errorf("kernels: unpack row: %w: %s has no integer levels", ErrFormat, f)
	}
	groups := cols / f.SubGroup()
	if len(scales) != groups || (f.Asym && len(mins) != groups) {
		return fmt.Errorf("kernels: unpack row: %w: %d groups need %d scales (and mins when asym), got %d and %d", ErrShape, groups, groups, len(scales), len(mins))
	}
	if f.Super {
		unpackSuperRow(f, levels, scales, mins, src)
		return nil
	}
	bb := f.BlockBytes()
	for g := 0; g < groups; g++ {
		blk := src[g*bb : (g+1)*bb]
		scales[g] = f16At(blk, 0)
		if f.Asym {
			mins[g] = f16At(blk, 2)
		}
		body := blk[f.headerBytes():]
		for c := 0; c < f.Group/ChunkSize; c++ {
			q := levels[g*f.Group+c*ChunkSize:][:ChunkSize]
			switch f.Type {
			case Q4:
				unpackQ4Chunk(q, body[c*q4ChunkBytes:])
			case Q3:
				unpackQ3Chunk(q, body[c*q3ChunkBytes:])
			case Q6:
				unpackQ6Chunk(q, body[c*q6ChunkBytes:])
			case Q5:
				unpackQ5Chunk(q, body[c*q5ChunkBytes:])
			case Q8:
				for i := range q {
					q[i] = body[c*q8ChunkBytes+i] ^ 0x80
				}
			}
		}
	}
	return nil
}

// DequantizeRow expands one stored row (any format) into f32. len(dst) is the
// row's column count.
func DequantizeRow(f Format, dst []float32, src []byte) error {
	if err := checkRow(f, len(dst), len(src)); err != nil {
		return fmt.Errorf("kernels: dequantize row: %w", err)
	}
	dequantizeRow(f, dst, src)
	return nil
}

// dequantizeRow is DequantizeRow without the checks.
func dequantizeRow(f Format, dst []float32, src []byte) {
	switch f.Type {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
		return
	case F16:
		for i := range dst {
			dst[i] = float16.Frombits(binary.LittleEndian.Uint16(src[2*i:])).Float32()
		}
		return
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
		return
	}
	if f.Super {
		dequantizeSuperRow(f, dst, src)
		return
	}
	var q [ChunkSize]uint8
	bb := f.BlockBytes()
	off := float32(int(1) << (f.Type.Bits() - 1))
	for g := 0; g < len(dst)/f.Group; g++ {
		blk := src[g*bb : (g+1)*bb]
		d := f16At(blk, 0)
		var m float32
		if f.Asym {
			m = f16At(blk, 2)
		} else {
			m = -d * off
		}
		body := blk[f.headerBytes():]
		for c := 0; c < f.Group/ChunkSize; c++ {
			switch f.Type {
			case Q4:
				unpackQ4Chunk(q[:], body[c*q4ChunkBytes:])
			case Q3:
				unpackQ3Chunk(q[:], body[c*q3ChunkBytes:])
			case Q6:
				unpackQ6Chunk(q[:], body[c*q6ChunkBytes:])
			case Q5:
				unpackQ5Chunk(q[:], body[c*q5ChunkBytes:])
			case Q8:
				for i := range q {
					q[i] = body[c*q8ChunkBytes+i] ^ 0x80
				}
			}
			out := dst[g*f.Group+c*ChunkSize:][:ChunkSize]
			if f.Asym {
				for i, v := range q {
					out[i] = d*float32(v) + m
				}
			} else {
				// d*(q-off) exactly as the integer kernels see it.
				for i, v := range q {
					out[i] = d * (float32(v) - off)
				}
			}
		}
	}
}

// QuantizeRowRTN quantizes one row by plain round-to-nearest: asymmetric
// groups span [min, max] with 2^bits levels; symmetric groups take the
// value of largest magnitude v and use d = v / -2^(bits-1) so that v maps to
// level 0 and the full level range is used (ggml's Q4_0 rule); Q8 uses
// d = absmax/127. Float formats are stored directly (rounded to f16/bf16).
// dst must be exactly f.RowBytes(len(src)) long.
func QuantizeRowRTN(f Format, dst []byte, src []float32) error {
	cols := len(src)
	if err := checkRow(f, cols, len(dst)); err != nil {
		return fmt.Errorf("kernels: quantize row: %w", err)
	}
	switch f.Type {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
		return nil
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], float16.Fromfloat32(v).Bits())
		}
		return nil
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
		}
		return nil
	}
	for _, v := range src {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("kernels: quantize row: %w: non-finite weight %v", ErrShape, v)
		}
	}
	if f.Super {
		return quantizeSuperRowRTN(f, dst, src)
	}
	groups := cols / f.Group
	levels := make([]uint8, cols)
	scales := make([]float32, groups)
	var mins []float32
	if f.Asym {
		mins = make([]float32, groups)
	}
	top := float32(maxLevel(f.Type))
	for g := 0; g < groups; g++ {
		x := src[g*f.Group : (g+1)*f.Group]
		q := levels[g*f.Group : (g+1)*f.Group]
		if f.Asym {
			lo, hi := x[0], x[0]
			for _, v := range x {
				lo, hi = min(lo, v), max(hi, v)
			}
			d := RoundF16((hi - lo) / top)
			m := RoundF16(lo)
			scales[g], mins[g] = d, m
			var inv float32
			if d != 0 {
				inv = 1 / d
			}
			for i, v := range x {
				q[i] = uint8(clampRound((v-m)*inv, 0, top))
			}
			continue
		}
		var amax, vmax float32
		for _, v := range x {
			if a := abs32(v); a > amax {
				amax, vmax = a, v
			}
		}
		off := float32(int(1) << (f.Type.Bits() - 1))
		var d float32
		if f.Type == Q8 {
			d = RoundF16(amax / 127)
		} else {
			d = RoundF16(vmax / -off)
		}
		scales[g] = d
		var inv float32
		if d != 0 {
			inv = 1 / d
		}
		for i, v := range x {
			q[i] = uint8(clampRound(v*inv+off, 0, top))
		}
	}
	return PackRow(f, dst, levels, scales, mins)
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// clampRound rounds half away from zero and clamps to [lo, hi].
func clampRound(x, lo, hi float32) float32 {
	r := float32(math.Round(float64(x)))
	return min(max(r, lo), hi)
}
