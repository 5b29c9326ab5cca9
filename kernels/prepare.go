package kernels

// Prepare returns m in the in-memory form the current tier runs fastest,
// copying it when that differs from how it is stored (the result is then a
// new Matrix and m.Data is no longer read; the caller may release it):
//
//   - Q6 on a tier without Q6 kernels (NEON) is widened to Q8, exactly: the
//     level q-32 is the int8 a Q8 group stores, with the same scale, so every
//     product is unchanged;
//   - quantized matrices of a tier with Tiled8 kernels (AVX2) are tiled.
//
// Otherwise it returns m itself.
func Prepare(m *Matrix) (*Matrix, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	out := m
	if m.Format == FormatQ6 && impl.noQ6 && m.Layout == RowMajor {
		out = widenQ6(m)
	}
	if wantsTiles(out) {
		t, err := Tile(out, nil)
		if err != nil {
			return nil, err
		}
		out = t
	}
	return out, nil
}

// widenQ6 re-stores a RowMajor Q6 matrix as Q8 (see Prepare).
func widenQ6(m *Matrix) *Matrix {
	src, dst := FormatQ6, FormatQ8
	groups := m.Rows * m.Cols / ChunkSize
	out := &Matrix{Format: dst, Rows: m.Rows, Cols: m.Cols, Data: allocWeights(groups * dst.BlockBytes())}
	var lv [ChunkSize]uint8
	for g := 0; g < groups; g++ {
		in := m.Data[g*src.BlockBytes():][:src.BlockBytes()]
		o := out.Data[g*dst.BlockBytes():][:dst.BlockBytes()]
		copy(o[0:2], in[0:2]) // the f16 scale
		unpackQ6Chunk(lv[:], in[2:])
		for i, q := range lv {
			o[2+i] = byte(int8(int(q) - 32))
		}
	}
	return out
}
