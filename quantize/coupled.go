package quantize

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"
)

// Coupled V/O transforms.
//
// PyTorch layouts: v_proj is [kvHeads*hd, d] and o_proj is [d, heads*hd].
// For KV head h let B = rows h*hd..(h+1)*hd of v_proj (hd x d), so
// v_h = B x per token, and for each query head q of its group (HF repeat_kv:
// q / (heads/kvHeads) == h) let A_q = columns q*hd..(q+1)*hd of o_proj
// (d x hd). The layer computes o_q = sum_j a_qj v_h,j and y = sum_q A_q o_q.
// Attention mixes tokens (the a_qj are scalars), never the hd axis, so for
// any invertible M (hd x hd)
//
//	B' = M^-1 B,   A'_q = A_q M   =>   A'_q o'_q = A_q M M^-1 o_q = A_q o_q
//
// exactly. Both are folded into the stored weights: zero inference cost.
// The quantization groups of B' run along d, those of A'_q along hd (its
// columns inside o_proj), so both stay on the ordinary grids.
//
// The objective is the paired error sum_q ||A_q B - Q(A'_q) Q(B')||_F^2,
// computed exactly through hd x hd Gram matrices (voExact), descended through
// a range pseudo-loss (voSurrogate).

// voHead is the data of one KV head: A_q (d x hd) per query head, B (hd x d).
type voHead struct {
	hd, d int
	a     [][]float32
	b     []float32
}

// voExact holds ||A B||_F^2 summed over the query heads of one KV head,
// the denominator of the relative paired error.
type voExact struct {
	norm float64
}

func newVOExact(x, y *mat.Dense) *voExact {
	var xtx, yyt mat.Dense
	xtx.Mul(x.T(), x)
	yyt.Mul(y, y.T())
	return &voExact{norm: traceProd(&xtx, &yyt)}
}

// err returns the exact squared paired error ||X Y - X̂ Ŷ||_F^2, where
// (x, y) is the unquantized pair in the same basis as (xh, yh) (X = the
// query heads' A'_q stacked, Y = B'; X Y = the original products). With
// ΔX = X - X̂ and ΔY = Y - Ŷ, X Y - X̂ Ŷ = ΔX Y + X̂ ΔY, so
//
//	||.||^2 = tr(ΔXᵀΔX·YYᵀ) + 2 tr(ΔXᵀX̂·ΔYYᵀ) + tr(X̂ᵀX̂·ΔYΔYᵀ)
//
// from hd x hd Gram matrices, never forming the d x d products. Every term
// is of the size of the error itself (no cancellation against ||XY||^2),
// so float32 Grams are accurate.
func (e *voExact) err(x, y, xh, yh *mat.Dense) float64 {
	nx, hd := x.Dims()
	_, d := y.Dims()
	dx, x32 := make([]float32, nx*hd), make([]float32, nx*hd)
	for i, v := range xh.RawMatrix().Data {
		x32[i] = float32(v)
		dx[i] = float32(x.RawMatrix().Data[i] - v)
	}
	dy, y32 := make([]float32, hd*d), make([]float32, hd*d)
	for i, v := range yh.RawMatrix().Data {
		y32[i] = float32(y.RawMatrix().Data[i])
		dy[i] = float32(y.RawMatrix().Data[i] - v)
	}
	gram := func(a, b []float32, rows, cols int, trans bool) []float32 {
		out := make([]float32, hd*hd)
		A := blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: a}
		B := blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: b}
		C := blas32.General{Rows: hd, Cols: hd, Stride: hd, Data: out}
		if trans { // AᵀB, rows x hd inputs
			blas32.Gemm(blas.Trans, blas.NoTrans, 1, A, B, 0, C)
		} else { // ABᵀ, hd x cols inputs
			blas32.Gemm(blas.NoTrans, blas.Trans, 1, A, B, 0, C)
		}
		return out
	}
	tr := func(p, q []float32) float64 {
		var s float64
		for i := range hd {
			for j := range hd {
				s += float64(p[i*hd+j]) * float64(q[j*hd+i])
			}
		}
		return s
	}
	v := tr(gram(dx, dx, nx, hd, true), gram(y32, y32, hd, d, false)) +
		2*tr(gram(dx, x32, nx, hd, true), gram(dy, y32, hd, d, false)) +
		tr(gram(x32, x32, nx, hd, true), gram(dy, dy, hd, d, false))
	return math.Max(v, 0)
}

// voSurrogate is the pseudo-loss of a coupled transform. With independent
// rounding errors E_A (variance kappa*R^2 per weight of A'_q, R its group
// range) and E_B, the paired error is to first order E_A B' + A' E_B, whose
// expected square is
//
//	L = kappa*sum_q sum_{r,j} R_A(q,r,j)^2 * bn_j + kappa*g*sum_i an_i * sum_c R_B(i,c)^2
//
// with bn_j = sum_{i in group j} ||B'_i,:||^2 and an_i = sum_q ||A'_q[:,i]||^2.
// Rows of A and column groups of B are sampled; the sampling scales both
// terms by the same factor, which Adam on log L ignores.
type voSurrogate struct {
	grid  Grid
	hd    int
	a     [][]float32 // sampled rows of A_q (na x hd)
	b     []float32   // sampled column groups of B (hd x nb)
	nb    int
	tempA [][]float64
	tempB []float64
}

// newVOSurrogate samples up to maxRows rows of each A_q and maxCols columns
// (whole groups) of B, and fixes the smoothing temperatures from the start.
func newVOSurrogate(h *voHead, g Grid, tau float64, maxRows, maxCols int, rng *rand.Rand) *voSurrogate {
	hd, d := h.hd, h.d
	s := &voSurrogate{grid: g, hd: hd}
	na := min(d, maxRows)
	for _, a := range h.a {
		rows := rng.Perm(d)[:na]
		sa := make([]float32, na*hd)
		ta := make([]float64, na)
		for k, r := range rows {
			copy(sa[k*hd:(k+1)*hd], a[r*hd:(r+1)*hd])
			ta[k] = rowTemp(sa[k*hd:(k+1)*hd], tau)
		}
		s.a = append(s.a, sa)
		s.tempA = append(s.tempA, ta)
	}
	ng := d / g.Group
	nsel := min(ng, max(1, maxCols/g.Group))
	groups := rng.Perm(ng)[:nsel]
	s.nb = nsel * g.Group
	s.b = make([]float32, hd*s.nb)
	for i := range hd {
		for k, c := range groups {
			copy(s.b[i*s.nb+k*g.Group:i*s.nb+(k+1)*g.Group], h.b[i*d+c*g.Group:i*d+(c+1)*g.Group])
		}
	}
	s.tempB = make([]float64, hd)
	for i := range hd {
		s.tempB[i] = rowTemp(h.b[i*d:(i+1)*d], tau)
	}
	return s
}

func (s *voSurrogate) eval(m *mat.Dense, grad *mat.Dense) (float64, error) {
	hd, g, nb := s.hd, s.grid.Group, s.nb
	inv, err := invert(m)
	if err != nil {
		return math.Inf(1), err
	}
	m32, n32 := toDense32(m), toDense32(inv)
	kappa := s.grid.kappa()
	// Forward: A'_q = A_q M, B' = N B.
	ap := make([][]float32, len(s.a))
	for q, a := range s.a {
		na := len(a) / hd
		ap[q] = make([]float32, na*hd)
		gemm32(ap[q], hd, a, hd, na, hd, m32, hd)
	}
	bp := make([]float32, hd*nb)
	gemm32(bp, nb, n32, hd, hd, hd, s.b, nb)

	ngA := hd / g
	// Ranges of A' (groups along hd) and their derivatives.
	dA := make([][]float32, len(ap))
	rA := make([][]float64, len(ap))
	pa := make([]float64, ngA) // kappa * sum R_A^2 per group j
	an := make([]float64, hd)
	for q, x := range ap {
		na := len(x) / hd
		dA[q] = make([]float32, na*hd)
		rA[q] = make([]float64, na*ngA)
		for r := range na {
			for j := range ngA {
				v := x[r*hd+j*g : r*hd+(j+1)*g]
				rr := smoothRange(v, dA[q][r*hd+j*g:r*hd+(j+1)*g], s.tempA[q][r], s.grid.Asym)
				rA[q][r*ngA+j] = rr
				pa[j] += kappa * rr * rr
			}
			for i, v := range x[r*hd : (r+1)*hd] {
				an[i] += float64(v) * float64(v)
			}
		}
	}
	ngB := nb / g
	dB := make([]float32, hd*nb)
	rB := make([]float64, hd*ngB)
	pb := make([]float64, hd) // kappa * g * sum_c R_B(i,c)^2
	bn := make([]float64, ngA)
	for i := range hd {
		for c := range ngB {
			v := bp[i*nb+c*g : i*nb+(c+1)*g]
			rr := smoothRange(v, dB[i*nb+c*g:i*nb+(c+1)*g], s.tempB[i], s.grid.Asym)
			rB[i*ngB+c] = rr
			pb[i] += kappa * float64(g) * rr * rr
		}
		for _, v := range bp[i*nb : (i+1)*nb] {
			bn[i/g] += float64(v) * float64(v)
		}
	}
	var loss float64
	for j := range ngA {
		loss += pa[j] * bn[j]
	}
	for i := range hd {
		loss += an[i] * pb[i]
	}
	if grad == nil {
		return loss, nil
	}
	gm := make([]float32, hd*hd)
	GM := blas32.General{Rows: hd, Cols: hd, Stride: hd, Data: gm}
	for q, x := range ap {
		na := len(x) / hd
		ga := dA[q]
		for r := range na {
			for i := range hd {
				j := i / g
				ga[r*hd+i] = float32(2*kappa*rA[q][r*ngA+j]*bn[j])*ga[r*hd+i] + float32(2*pb[i])*x[r*hd+i]
			}
		}
		// dL/dM += A_qᵀ dL/dA'_q
		A := blas32.General{Rows: na, Cols: hd, Stride: hd, Data: s.a[q]}
		G := blas32.General{Rows: na, Cols: hd, Stride: hd, Data: ga}
		blas32.Gemm(blas.Trans, blas.NoTrans, 1, A, G, 1, GM)
	}
	for i := range hd {
		for c := range nb {
			k := i*nb + c
			dB[k] = float32(2*kappa*float64(g)*an[i]*rB[i*ngB+c/g])*dB[k] + float32(2*pa[i/g])*bp[k]
		}
	}
	// dL/dN = dL/dB' Bᵀ; dL/dM -= Nᵀ (dL/dN) Nᵀ.
	gn := make([]float32, hd*hd)
	GN := blas32.General{Rows: hd, Cols: hd, Stride: hd, Data: gn}
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: hd, Cols: nb, Stride: nb, Data: dB},
		blas32.General{Rows: hd, Cols: nb, Stride: nb, Data: s.b}, 0, GN)
	N := blas32.General{Rows: hd, Cols: hd, Stride: hd, Data: n32}
	tmp := make([]float32, hd*hd)
	T := blas32.General{Rows: hd, Cols: hd, Stride: hd, Data: tmp}
	blas32.Gemm(blas.Trans, blas.NoTrans, 1, N, GN, 0, T)
	blas32.Gemm(blas.NoTrans, blas.Trans, -1, T, N, 1, GM)
	gd := grad.RawMatrix().Data
	for i, v := range gm {
		gd[i] = float64(v)
	}
	return loss, nil
}

// voCand is a quantized V/O pair for one KV head in the transformed basis.
type voCand struct {
	qa  []*Quantized // per query head, d x hd
	qb  *Quantized   // hd x d
	err float64      // exact squared paired error
}

// quantizePair folds m into the head (A_q M, M^-1 B), quantizes both by RTN
// and scores the pair exactly against the original product.
func quantizePair(h *voHead, g Grid, m *mat.Dense, ex *voExact) (*voCand, *mat.Dense, *mat.Dense, error) {
	hd, d := h.hd, h.d
	inv, err := invert(m)
	if err != nil {
		return nil, nil, nil, err
	}
	m32, n32 := toDense32(m), toDense32(inv)
	c := &voCand{}
	xh := mat.NewDense(len(h.a)*d, hd, nil)
	x := mat.NewDense(len(h.a)*d, hd, nil)
	ap := make([]float32, d*hd)
	for q, a := range h.a {
		gemm32(ap, hd, a, hd, d, hd, m32, hd)
		qa, err := RTN(g, ap, d, hd)
		if err != nil {
			return nil, nil, nil, err
		}
		c.qa = append(c.qa, qa)
		for i, v := range qa.Dequantize() {
			xh.RawMatrix().Data[q*d*hd+i] = float64(v)
		}
		for i, v := range ap {
			x.RawMatrix().Data[q*d*hd+i] = float64(v)
		}
	}
	bp := make([]float32, hd*d)
	gemm32(bp, d, n32, hd, hd, hd, h.b, d)
	qb, err := RTN(g, bp, hd, d)
	if err != nil {
		return nil, nil, nil, err
	}
	c.qb = qb
	y := dense64(hd, d, bp)
	c.err = ex.err(x, y, xh, dense64(hd, d, qb.Dequantize()))
	return c, x, y, nil
}

// learnVO fits M for one KV head: Adam on the pseudo-loss from the identity
// and a random-sign Hadamard (the better start only, unless allStarts),
// keeping the iterate with the lowest exact paired error; the identity wins
// ties. It returns M (hd x hd).
func learnVO(h *voHead, ex *voExact, p learnParams, steps int, seed uint64) *mat.Dense {
	hd := h.hd
	rng := rand.New(rand.NewPCG(seed, 0x564f))
	eye := mat.NewDense(hd, hd, nil)
	for i := range hd {
		eye.Set(i, i, 1)
	}
	best := mat.DenseCopyOf(eye)
	c, _, _, err := quantizePair(h, p.grid, eye, ex)
	if err != nil {
		return best
	}
	bestErr := c.err
	score := func(m *mat.Dense) float64 {
		c, _, _, err := quantizePair(h, p.grid, m, ex)
		if err != nil {
			return math.Inf(1)
		}
		if c.err < bestErr {
			bestErr = c.err
			best = mat.DenseCopyOf(m)
		}
		return c.err
	}
	starts := []*mat.Dense{eye}
	startErr := []float64{bestErr}
	if p.hadamard && hd&(hd-1) == 0 {
		hm := mat.NewDense(hd, hd, hadamardBlock(hd, rng))
		starts = append(starts, hm)
		startErr = append(startErr, score(hm))
	}
	if !p.allStarts && len(starts) > 1 && startErr[1] < startErr[0] {
		starts = starts[1:]
	} else if !p.allStarts {
		starts = starts[:1]
	}
	sur := newVOSurrogate(h, p.grid, p.tau, p.batch, 16*p.grid.Group, rng)
	opt := adam{lr: p.lr, steps: steps, evalEvery: p.evalEvery}
	for _, st := range starts {
		opt.descend(st, sur.eval, func(m *mat.Dense) { score(m) })
	}
	return best
}
