package quantize

import (
	"fmt"
	"math"

	"github.com/cafeq/cafeq/kernels"
)

// chooseBlocks decides, per transform block, between M and the identity and
// stores each matrix as Q(W·M) with the blocks it chose:
//
//   - RTN of W and of W·M, with the exact error of each block;
//   - a block keeps M when it lowers the group's summed relative error; then,
//     while some matrix is above its own RTN error, the kept block that hurts
//     it most reverts to the identity (only with fallback: the Hadamard
//     baseline keeps its rotation);
//   - the requested refinements run on the chosen candidate, kept per group
//     (no transform) or per block (exact error through M^-1) only where they
//     lower the error.
//
// The report's errors are exact, over all rows. inv, when set, holds 1/d_j
// of a diagonal already folded into ms (see learnDiag): errors are measured
// through it, in the space of the original weights.
func chooseBlocks(ms []Matrix, srcs []source, grids []Grid, t *Transform, inv []float32, flags Refine, fallback bool) (*Result, error) {
	type cand struct {
		q    *Quantized
		errs []float64
	}
	// pick merges, per block, the candidate with the lower error into a.
	pick := func(a, b cand, blk int) {
		for k := range a.errs {
			if b.errs[k] < a.errs[k] {
				copyBlock(a.q, b.q, k, blk)
				a.errs[k] = b.errs[k]
			}
		}
	}
	blk := grids[0].Group // any group divides the columns; errors are summed
	if t != nil {
		blk = t.Block
	}
	ids := make([]cand, len(ms))
	rtnErr := make([]float64, len(ms))
	for i, m := range ms {
		q, err := RTN(grids[i], m.Data, m.Rows, m.Cols)
		if err != nil {
			return nil, fmt.Errorf("quantize: %q: %w", m.Name, err)
		}
		c := cand{q, plainBlockErr(m.Data, q, blk, inv)}
		for _, e := range c.errs {
			rtnErr[i] += e
		}
		ids[i] = c
	}
	final := ids
	xs := make([][]float32, len(ms)) // what each final matrix stores (W·M)
	for i, m := range ms {
		xs[i] = m.Data
	}
	if t != nil {
		trs := make([]cand, len(ms))
		for i, m := range ms {
			x := make([]float32, len(m.Data))
			applyRight(x, m.Data, m.Rows, m.Cols, t.Block, t.m)
			q, err := RTN(grids[i], x, m.Rows, m.Cols)
			if err != nil {
				return nil, fmt.Errorf("quantize: %q: %w", m.Name, err)
			}
			trs[i] = cand{q, blockErrors(x, q, t, inv)}
			xs[i] = x
		}
		// Keep a block when it lowers the group's summed relative error;
		// then, while some matrix is above its own RTN error, revert the
		// kept block that hurts it most. Every matrix ends at or below RTN.
		nb := t.Blocks()
		keep := make([]bool, nb)
		for k := range nb {
			var et, ei float64
			for i := range ms {
				et += srcs[i].wt * trs[i].errs[k]
				ei += srcs[i].wt * ids[i].errs[k]
			}
			keep[k] = et < ei || !fallback
		}
		for fallback {
			worst, wk := 0.0, -1
			for i := range ms {
				var over float64
				for k := range nb {
					if keep[k] {
						over += trs[i].errs[k] - ids[i].errs[k]
					}
				}
				if over <= 0 {
					continue
				}
				for k := range nb {
					if d := trs[i].errs[k] - ids[i].errs[k]; keep[k] && d > worst {
						worst, wk = d, k
					}
				}
			}
			if wk < 0 {
				break
			}
			keep[wk] = false
		}
		allID := true
		for k := range nb {
			if keep[k] {
				allID = false
				continue
			}
			t.setIdentity(k)
			for i, m := range ms {
				copyBlock(trs[i].q, ids[i].q, k, blk)
				trs[i].errs[k] = ids[i].errs[k]
				for r := range m.Rows {
					copy(xs[i][r*m.Cols+k*blk:r*m.Cols+(k+1)*blk], m.Data[r*m.Cols+k*blk:r*m.Cols+(k+1)*blk])
				}
			}
		}
		final = trs
		if allID {
			t = nil
			final, xs = ids, nil
			for _, m := range ms {
				xs = append(xs, m.Data)
			}
		}
	}
	// Refine only the chosen candidate: it is at or below RTN already, and
	// refinement is kept per group (no transform) or per block (exact
	// error through M^-1) only where it lowers the error.
	if flags != 0 {
		for i, m := range ms {
			c := final[i]
			if t == nil {
				var colW []float64
				if inv != nil {
					colW = make([]float64, len(inv))
					for j, v := range inv {
						colW[j] = float64(v) * float64(v)
					}
				}
				refineRows(c.q, xs[i], colW, flags)
				final[i].errs = plainBlockErr(m.Data, c.q, blk, inv)
				continue
			}
			r := cand{clone(c.q), nil}
			refineRows(r.q, xs[i], invRowNorms(t, inv), flags)
			r.errs = blockErrors(xs[i], r.q, t, inv)
			pick(c, r, blk)
		}
	}
	res := &Result{Transform: t}
	for i, m := range ms {
		var e float64
		for _, v := range final[i].errs {
			e += v
		}
		res.Q = append(res.Q, final[i].q)
		res.Report = append(res.Report, Entry{Name: m.Name, Grid: grids[i].String(),
			RelErr: math.Sqrt(e * srcs[i].wt), RTNRelErr: math.Sqrt(rtnErr[i] * srcs[i].wt)})
	}
	return res, nil
}

// plainBlockErr returns the squared error of q against x per block of b
// columns (no transform; each column's error times inv[j] when inv is set).
func plainBlockErr(x []float32, q *Quantized, b int, inv []float32) []float64 {
	out := make([]float64, q.Cols/b)
	row := make([]float32, q.Cols)
	for r := range q.Rows {
		q.DequantizeRow(row, r)
		for i, v := range row {
			d := float64(x[r*q.Cols+i] - v)
			if inv != nil {
				d *= float64(inv[i])
			}
			out[i/b] += d * d
		}
	}
	return out
}

// blockErrors returns, per transform block, ||(X - Q)_k · M_k^-1 · D_k^-1||_F^2
// where X = W·D·M is the matrix q stores and inv = 1/d (nil: D = I).
func blockErrors(x []float32, q *Quantized, t *Transform, inv []float32) []float64 {
	deq := q.Dequantize()
	for i := range deq {
		deq[i] = x[i] - deq[i]
	}
	b, cols := t.Block, q.Cols
	out := make([]float64, t.Blocks())
	parallelFor(t.Blocks(), func(k int) {
		e := make([]float32, q.Rows*b)
		gemm32(e, b, deq[k*b:], cols, q.Rows, b, t.Inv[k*b*b:(k+1)*b*b], b)
		var s float64
		for i, v := range e {
			f := float64(v)
			if inv != nil {
				f *= float64(inv[k*b+i%b])
			}
			s += f * f
		}
		out[k] = s
	})
	return out
}

// copyBlock copies columns [k*b, (k+1)*b) (levels and their groups) of src
// into dst; b is a multiple of the group.
func copyBlock(dst, src *Quantized, k, b int) {
	cols, ng, gpr := dst.Cols, b/dst.Group, dst.Cols/dst.Group
	if dst.Super { // b is a multiple of the superblock (Options.validate)
		nsb, spr := b/kernels.SuperBlock, cols/kernels.SuperBlock
		for r := range dst.Rows {
			si := r*spr + k*nsb
			copy(dst.Supers[si:si+nsb], src.Supers[si:si+nsb])
			if dst.SuperMins != nil {
				copy(dst.SuperMins[si:si+nsb], src.SuperMins[si:si+nsb])
			}
		}
	}
	for r := range dst.Rows {
		copy(dst.Levels[r*cols+k*b:r*cols+(k+1)*b], src.Levels[r*cols+k*b:r*cols+(k+1)*b])
		gi := r*gpr + k*ng
		copy(dst.Scales[gi:gi+ng], src.Scales[gi:gi+ng])
		if dst.Mins != nil {
			copy(dst.Mins[gi:gi+ng], src.Mins[gi:gi+ng])
		}
	}
}

func clone(q *Quantized) *Quantized {
	c := *q
	c.Levels = append([]uint8(nil), q.Levels...)
	c.Scales = append([]float32(nil), q.Scales...)
	if q.Mins != nil {
		c.Mins = append([]float32(nil), q.Mins...)
	}
	if q.Supers != nil {
		c.Supers = append([]float32(nil), q.Supers...)
	}
	if q.SuperMins != nil {
		c.SuperMins = append([]float32(nil), q.SuperMins...)
	}
	return &c
}

// invRowNorms returns, per input column i, ||(M^-1·D^-1)_{i,:}||^2: the
// rounding error on column i of W·D·M reaches W as e'_i·(M^-1 D^-1)_{i,:}
// (inv = 1/d, nil: D = I).
func invRowNorms(t *Transform, inv []float32) []float64 {
	b := t.Block
	out := make([]float64, t.Blocks()*b)
	for i := range out {
		var s float64
		for j, v := range t.Inv[i*b : (i+1)*b] {
			f := float64(v)
			if inv != nil {
				f *= float64(inv[(i/b)*b+j])
			}
			s += f * f
		}
		out[i] = s
	}
	return out
}
