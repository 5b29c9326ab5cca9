package quantize

import "gonum.org/v1/gonum/mat"

// Data-free alternating rounding of a V/O pair (see docs/QUANTIZATION.md,
// "How CafeQ is built").
//
// Let X = [A'_q stacked] (nq*d x hd) and Y = B' (hd x d) be the exact
// transformed pair, T = X Y the product to keep. Starting from RTN of both:
//
//  1. fix Ŷ and solve X* = argmin ||T - X Ŷ|| = X (Y Ŷᵀ)(Ŷ Ŷᵀ)^-1 (an hd x hd
//     solve: the pseudo-inverse of Ŷ instead of a calibration Hessian);
//  2. round X*, to nearest or GPTQ-style with H = Ŷ Ŷᵀ: the partner matrix
//     plays the calibration data, ||(X* - X̂) Ŷ||^2 = tr((X*-X̂) H (X*-X̂)ᵀ);
//  3. swap: Y* = (X̂ᵀX̂)^-1 (X̂ᵀ X) Y, rounded with H = X̂ᵀX̂ over Y's rows;
//
// and repeat, keeping the iterate with the lowest exact product error.

// alternate runs iters rounds of alternating rounding on the exact pair
// (x, y) from the candidate start and returns the best candidate by exact
// paired error (start itself if nothing beats it).
func alternate(x, y *mat.Dense, start *voCand, g Grid, iters int, gptq bool, ex *voExact) *voCand {
	nq := len(start.qa)
	d, hd := start.qa[0].Rows, start.qa[0].Cols
	best := start
	xh := stackDeq(start.qa)
	yh := dense64(hd, d, start.qb.Dequantize())
	cur := &voCand{qa: start.qa, qb: start.qb}
	for range iters {
		// X step.
		var h, c, s, xs mat.Dense
		h.Mul(yh, yh.T())
		c.Mul(y, yh.T())
		if err := s.Solve(damped(&h, 1e-6), c.T()); err != nil {
			break
		}
		// X* = x · (c H^-1) = x · sᵀ (H symmetric).
		xs.Mul(x, s.T())
		raw := xs.RawMatrix().Data
		if !storable(raw) {
			break
		}
		var qa []*Quantized
		if u := invCholUpper(&h); gptq && u != nil {
			for q := range nq {
				qa = append(qa, gptqCols(append([]float64(nil), raw[q*d*hd:(q+1)*d*hd]...), d, hd, u, g))
			}
		} else {
			for q := range nq {
				qa = append(qa, rtn64(raw[q*d*hd:(q+1)*d*hd], d, hd, g))
			}
		}
		cur = &voCand{qa: qa, qb: cur.qb}
		xh = stackDeq(qa)
		if cur.err = ex.err(x, y, xh, yh); cur.err < best.err {
			best = cur
		}
		// Y step.
		var h2, c2, ys mat.Dense
		h2.Mul(xh.T(), xh)
		c2.Mul(xh.T(), x)
		var sol mat.Dense
		if err := sol.Solve(damped(&h2, 1e-6), &c2); err != nil {
			break
		}
		ys.Mul(&sol, y)
		if !storable(ys.RawMatrix().Data) {
			break
		}
		var qb *Quantized
		if u := invCholUpper(&h2); gptq && u != nil {
			qb = gptqRows(append([]float64(nil), ys.RawMatrix().Data...), hd, d, u, g)
		} else {
			qb = rtn64(ys.RawMatrix().Data, hd, d, g)
		}
		cur = &voCand{qa: qa, qb: qb}
		yh = dense64(hd, d, qb.Dequantize())
		if cur.err = ex.err(x, y, xh, yh); cur.err < best.err {
			best = cur
		}
	}
	return best
}

// damped returns H + lambda*I with lambda = frac times H's mean diagonal,
// so that a rank-deficient partner still gives a solve.
func damped(h *mat.Dense, frac float64) *mat.Dense {
	n, _ := h.Dims()
	var tr float64
	for i := range n {
		tr += h.At(i, i)
	}
	lambda := frac*tr/float64(n) + 1e-30
	out := mat.DenseCopyOf(h)
	for i := range n {
		out.Set(i, i, out.At(i, i)+lambda)
	}
	return out
}

// invCholUpper returns U with (H+damp)^-1 = UᵀU, GPTQ's error-feedback
// factor (1% damping, as GPTQ), or nil when H is not positive definite.
func invCholUpper(h *mat.Dense) *mat.TriDense {
	n, _ := h.Dims()
	hd := damped(h, 0.01)
	var ch mat.Cholesky
	if !ch.Factorize(symOf(hd, n)) {
		return nil
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return nil
	}
	var ch2 mat.Cholesky
	if !ch2.Factorize(&inv) {
		return nil
	}
	var u mat.TriDense
	ch2.UTo(&u)
	return &u
}

// gptqCols rounds w (rows x cols, float64 row-major, overwritten) column by
// column with error feedback through U (cols x cols). Each group's scale and
// min are the min-max grid of its (already updated) weights when the first
// column of the group (super grids: of the superblock) is reached.
func gptqCols(w []float64, rows, cols int, u *mat.TriDense, g Grid) *Quantized {
	q := newQuantized(g, rows, cols)
	gpr := cols / g.Group
	sb := g.scaleBlock()
	ng := sb / g.Group
	tmp := make([]float32, sb)
	lv := make([]uint8, sb)
	sc := make([]float32, ng)
	mn := make([]float32, ng)
	sup, supMin := make([]float32, 1), make([]float32, 1)
	var buf []byte
	one := make([]uint8, 1)
	val := make([]float32, 1)
	for i := range cols {
		if i%sb == 0 {
			for r := range rows {
				for k := range sb {
					tmp[k] = float32(w[r*cols+i+k])
				}
				var mins []float32
				if g.Asym {
					mins = mn
				}
				buf = g.quantizeRowRTNSuper(lv, sc, mins, sup, supMin, tmp, buf)
				copy(q.Scales[r*gpr+i/g.Group:], sc)
				if g.Asym {
					copy(q.Mins[r*gpr+i/g.Group:], mn)
				}
				if g.Super {
					q.RowSupers(r)[i/sb] = sup[0]
					if g.Asym {
						q.RowSuperMins(r)[i/sb] = supMin[0]
					}
				}
			}
		}
		d := u.At(i, i)
		urow := make([]float64, cols-i-1)
		for k := range urow {
			urow[k] = u.At(i, i+1+k)
		}
		for r := range rows {
			s, m := q.Scales[r*gpr+i/g.Group], q.minAt(r*gpr+i/g.Group)
			v := float32(w[r*cols+i])
			val[0] = v
			g.levelsFor(one, val, s, m)
			q.Levels[r*cols+i] = one[0]
			e := (float64(v) - float64(g.value(one[0], s, m))) / d
			row := w[r*cols+i+1 : (r+1)*cols]
			for k, uk := range urow {
				row[k] -= e * uk
			}
		}
	}
	return q
}

// gptqRows rounds w (rows x cols, overwritten) row by row, each row with its
// own min-max groups along cols, feeding the error of row i into the later
// rows through U (rows x rows).
func gptqRows(w []float64, rows, cols int, u *mat.TriDense, g Grid) *Quantized {
	q := newQuantized(g, rows, cols)
	x := make([]float32, cols)
	deq := make([]float32, cols)
	e := make([]float64, cols)
	var buf []byte
	for i := range rows {
		for c := range cols {
			x[c] = float32(w[i*cols+c])
		}
		buf = g.quantizeRowRTNSuper(q.RowLevels(i), q.RowScales(i), q.RowMins(i), q.RowSupers(i), q.RowSuperMins(i), x, buf)
		q.DequantizeRow(deq, i)
		d := u.At(i, i)
		for c := range cols {
			e[c] = (float64(x[c]) - float64(deq[c])) / d
		}
		parallelFor(rows-i-1, func(kk int) {
			k := i + 1 + kk
			f := u.At(i, k)
			row := w[k*cols : (k+1)*cols]
			for c, ec := range e {
				row[c] -= f * ec
			}
		})
	}
	return q
}

// stackDeq returns the dequantized X̂ (the query heads' A'_q stacked).
func stackDeq(qa []*Quantized) *mat.Dense {
	rows, cols := qa[0].Rows, qa[0].Cols
	out := mat.NewDense(len(qa)*rows, cols, nil)
	for q, a := range qa {
		for i, v := range a.Dequantize() {
			out.RawMatrix().Data[q*rows*cols+i] = float64(v)
		}
	}
	return out
}

// rtn64 rounds a float64 matrix to nearest on the grid.
func rtn64(w []float64, rows, cols int, g Grid) *Quantized {
	x := make([]float32, len(w))
	for i, v := range w {
		x[i] = float32(v)
	}
	q, _ := RTN(g, x, rows, cols) // storable: checked by the caller
	return q
}

// storable reports whether every value is finite and within the float16
// scale range, i.e. a least-squares solve did not blow up.
func storable(w []float64) bool {
	for _, v := range w {
		if !(v > -60000 && v < 60000) {
			return false
		}
	}
	return true
}
