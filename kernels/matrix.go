package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Matrix is a stored weight matrix W[Rows][Cols] (row-major, PyTorch layout:
// Rows outputs, Cols inputs); Data holds Rows rows of Format.RowBytes(Cols)
// bytes each, arranged as Layout says (see tiles.go).
type Matrix struct {
	Format     Format
	Rows, Cols int
	Data       []byte
	Layout     Layout
}

// Validate checks that the matrix's format, shape and data length agree.
func (m *Matrix) Validate() error {
	if err := m.Format.Valid(m.Cols); err != nil {
		return fmt.Errorf("kernels: matrix %dx%d: %w", m.Rows, m.Cols, err)
	}
	if m.Rows <= 0 {
		return fmt.Errorf("kernels: matrix: %w: %d rows", ErrShape, m.Rows)
	}
	switch m.Layout {
	case RowMajor:
	case Tiled8:
		if !canTile(m) {
			return fmt.Errorf("kernels: matrix %dx%d %s: %w: cannot be %s", m.Rows, m.Cols, m.Format, ErrShape, m.Layout)
		}
	default:
		return fmt.Errorf("kernels: matrix: %w: unknown layout %d", ErrFormat, m.Layout)
	}
	want := m.Rows * m.Format.RowBytes(m.Cols)
	if m.Layout == Tiled8 {
		want = m.Rows / TileRows * tiledBlockBytes(m.Format, m.Cols)
	}
	if len(m.Data) != want {
		return fmt.Errorf("kernels: matrix %dx%d %s: %w: data is %d bytes, want %d", m.Rows, m.Cols, m.Format, ErrShape, len(m.Data), want)
	}
	return nil
}

// row returns the packed bytes of row r.
func (m *Matrix) row(r int) []byte {
	rb := m.Format.RowBytes(m.Cols)
	return m.Data[r*rb : (r+1)*rb]
}

// Row dequantizes row r into dst (len Cols); used for embedding lookups.
func (m *Matrix) Row(r int, dst []float32) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if r < 0 || r >= m.Rows {
		return fmt.Errorf("kernels: matrix row %d: %w: %d rows", r, ErrShape, m.Rows)
	}
	if len(dst) != m.Cols {
		return fmt.Errorf("kernels: matrix row: %w: dst has %d values, want %d", ErrShape, len(dst), m.Cols)
	}
	if m.Layout == Tiled8 {
		dequantizeTiledRow(m, r, dst)
		return nil
	}
	dequantizeRow(m.Format, dst, m.row(r))
	return nil
}

func (m *Matrix) checkRange(r0, r1 int) error {
	if r0 < 0 || r1 > m.Rows || r0 > r1 {
		return fmt.Errorf("kernels: matrix: %w: row range [%d,%d) of %d rows", ErrShape, r0, r1, m.Rows)
	}
	return nil
}

func (m *Matrix) checkAct(a *Activation) error {
	if len(a.F32) != m.Cols {
		return fmt.Errorf("kernels: matrix: %w: activation has %d values, matrix has %d columns", ErrShape, len(a.F32), m.Cols)
	}
	nb := (m.Cols + ChunkSize - 1) / ChunkSize
	if len(a.Q) < nb*ChunkSize || len(a.D) < nb || len(a.S) < nb {
		return fmt.Errorf("kernels: matrix: %w: activation's 8-bit form is too short", ErrShape)
	}
	return nil
}

// MulVec computes dst[r] = sum_c W[r,c] * x[c] for r in [r0, r1). dst has
// len Rows; other entries are left alone, so several goroutines may fill
// disjoint row ranges of one dst. Quantized formats read x's 8-bit form,
// float formats its f32 values. Single-threaded; the caller splits rows.
func (m *Matrix) MulVec(dst []float32, x *Activation, r0, r1 int) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if err := m.checkRange(r0, r1); err != nil {
		return err
	}
	if err := m.checkAct(x); err != nil {
		return err
	}
	if len(dst) != m.Rows {
		return fmt.Errorf("kernels: matvec: %w: dst has %d values, want %d", ErrShape, len(dst), m.Rows)
	}
	if m.Layout == Tiled8 {
		impl.mulVecTiled(m, dst, x, r0, r1)
		return nil
	}
	impl.mulVec(m, dst, x, r0, r1)
	return nil
}

// MulMat is the batched MulVec for prefill: for every token t of xs and row r
// in [r0, r1), dst[t*Rows+r] = sum_c W[r,c] * xs_t[c]. It tiles over rows and
// tokens so that each weight chunk, once unpacked, is used for several tokens.
func (m *Matrix) MulMat(dst []float32, xs *ActivationBatch, r0, r1 int) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if err := m.checkRange(r0, r1); err != nil {
		return err
	}
	if xs.Cols != m.Cols || xs.N < 0 || len(xs.F32) < xs.N*xs.Cols || xs.Blocks != (m.Cols+ChunkSize-1)/ChunkSize ||
		len(xs.Q) < xs.N*xs.Blocks*ChunkSize || len(xs.D) < xs.N*xs.Blocks || len(xs.S) < xs.N*xs.Blocks {
		return fmt.Errorf("kernels: matmul: %w: batch of %d x %d for a matrix of %d columns", ErrShape, xs.N, xs.Cols, m.Cols)
	}
	if len(dst) != xs.N*m.Rows {
		return fmt.Errorf("kernels: matmul: %w: dst has %d values, want %d tokens x %d rows", ErrShape, len(dst), xs.N, m.Rows)
	}
	if m.Layout == Tiled8 {
		impl.mulMatTiled(m, dst, xs, r0, r1)
		return nil
	}
	impl.mulMat(m, dst, xs, r0, r1)
	return nil
}

// mulVecGeneric is the reference matrix-vector product.
func mulVecGeneric(m *Matrix, dst []float32, x *Activation, r0, r1 int) {
	if !m.Format.Type.Quantized() {
		for r := r0; r < r1; r++ {
			dst[r] = dotRowFloatGeneric(m.Format.Type, m.row(r), x.F32)
		}
		return
	}
	for r := r0; r < r1; r++ {
		dst[r] = dotRowGeneric(m.Format, m.row(r), x.Q, x.D, x.S)
	}
}

// mulMatGeneric is the reference matrix-matrix product: MulVec per token.
func mulMatGeneric(m *Matrix, dst []float32, xs *ActivationBatch, r0, r1 int) {
	for t := 0; t < xs.N; t++ {
		a := xs.Token(t)
		mulVecGeneric(m, dst[t*m.Rows:(t+1)*m.Rows], &a, r0, r1)
	}
}

// dotRowFloatGeneric is the reference dot of one F32/F16/BF16 row with x.
func dotRowFloatGeneric(t Type, row []byte, x []float32) float32 {
	var acc float32
	switch t {
	case F32:
		for i, v := range x {
			acc += math.Float32frombits(binary.LittleEndian.Uint32(row[4*i:])) * v
		}
	case F16:
		for i, v := range x {
			acc += float16.Frombits(binary.LittleEndian.Uint16(row[2*i:])).Float32() * v
		}
	case BF16:
		for i, v := range x {
			acc += BF16ToF32(binary.LittleEndian.Uint16(row[2*i:])) * v
		}
	}
	return acc
}

// dotLevels is the integer dot product of a chunk's unsigned levels with its
// 8-bit activations.
func dotLevels(lv *[ChunkSize]uint8, qa []int8) int32 {
	var isum int32
	for i, l := range lv {
		isum += int32(l) * int32(qa[i])
	}
	return isum
}

// dotRowGeneric is the integer reference for one quantized row against an
// 8-bit activation (q, d, s as in Activation). Per 32-chunk b of group g with
// scale dw (and min mw when asymmetric), level offset o = 2^(bits-1):
//
//	isum = sum_i level_i * q_i                      (exact, int32)
//	sym:  acc += (dw*d[b]) * float32(isum - o*s[b])
//	asym: acc += (dw*d[b]) * float32(isum) + mw*(d[b]*float32(s[b]))
//
// The SIMD tiers compute the same integer sums exactly and differ only in the
// order of the float additions.
func dotRowGeneric(f Format, row []byte, q []int8, d []float32, s []int32) float32 {
	if f.Super {
		return dotRowSuperGeneric(f, row, q, d, s)
	}
	bb := f.BlockBytes()
	cpg := f.Group / ChunkSize
	off := int32(1) << (f.Type.Bits() - 1)
	var lv [ChunkSize]uint8
	var acc float32
	for g := 0; g < len(row)/bb; g++ {
		blk := row[g*bb : (g+1)*bb]
		dw := f16At(blk, 0)
		var mw float32
		if f.Asym {
			mw = f16At(blk, 2)
		}
		body := blk[f.headerBytes():]
		for c := 0; c < cpg; c++ {
			b := g*cpg + c
			qa := q[b*ChunkSize : (b+1)*ChunkSize]
			var isum int32
			switch f.Type {
			case Q4:
				// same as unpackQ4Chunk, fused with the sum
				ch := body[c*q4ChunkBytes:][:q4ChunkBytes]
				lo, hi := qa[:16], qa[16:32]
				for i, v := range ch {
					isum += int32(v&0x0f)*int32(lo[i]) + int32(v>>4)*int32(hi[i])
				}
			case Q3:
				unpackQ3Chunk(lv[:], body[c*q3ChunkBytes:])
				isum = dotLevels(&lv, qa)
			case Q6:
				unpackQ6Chunk(lv[:], body[c*q6ChunkBytes:])
				isum = dotLevels(&lv, qa)
			case Q5:
				unpackQ5Chunk(lv[:], body[c*q5ChunkBytes:])
				isum = dotLevels(&lv, qa)
			case Q8:
				ch := body[c*q8ChunkBytes:][:q8ChunkBytes]
				for i, v := range ch {
					isum += int32(v^0x80) * int32(qa[i])
				}
			}
			if f.Asym {
				acc += (dw*d[b])*float32(isum) + mw*(d[b]*float32(s[b]))
			} else {
				acc += (dw * d[b]) * float32(isum-off*s[b])
			}
		}
	}
	return acc
}
