package quantize

import (
	"math"
)

// Diagonal input transforms: free at run time.
//
// A diagonal D on the input axis (stored W·D, input D^-1 x) needs no
// run-time work when the input is made by something that can absorb D^-1
// exactly: Gemma's RMSNorm before q/k/v and before gate/up multiplies by
// (1+w), which becomes (1+w_j)/d_j; down_proj's input GELU(gate)·up is
// linear in up, so up's row i is divided by d_i. The caller folds Diag
// there (Result.Diag); the block-diagonal transform M, when used, is
// learned on W·D, so the full transform is D·M.
//
// D is chosen with the same proxy loss as M: per quantization group of
// columns (the error of one group of columns does not depend on the scales
// of another), d_j = (s_j/ḡ)^-α with s_j the column's RMS over every matrix
// sharing the input (each weighted by 1/||W||^2) and ḡ their geometric mean
// in the group, for the α in diagAlphas whose exact error
// ||(X - Q(X))·D^-1||^2 with X = W·D, summed over the matrices, is lowest.
// α = 0 is the identity, so the diagonal never loses to plain RTN.
var diagAlphas = []float64{0, 0.25, 0.5, 0.75, 1, 1.25}

// learnDiag returns d (one per column) for matrices sharing one input.
func learnDiag(srcs []source, g Grid) []float32 {
	cols := srcs[0].cols
	s := make([]float64, cols)
	for _, src := range srcs {
		for i, v := range src.w {
			s[i%cols] += src.wt * float64(v) * float64(v)
		}
	}
	ng := cols / g.Group
	logS := make([]float64, cols)
	for j := range s {
		logS[j] = math.Log(math.Max(math.Sqrt(s[j]), 1e-30))
	}
	// Centre each group's log scales so d stays near 1.
	for k := range ng {
		var m float64
		for j := k * g.Group; j < (k+1)*g.Group; j++ {
			m += logS[j]
		}
		m /= float64(g.Group)
		for j := k * g.Group; j < (k+1)*g.Group; j++ {
			logS[j] -= m
		}
	}
	best := make([]float64, ng)
	for k := range best {
		best[k] = math.Inf(1)
	}
	d := make([]float32, cols)
	cand := make([]float32, cols)
	for _, alpha := range diagAlphas {
		for j := range cand {
			cand[j] = float32(math.Exp(-alpha * logS[j]))
		}
		errs := make([]float64, ng)
		for _, src := range srcs {
			x := scaleCols(src.w, src.rows, cols, cand)
			if !storableF32(x) {
				errs = nil
				break
			}
			q, err := RTN(g, x, src.rows, cols)
			if err != nil {
				errs = nil
				break
			}
			for k, e := range groupErrs(x, q, cand) {
				errs[k] += src.wt * e
			}
		}
		for k, e := range errs {
			if e < best[k] {
				best[k] = e
				copy(d[k*g.Group:(k+1)*g.Group], cand[k*g.Group:(k+1)*g.Group])
			}
		}
	}
	return d
}

// scaleCols returns w·diag(d) for a row-major rows x cols matrix.
func scaleCols(w []float32, rows, cols int, d []float32) []float32 {
	out := make([]float32, len(w))
	parallelFor(rows, func(r int) {
		for j, v := range w[r*cols : (r+1)*cols] {
			out[r*cols+j] = v * d[j]
		}
	})
	return out
}

// storableF32 reports whether every weight is within the float16 scale range.
func storableF32(x []float32) bool {
	for _, v := range x {
		if !(v > -60000 && v < 60000) {
			return false
		}
	}
	return true
}

// groupErrs returns, per group of columns, ||(X - Q)·D^-1||^2 (d nil: D = I).
func groupErrs(x []float32, q *Quantized, d []float32) []float64 {
	ng := q.Cols / q.Group
	parts := make([][]float64, q.Rows)
	parallelFor(q.Rows, func(r int) {
		row := make([]float32, q.Cols)
		q.DequantizeRow(row, r)
		e := make([]float64, ng)
		for i, v := range row {
			diff := float64(x[r*q.Cols+i] - v)
			if d != nil {
				diff /= float64(d[i])
			}
			e[i/q.Group] += diff * diff
		}
		parts[r] = e
	})
	out := make([]float64, ng)
	for _, e := range parts {
		for k, v := range e {
			out[k] += v
		}
	}
	return out
}
