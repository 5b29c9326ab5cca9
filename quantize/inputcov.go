package quantize

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cafeq/cafeq/model"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"
)

// Input covariance from the embedding: GPTQ without calibration data.
//
// Rounding to nearest (with any scale search) minimises ||W - Q||_F, which
// treats every input channel alike. What the model feels is ||(W - Q)·x||
// over its inputs, whose mean square is tr(Δ H Δᵀ) with H = E[x xᵀ]. GPTQ
// minimises that with calibration activations; cafeq has none, but the
// model itself says what a layer's input looks like: the residual stream
// starts as a token's embedding row, and every attention and MLP input is
// that stream RMS-normalised and scaled by the norm weight (1+w). So
//
//	H0 = mean over sampled vocabulary rows e of u·uᵀ, u = e / rms(e),
//
// and the matrices after the norm w that store W·D (D: the diagonal input
// transform folded into that norm) see H = S·H0·S with S = diag((1+w)/d).
// Later layers' streams are not the embedding, but they keep much of its
// channel structure, and on the trained test model this weighting helps in
// every layer (docs/QUANTIZATION.md, "Input covariances from the
// embedding").
//
// GPTQ needs U, upper triangular with H^-1 = UᵀU. H0 is factored once per
// model: damping H0 by 1% of its mean diagonal, (S·H0·S)^-1 = S^-1 U0ᵀ U0
// S^-1, so U = U0·S^-1 for every layer, a column scaling.
//
// The rounding keeps each group's (refined) scale and min and chooses the
// levels column by column, feeding each column's rounding error into the
// columns not yet rounded. A matrix keeps the result only if its
// H-weighted error, measured on sampled rows, is lower than the plain
// result's.

// inputCov is H0, the second moment of an RMS-normalised embedding row, and
// the factor GPTQ rounds with.
type inputCov struct {
	n  int
	h0 []float64     // n x n, row-major, undamped: what errors are scored with
	u0 *mat.TriDense // upper, (H0 + damping)^-1 = U0ᵀ U0
}

// inputCovSamples is how many embedding rows H0 averages, per input
// channel: enough for a well-conditioned estimate (with the damping), few
// enough that the 2B's 256,000 x 2304 table costs seconds.
const inputCovSamples = 4

// newInputCov estimates H0 from up to inputCovSamples·d rows of the
// embedding, chosen at random with seed (all rows of a small vocabulary).
func newInputCov(ck *model.Checkpoint, seed uint64) (*inputCov, error) {
	t, err := ck.Tensor(model.NameEmbed)
	if err != nil {
		return nil, err
	}
	if len(t.Shape) != 2 {
		return nil, fmt.Errorf("quantize: %q has shape %v, want (vocab, d_model)", model.NameEmbed, t.Shape)
	}
	vocab, n := t.Shape[0], t.Shape[1]
	rows := make([]int, vocab)
	for i := range rows {
		rows[i] = i
	}
	if want := inputCovSamples * n; vocab > want {
		rng := rand.New(rand.NewPCG(seed, 0x1c0fa5))
		rng.Shuffle(vocab, func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		rows = rows[:want]
	}
	// Accumulate u·uᵀ a chunk of rows at a time (one SYRK each).
	const chunk = 512
	sum := mat.NewSymDense(n, nil)
	buf := make([]float64, chunk*n)
	row := make([]float32, n)
	used := 0
	for c0 := 0; c0 < len(rows); c0 += chunk {
		k := 0
		for _, r := range rows[c0:min(c0+chunk, len(rows))] {
			if err := t.RowFloat32s(r, row); err != nil {
				return nil, err
			}
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			if !(ss > 0) || math.IsInf(ss, 0) {
				continue // an all-zero (or unusable) row has no direction
			}
			inv := 1 / math.Sqrt(ss/float64(n))
			for j, v := range row {
				buf[k*n+j] = float64(v) * inv
			}
			k++
		}
		if k == 0 {
			continue
		}
		x := mat.NewDense(k, n, buf[:k*n])
		sum.SymRankK(sum, 1, x.T())
		used += k
	}
	if used == 0 {
		return nil, errNoInputCov
	}
	h0 := make([]float64, n*n)
	for i := range n {
		for j := range n {
			h0[i*n+j] = sum.At(i, j) / float64(used)
		}
	}
	return inputCovOf(h0, n)
}

// inputCovOf factors the second moment h0 (n x n, row-major).
func inputCovOf(h0 []float64, n int) (*inputCov, error) {
	var tr float64
	for i := range n {
		tr += h0[i*n+i]
	}
	damped := mat.NewSymDense(n, nil)
	lambda := 0.01*tr/float64(n) + 1e-30
	for i := range n {
		for j := i; j < n; j++ {
			v := 0.5 * (h0[i*n+j] + h0[j*n+i])
			if i == j {
				v += lambda
			}
			damped.SetSym(i, j, v)
		}
	}
	u0, err := invUpperFactor(damped)
	if err != nil {
		return nil, errNoInputCov
	}
	return &inputCov{n: n, h0: h0, u0: u0}, nil
}

// errNoInputCov says the embedding gives no usable covariance (no nonzero
// row, or not positive definite even damped): the model is quantized
// without one.
var errNoInputCov = errors.New("quantize: the embedding gives no input covariance")

// invUpperFactor returns U, upper triangular, with a^-1 = UᵀU.
func invUpperFactor(a *mat.SymDense) (*mat.TriDense, error) {
	var ch mat.Cholesky
	if !ch.Factorize(a) {
		return nil, fmt.Errorf("quantize: the embedding's input covariance is not positive definite")
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return nil, fmt.Errorf("quantize: inverting the embedding's input covariance: %w", err)
	}
	var ch2 mat.Cholesky
	if !ch2.Factorize(&inv) {
		return nil, fmt.Errorf("quantize: the embedding's inverse input covariance is not positive definite")
	}
	var u mat.TriDense
	ch2.UTo(&u)
	return &u, nil
}

// inputScale is S = diag((1+w)/d) for the norm weight w and the diagonal d
// folded into it (nil: d = 1). A zero entry (a channel the norm switches
// off) is raised to a tiny fraction of the largest, so that U = U0·S^-1
// stays finite; such a channel's weights barely matter either way.
func inputScale(normWeight, diag []float32) []float64 {
	s := make([]float64, len(normWeight))
	var top float64
	for j, w := range normWeight {
		v := 1 + float64(w)
		if diag != nil {
			v /= float64(diag[j])
		}
		s[j] = math.Abs(v)
		top = math.Max(top, s[j])
	}
	floor := 1e-6 * top
	for j := range s {
		s[j] = math.Max(s[j], floor)
	}
	return s
}

// gptqBlock is how many columns GPTQ rounds before it updates the rest
// with one matrix product (GPTQ's lazy batch).
const gptqBlock = 128

// gptqFactor is one matrix input's covariance H, block diagonal (Width x
// Width blocks; Width = N: one full matrix), with GPTQ's factor U of the
// damped H: upper triangular, (H + damping)^-1 = UᵀU, block by block.
type gptqFactor struct {
	n, width int
	h        []float64 // n/width blocks, each width x width row-major
	u        []float32 // the same layout
}

// at returns the offset of entry (i, j), which must lie in one block.
func (f *gptqFactor) at(i, j int) int {
	b := i / f.width
	return (b*f.width+i%f.width)*f.width + j%f.width
}

// factorFor is the full factor for S·H0·S: U = U0·S^-1 (see above).
func (ic *inputCov) factorFor(s []float64) *gptqFactor {
	n := ic.n
	f := &gptqFactor{n: n, width: n, h: make([]float64, n*n), u: make([]float32, n*n)}
	for i := range n {
		for j := range n {
			f.h[i*n+j] = s[i] * ic.h0[i*n+j] * s[j]
		}
		for j := i; j < n; j++ {
			f.u[i*n+j] = float32(ic.u0.At(i, j) / s[j])
		}
	}
	return f
}

// reround returns q's matrix (x, rows x cols, the stored basis) re-rounded
// GPTQ-style for inputs with covariance f, keeping q's scales and mins,
// and the ratio of its weighted error to q's; or nil when that is not
// lower.
func reround(x []float32, q *Quantized, f *gptqFactor) (*Quantized, float64) {
	if q.Cols != f.n {
		return nil, 1
	}
	out := roundWithFeedback(x, q, f, gptqBlock)
	before, after := f.weightedErr(x, q), f.weightedErr(x, out)
	if !(after < before) {
		return nil, 1
	}
	return out, after / before
}

// weightedErrRows is how many rows weightedErr samples: the score only
// decides between two roundings of one matrix.
const weightedErrRows = 256

// weightedErr is Σ_r δ_rᵀ H δ_r over evenly spaced rows r, where δ_r is
// row r of x minus q's dequantized matrix.
func (f *gptqFactor) weightedErr(x []float32, q *Quantized) float64 {
	n, w := q.Cols, f.width
	step := max(1, q.Rows/weightedErrRows)
	var picked []int
	for r := 0; r < q.Rows; r += step {
		picked = append(picked, r)
	}
	d := mat.NewDense(len(picked), n, nil)
	deq := make([]float32, n)
	for k, r := range picked {
		q.DequantizeRow(deq, r)
		dr := d.RawRowView(k)
		for j := range n {
			dr[j] = float64(x[r*n+j] - deq[j])
		}
	}
	var e float64
	for b0 := 0; b0 < n; b0 += w {
		db := d.Slice(0, len(picked), b0, b0+w)
		var hd mat.Dense
		hd.Mul(db, mat.NewDense(w, w, f.h[b0*w:(b0+w)*w]))
		for k := range picked {
			for j := range w {
				e += db.At(k, j) * hd.At(k, j)
			}
		}
	}
	return e
}

// roundWithFeedback rounds x (rows x cols) column by column on q's scales
// and mins, subtracting each column's error, divided by U's diagonal, times
// U's row from the columns not yet rounded in its block of f (GPTQ).
// Columns are taken batch at a time: within a batch the feedback is
// applied column by column, to the rest of the block once per batch as one
// matrix product.
func roundWithFeedback(x []float32, q *Quantized, f *gptqFactor, batch int) *Quantized {
	rows, n, fw := q.Rows, q.Cols, f.width
	w := append([]float32(nil), x...)
	out := &Quantized{Grid: q.Grid, Rows: rows, Cols: n, Levels: make([]uint8, len(q.Levels)),
		Scales: q.Scales, Mins: q.Mins, Supers: q.Supers, SuperMins: q.SuperMins}
	gpr := n / q.Group
	const rowChunk = 32
	errs := make([]float32, rows*batch)
	for b0, b1 := 0, 0; b0 < n; b0 = b1 {
		end := (b0/fw + 1) * fw // the end of b0's block of f
		b1 = min(b0+batch, end)
		nb := b1 - b0
		parallelFor((rows+rowChunk-1)/rowChunk, func(c int) {
			one, val := make([]uint8, 1), make([]float32, 1)
			for r := c * rowChunk; r < min((c+1)*rowChunk, rows); r++ {
				wr := w[r*n : (r+1)*n]
				er := errs[r*nb : (r+1)*nb]
				for i := b0; i < b1; i++ {
					gi := r*gpr + i/q.Group
					sc, mn := q.Scales[gi], q.minAt(gi)
					val[0] = wr[i]
					q.levelsFor(one, val, sc, mn)
					out.Levels[r*n+i] = one[0]
					ii := f.at(i, i)
					e := (wr[i] - q.value(one[0], sc, mn)) / f.u[ii]
					er[i-b0] = e
					ui := f.u[ii-i%fw : ii-i%fw+fw]
					for j := i + 1; j < b1; j++ {
						wr[j] -= e * ui[j%fw]
					}
				}
			}
		})
		if b1 < end {
			// W[:, b1:end] -= E · U[b0:b1, b1:end].
			a := blas32.General{Rows: rows, Cols: nb, Stride: nb, Data: errs[:rows*nb]}
			o := f.at(b0, b1)
			b := blas32.General{Rows: nb, Cols: end - b1, Stride: fw, Data: f.u[o : o+(nb-1)*fw+end-b1]}
			cm := blas32.General{Rows: rows, Cols: end - b1, Stride: n, Data: w[b1 : (rows-1)*n+end]}
			blas32.Gemm(blas.NoTrans, blas.NoTrans, -1, a, b, 1, cm)
		}
	}
	return out
}
