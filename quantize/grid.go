package quantize

import (
	"fmt"
	"math"

	"github.com/cafeq/cafeq/kernels"
)

// Grid is a uniform scalar quantization grid applied per group of Group
// consecutive weights along the input axis of a row-major W[out][in].
//
// Asymmetric (Asym): value = scale*level + min, level in [0, 2^Bits-1];
// scale = (max-min)/(2^Bits-1), min = group minimum.
//
// Symmetric: value = scale*(level - 2^(Bits-1)), level in [0, 2^Bits-1];
// scale = x/-2^(Bits-1) where x is the group's entry of largest magnitude, so
// that entry lands exactly on the most negative level (as ggml's Q4_0).
//
// Scales and mins are rounded to float16 before the levels are chosen, so
// every error this package reports is the error of what is stored.
//
// 5, 6 and 8 bits exist only as symmetric groups of 32 (the q5, q6 and q8
// formats); the bit-budget search (-bpw) uses them for sensitive matrices.
//
// Super grids (the kernels' q4_k/q3_k/q5_k/q6_k formats) are groups of 32 whose scales
// (and mins) are 6-bit codes under f16 super-scales shared by 256 weights:
// every scale this package chooses for them is snapped to its superblock's
// codes (kernels.SnapSuperScales, kernels.SnapSub) before levels are rounded.
type Grid struct {
	Bits  int  // 3 or 4 (5, 6 or 8: group 32, symmetric)
	Group int  // 32, 64 or 128 (Super: 32)
	Asym  bool // scale+min instead of scale only
	Super bool // 6-bit sub-scale codes under f16 super-scales per 256 weights
}

// Validate reports whether g is a supported grid for rows of cols weights.
func (g Grid) Validate(cols int) error {
	switch {
	case g.Bits == 5 || g.Bits == 6 || g.Bits == 8:
		if g.Group != 32 || g.Asym {
			return fmt.Errorf("quantize: %d-bit grids are symmetric groups of 32", g.Bits)
		}
	case g.Bits != 3 && g.Bits != 4:
		return fmt.Errorf("quantize: grid bits %d: want 3, 4, 5, 6 or 8", g.Bits)
	}
	if g.Super {
		if g.Bits == 8 || g.Group != kernels.ChunkSize {
			return fmt.Errorf("quantize: superblock grid of %d bits, group %d: want 3, 4, 5 or 6 bits and group %d", g.Bits, g.Group, kernels.ChunkSize)
		}
		if cols <= 0 || cols%kernels.SuperBlock != 0 {
			return fmt.Errorf("quantize: %d columns not a positive multiple of the %d-weight superblock", cols, kernels.SuperBlock)
		}
		return nil
	}
	if g.Group != 32 && g.Group != 64 && g.Group != 128 {
		return fmt.Errorf("quantize: grid group %d: want 32, 64 or 128", g.Group)
	}
	if cols <= 0 || cols%g.Group != 0 {
		return fmt.Errorf("quantize: %d columns not a positive multiple of group %d", cols, g.Group)
	}
	return nil
}

// String is the grid's format name, as everywhere else: q4_g32_asym, q4_k_asym.
func (g Grid) String() string { return g.Format().String() }

// scaleBlock is the number of weights whose scales are chosen together: the
// superblock for super grids, else one group.
func (g Grid) scaleBlock() int {
	if g.Super {
		return kernels.SuperBlock
	}
	return g.Group
}

func (g Grid) maxLevel() int { return 1<<g.Bits - 1 }

// zero is the stored level that means 0 in the symmetric grid.
func (g Grid) zero() int { return 1 << (g.Bits - 1) }

// kappa converts a squared group range into the mean squared rounding error
// per weight: a uniform error over one step s has variance s^2/12, and
// s = range/(2^b-1) (asym) or absmax/2^(b-1) (sym).
func (g Grid) kappa() float64 {
	if g.Asym {
		n := float64(g.maxLevel())
		return 1 / (12 * n * n)
	}
	n := float64(g.zero())
	return 1 / (12 * n * n)
}

// Format is the kernels format that stores this grid.
func (g Grid) Format() kernels.Format {
	t := map[int]kernels.Type{3: kernels.Q3, 4: kernels.Q4, 5: kernels.Q5, 6: kernels.Q6, 8: kernels.Q8}[g.Bits]
	if g.Super {
		return kernels.Format{Type: t, Group: kernels.SuperBlock, Asym: g.Asym, Super: true}
	}
	return kernels.Format{Type: t, Group: g.Group, Asym: g.Asym}
}

// gridOf is the grid a quantized kernels format stores (the inverse of
// Grid.Format); float formats are an error.
func gridOf(f kernels.Format) (Grid, error) {
	if err := f.Valid(f.Group); err != nil {
		return Grid{}, fmt.Errorf("quantize: %w", err)
	}
	switch f.Type {
	case kernels.Q3, kernels.Q4, kernels.Q5, kernels.Q6, kernels.Q8:
	default:
		return Grid{}, fmt.Errorf("quantize: format %s is not a quantized grid", f)
	}
	g := Grid{Bits: f.Type.Bits(), Group: f.Group, Asym: f.Asym, Super: f.Super}
	if f.Super {
		g.Group = kernels.ChunkSize
	}
	return g, nil
}

// quantizeRowRTN is the min-max (RTN) rounding of one row (or a run of whole
// groups), done by kernels.QuantizeRowRTN itself so that the quantizer and
// the stored format can never disagree. mins may be nil for symmetric grids.
// buf is scratch, grown as needed and returned. A row kernels rejects
// (non-finite values, which only a diverged transform can produce) gets NaN
// scales, so every error computed from it is NaN and the candidate loses.
func (g Grid) quantizeRowRTN(levels []uint8, scales, mins []float32, x []float32, buf []byte) []byte {
	return g.quantizeRowRTNSuper(levels, scales, mins, nil, nil, x, buf)
}

// quantizeRowRTNSuper is quantizeRowRTN that also returns a super grid's
// super-scales (sup, and supMin when Asym; either may be nil).
func (g Grid) quantizeRowRTNSuper(levels []uint8, scales, mins, sup, supMin []float32, x []float32, buf []byte) []byte {
	f := g.Format()
	n := f.RowBytes(len(x))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	ng := len(x) / g.Group
	err := kernels.QuantizeRowRTN(f, buf, x)
	if err == nil {
		if !g.Asym {
			mins = nil
		}
		if g.Super {
			err = kernels.UnpackSuperRow(f, levels[:len(x)], scales[:ng], mins, sup, supMin, buf)
		} else {
			err = kernels.UnpackRow(f, levels[:len(x)], scales[:ng], mins, buf)
		}
	}
	if err != nil {
		nan := float32(math.NaN())
		for j := range ng {
			scales[j] = nan
			if mins != nil {
				mins[j] = nan
			}
		}
	}
	return buf
}

// levelsFor rounds x to the nearest level of the grid (scale, min), with the
// same float32 arithmetic as kernels.QuantizeRowRTN.
func (g Grid) levelsFor(levels []uint8, x []float32, scale, mn float32) {
	top := float32(g.maxLevel())
	var off float32
	if !g.Asym {
		off = float32(g.zero())
		mn = 0
	}
	var inv float32
	if scale != 0 {
		inv = 1 / scale
	}
	for i, v := range x {
		l := float32(math.Round(float64((v-mn)*inv + off)))
		levels[i] = uint8(max(0, min(top, l)))
	}
}

// roundOne is levelsFor of one weight, with the level's value.
func (g Grid) roundOne(v, scale, mn float32) (uint8, float32) {
	var l [1]uint8
	x := [1]float32{v}
	g.levelsFor(l[:], x[:], scale, mn)
	return l[0], g.value(l[0], scale, mn)
}

// value is the dequantized weight of a level.
func (g Grid) value(level uint8, scale, min float32) float32 {
	if g.Asym {
		return scale*float32(level) + min
	}
	return scale * float32(int(level)-g.zero())
}

// Quantized is a matrix stored on a Grid: one level per weight (unpacked,
// row-major like the source) and one scale (and min when Grid.Asym) per group,
// row-major over [Rows][Cols/Group]. It is what kernels.PackRow consumes row
// by row.
type Quantized struct {
	Grid
	Rows, Cols int
	Levels     []uint8   // Rows*Cols
	Scales     []float32 // Rows*Cols/Group, float16-representable (Super: super-scale times a code)
	Mins       []float32 // same shape as Scales when Asym, else nil
	// Super grids: the f16 super-scales of the scales (and of the mins when
	// Asym) per 256 weights, row-major over [Rows][Cols/256]; nil otherwise.
	Supers, SuperMins []float32
}

func newQuantized(g Grid, rows, cols int) *Quantized {
	q := &Quantized{Grid: g, Rows: rows, Cols: cols,
		Levels: make([]uint8, rows*cols),
		Scales: make([]float32, rows*cols/g.Group)}
	if g.Asym {
		q.Mins = make([]float32, rows*cols/g.Group)
	}
	if g.Super {
		q.Supers = make([]float32, rows*cols/kernels.SuperBlock)
		if g.Asym {
			q.SuperMins = make([]float32, rows*cols/kernels.SuperBlock)
		}
	}
	return q
}

// RowSupers and RowSuperMins return row r's super-scales (nil for plain
// grids; RowSuperMins also for symmetric ones).
func (q *Quantized) RowSupers(r int) []float32 { return rowOf(q.Supers, r, q.Rows) }

// RowSuperMins returns row r's super-scales of the mins.
func (q *Quantized) RowSuperMins(r int) []float32 { return rowOf(q.SuperMins, r, q.Rows) }

func rowOf(s []float32, r, rows int) []float32 {
	if s == nil {
		return nil
	}
	n := len(s) / rows
	return s[r*n : (r+1)*n]
}

// PackRow stores row r in the grid's format (kernels.PackRow, or
// kernels.PackSuperRow with the chosen super-scales).
func (q *Quantized) PackRow(dst []byte, r int) error {
	f := q.Format()
	if q.Super {
		return kernels.PackSuperRow(f, dst, q.RowLevels(r), q.RowScales(r), q.RowMins(r), q.RowSupers(r), q.RowSuperMins(r))
	}
	return kernels.PackRow(f, dst, q.RowLevels(r), q.RowScales(r), q.RowMins(r))
}

// RowLevels, RowScales and RowMins return row r's slices (RowMins is nil for
// symmetric grids).
func (q *Quantized) RowLevels(r int) []uint8 { return q.Levels[r*q.Cols : (r+1)*q.Cols] }

// RowScales returns row r's group scales.
func (q *Quantized) RowScales(r int) []float32 {
	n := q.Cols / q.Group
	return q.Scales[r*n : (r+1)*n]
}

// RowMins returns row r's group mins, nil for symmetric grids.
func (q *Quantized) RowMins(r int) []float32 {
	if q.Mins == nil {
		return nil
	}
	n := q.Cols / q.Group
	return q.Mins[r*n : (r+1)*n]
}

// minAt returns the min of group gi, 0 for symmetric grids.
func (q *Quantized) minAt(gi int) float32 {
	if q.Mins == nil {
		return 0
	}
	return q.Mins[gi]
}

// DequantizeRow writes row r's dequantized weights into dst (len Cols).
func (q *Quantized) DequantizeRow(dst []float32, r int) {
	n := q.Cols / q.Group
	lv := q.RowLevels(r)
	for j := 0; j < n; j++ {
		s, m := q.Scales[r*n+j], q.minAt(r*n+j)
		for i := j * q.Group; i < (j+1)*q.Group; i++ {
			dst[i] = q.value(lv[i], s, m)
		}
	}
}

// Dequantize returns the dequantized matrix, row-major Rows x Cols.
func (q *Quantized) Dequantize() []float32 {
	out := make([]float32, q.Rows*q.Cols)
	for r := 0; r < q.Rows; r++ {
		q.DequantizeRow(out[r*q.Cols:(r+1)*q.Cols], r)
	}
	return out
}

// RTN quantizes a row-major rows x cols matrix with plain min-max round to
// nearest (the paper's "Uniform" baseline).
func RTN(g Grid, w []float32, rows, cols int) (*Quantized, error) {
	if err := checkMatrix(w, rows, cols); err != nil {
		return nil, err
	}
	if err := g.Validate(cols); err != nil {
		return nil, err
	}
	q := newQuantized(g, rows, cols)
	parallelFor(rows, func(r int) {
		q.quantizeRowRTNSuper(q.RowLevels(r), q.RowScales(r), q.RowMins(r), q.RowSupers(r), q.RowSuperMins(r), w[r*cols:(r+1)*cols], nil)
	})
	return q, nil
}

func checkMatrix(w []float32, rows, cols int) error {
	if rows <= 0 || cols <= 0 || len(w) != rows*cols {
		return fmt.Errorf("quantize: matrix %dx%d with %d values", rows, cols, len(w))
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("quantize: non-finite weight at row %d col %d", i/cols, i%cols)
		}
		if abs32(v) > 60000 {
			// Scales are float16; larger weights would overflow them.
			return fmt.Errorf("quantize: weight %g at row %d col %d exceeds the float16 scale range", v, i/cols, i%cols)
		}
	}
	return nil
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }
