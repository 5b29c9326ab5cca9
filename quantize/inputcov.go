package quantize

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cafeq/cafeq/kernels"
	"github.com/cafeq/cafeq/model"
	"gonum.org/v1/gonum/mat"
)

// Input covariances without calibration data: GPTQ on what the model
// itself says its inputs look like.
//
// Rounding to nearest (with any scale search) minimises ||W - Q||_F, which
// treats every input channel alike. What the model feels is ||(W - Q)·x||
// over its inputs, whose mean square is tr(Δ H Δᵀ) with H = E[x xᵀ]. GPTQ
// minimises that with calibration activations. cafeq has none, but it can
// make inputs from the model alone: a token's residual stream starts as its
// embedding row, and a sequence of one token needs no context (its
// attention returns its own v). So sampled vocabulary rows are carried
// through the layers as one-token sequences (stream.go, with the
// checkpoint's weights), and every attention and MLP input is that stream
// RMS-normalised and scaled by the norm weight (1+w):
//
//	H = S·(α·Ĥ + (1-α)·H0)·S,  S = diag((1+w)/d),
//
// where Ĥ is the mean of u·uᵀ over the stream states u at unit RMS, H0 the
// same over more embedding rows (inputCovSamples·d_model of them: the
// stream has fewer samples than channels at 2B, and H0 fills the
// directions they miss), α = m/(m + d_model) for m stream samples, and D
// the diagonal input transform folded into the norm (the matrices store
// W·D). The output projection (the tied embedding) is re-rounded for the
// stream after the last layer and the final norm. On the trained test
// model the default 4.5-bit KL went from 0.00183 (none) to 0.00153 (H0
// alone), 0.00129 (the stream) and 0.00122 (the output projection too;
// docs/QUANTIZATION.md, "Input covariances").
//
// GPTQ needs U, upper triangular with H^-1 = UᵀU. Each mixed moment is
// factored once per norm: damping it by 1% of its mean diagonal,
// (S·M·S)^-1 = S^-1 U0ᵀ U0 S^-1, so U = U0·S^-1, a column scaling.
//
// The rounding keeps each group's (refined) scale and min and chooses the
// levels column by column, feeding each column's rounding error into the
// columns not yet rounded. A matrix keeps the result only if its
// H-weighted error, measured on sampled rows, is lower than the plain
// result's. down_proj is left alone: the same rounding with a covariance
// of its sampled inputs made KL worse (docs).

// inputStats is what the input covariances are made from: H0 and the
// stream of sampled token states, which the quantizer advances layer by
// layer.
type inputStats struct {
	n      int
	h0     []float64 // n x n, row-major
	stream *stream
}

// inputCov is one input's second moment (without S) and the factor GPTQ
// rounds with.
type inputCov struct {
	n  int
	h  []float64     // n x n, row-major, undamped: what errors are scored with
	u0 *mat.TriDense // upper, (h + damping)^-1 = U0ᵀ U0
}

// inputCovSamples is how many embedding rows H0 averages, per input
// channel: enough for a well-conditioned estimate (with the damping), few
// enough that the 2B's 256,000 x 2304 table costs seconds.
const inputCovSamples = 4

// streamSamples is how many of those rows the stream carries through the
// layers: its cost is that many tokens' forward pass plus a moment per
// norm (about 25 CPU-seconds per 2B layer).
const streamSamples = 1024

// newInputStats estimates H0 from up to inputCovSamples·d rows of the
// embedding, chosen at random with seed (all rows of a small vocabulary),
// and starts the stream from the first streamSamples of them.
func newInputStats(ck *model.Checkpoint, seed uint64) (*inputStats, error) {
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
	// Gemma scales the embedding by sqrt(d_model) before the first layer.
	normalizer := float32(math.Sqrt(float64(n)))
	// Accumulate u·uᵀ a chunk of rows at a time (one SYRK each).
	const chunk = 512
	sum := mat.NewSymDense(n, nil)
	buf := make([]float64, chunk*n)
	row := make([]float32, n)
	used := 0
	var states []float32
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
			if len(states) < streamSamples*n {
				for _, v := range row {
					states = append(states, v*normalizer)
				}
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
	return &inputStats{n: n, h0: h0, stream: &stream{cfg: ck.Config, m: len(states) / n, x: states}}, nil
}

// cov is the covariance of the stream's current states (before a norm),
// mixed with H0 as above and factored; errNoInputCov when the mix is not
// positive definite even damped.
func (st *inputStats) cov() (*inputCov, error) {
	h := st.stream.moment()
	m, n := float64(st.stream.m), float64(st.n)
	alpha := m / (m + n)
	for i := range h {
		h[i] = alpha*h[i] + (1-alpha)*st.h0[i]
	}
	return inputCovOf(h, st.n)
}

// inputCovOf factors the second moment h (n x n, row-major), damped by 1%
// of its mean diagonal as GPTQ (invCholUpper).
func inputCovOf(h []float64, n int) (*inputCov, error) {
	u0 := invCholUpper(mat.NewDense(n, n, h))
	if u0 == nil {
		return nil, errNoInputCov
	}
	return &inputCov{n: n, h: h, u0: u0}, nil
}

// errNoInputCov says there is no usable covariance (an embedding with no
// nonzero row, or a moment not positive definite even damped): those
// matrices are quantized without one.
var errNoInputCov = errors.New("quantize: no input covariance")

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

// gptqFactor is one matrix input's covariance H with GPTQ's factor U of
// the damped H: upper triangular, (H + damping)^-1 = UᵀU.
type gptqFactor struct {
	n   int
	h   []float64 // n x n, row-major
	u   []float32 // n x n, row-major, upper triangle
	h32 []float32 // h as float32, made on first use
	// sampleRows is how many rows weightedErr scores (0: weightedErrRows).
	sampleRows int
}

// factorFor is the full factor for S·H0·S: U = U0·S^-1 (see above).
func (ic *inputCov) factorFor(s []float64) *gptqFactor {
	n := ic.n
	f := &gptqFactor{n: n, h: make([]float64, n*n), u: make([]float32, n*n)}
	for i := range n {
		for j := range n {
			f.h[i*n+j] = s[i] * ic.h[i*n+j] * s[j]
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
	n := q.Cols
	want := f.sampleRows
	if want == 0 {
		want = weightedErrRows
	}
	step := max(1, q.Rows/want)
	var picked []int
	for r := 0; r < q.Rows; r += step {
		picked = append(picked, r)
	}
	// δ (k rows) times H (symmetric, so H·δᵀ is δ·Hᵀ), in float32: only
	// the two roundings' order matters.
	k := len(picked)
	d := make([]float32, k*n)
	for i, r := range picked {
		q.DequantizeRow(d[i*n:(i+1)*n], r)
		for j := range n {
			d[i*n+j] = x[r*n+j] - d[i*n+j]
		}
	}
	if f.h32 == nil {
		f.h32 = make([]float32, len(f.h))
		for i, v := range f.h {
			f.h32[i] = float32(v)
		}
	}
	hd := make([]float32, k*n)
	mulNT(hd, d, k, n, f.h32, n)
	var e float64
	for i, v := range d {
		e += float64(v) * float64(hd[i])
	}
	return e
}

// roundWithFeedback rounds x (rows x cols) column by column on q's scales
// and mins, subtracting each column's error, divided by U's diagonal, times
// U's row from the columns not yet rounded (GPTQ). Columns are taken batch
// at a time: within a batch the feedback is applied column by column, to
// the rest of the matrix once per batch.
func roundWithFeedback(x []float32, q *Quantized, f *gptqFactor, batch int) *Quantized {
	rows, n := q.Rows, q.Cols
	w := append([]float32(nil), x...)
	out := &Quantized{Grid: q.Grid, Rows: rows, Cols: n, Levels: make([]uint8, len(q.Levels)),
		Scales: q.Scales, Mins: q.Mins, Supers: q.Supers, SuperMins: q.SuperMins}
	gpr := n / q.Group
	const rowChunk = 32
	errs := make([]float32, rows*batch)
	for b0 := 0; b0 < n; b0 += batch {
		b1 := min(b0+batch, n)
		nb := b1 - b0
		parallelFor((rows+rowChunk-1)/rowChunk, func(c int) {
			neg := make([]float32, 1)
			for r := c * rowChunk; r < min((c+1)*rowChunk, rows); r++ {
				wr := w[r*n : (r+1)*n]
				er := errs[r*nb : (r+1)*nb]
				for i := b0; i < b1; i++ {
					gi := r*gpr + i/q.Group
					l, v := q.roundOne(wr[i], q.Scales[gi], q.minAt(gi))
					out.Levels[r*n+i] = l
					ui := f.u[i*n : (i+1)*n]
					e := (wr[i] - v) / ui[i]
					er[i-b0] = e
					if i+1 < b1 {
						neg[0] = -e
						kernels.AxpyRows(wr[i+1:b1], neg, ui[i+1:b1])
					}
				}
			}
		})
		if b1 < n {
			// W[:, b1:] -= E · U[b0:b1, b1:], row by row as sums of U's
			// rows (copied together, so they stay in cache).
			rest := n - b1
			ub := make([]float32, nb*rest)
			for k := range nb {
				copy(ub[k*rest:(k+1)*rest], f.u[(b0+k)*n+b1:(b0+k+1)*n])
			}
			parallelFor((rows+rowChunk-1)/rowChunk, func(c int) {
				neg := make([]float32, nb)
				for r := c * rowChunk; r < min((c+1)*rowChunk, rows); r++ {
					for k, e := range errs[r*nb : (r+1)*nb] {
						neg[k] = -e
					}
					kernels.AxpyRows(w[r*n+b1:(r+1)*n], neg, ub)
				}
			})
		}
	}
	return out
}
