package quantize

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"
)

// source is one matrix that reads the transformed input; wt = 1/||W||_F^2
// so a shared transform minimises the sum of relative squared errors.
type source struct {
	w          []float32
	rows, cols int
	wt         float64
}

// blockSet addresses the rows of every source restricted to block kb.
type blockSet struct {
	srcs []source
	b    int
	kb   int
	offs []int // offs[i]: first global row of srcs[i]; offs[len] = total
	tau  float64
}

func newBlockSet(srcs []source, b, kb int, tau float64) *blockSet {
	s := &blockSet{srcs: srcs, b: b, kb: kb, tau: tau}
	n := 0
	for _, src := range srcs {
		s.offs = append(s.offs, n)
		n += src.rows
	}
	s.offs = append(s.offs, n)
	return s
}

func (s *blockSet) total() int { return s.offs[len(s.offs)-1] }

// gather copies the given global rows (or all rows when idx is nil) into dst.
func (s *blockSet) gather(dst *rows, idx []int) {
	n := len(idx)
	if idx == nil {
		n = s.total()
	}
	b := s.b
	dst.b = b
	dst.x = grow32(dst.x, n*b)
	dst.wt = grow64(dst.wt, n)
	dst.temp = grow64(dst.temp, n)
	si := 0
	for k := range n {
		g := k
		if idx != nil {
			g = idx[k]
		}
		for g < s.offs[si] || g >= s.offs[si+1] {
			si = (si + 1) % len(s.srcs)
		}
		src := s.srcs[si]
		r := g - s.offs[si]
		x := dst.x[k*b : (k+1)*b]
		copy(x, src.w[r*src.cols+s.kb*b:r*src.cols+(s.kb+1)*b])
		dst.wt[k] = src.wt
		dst.temp[k] = rowTemp(x, s.tau)
	}
}

// rows is a set of weight rows restricted to one block of b input columns:
// X (n x b, row-major), a weight per row (1/||W_i||^2 of the matrix it came
// from, so matrices sharing a transform count relatively) and an inverse
// temperature per row for the LogSumExp smoothing.
type rows struct {
	b    int
	x    []float32
	wt   []float64
	temp []float64
}

func (r *rows) n() int { return len(r.wt) }

// surrogate is the differentiable stand-in for the per-block error
//
//	L(M) = kappa * sum_j S_j * c_j,  S_j = sum_r wt_r * R_rj(X·M)^2,
//	c_j = sum_{i in group j} ||(M^-1)_{i,:}||^2,
//
// where R_rj is the LogSumExp-smoothed range (asym: smax-smin; sym: smooth
// absmax) of row r's group j of X·M. It is the expected squared error of
// independent rounding errors e' (variance kappa*R^2 per weight) mapped back
// through M^-1: E||e'·M^-1||^2 = sum_i var(e'_i)·||(M^-1)_{i,:}||^2. With one
// group per block it is the design's ||M^-1||_F^2 · sum R^2 (docs/QUANTIZATION.md,
// "How CafeQ is built"); with several it
// weights each group by its own rows of M^-1. Scaling M cannot cheat it: the
// ranges grow by a, c_j shrinks by a^2.
type surrogate struct {
	grid           Grid
	b              int
	xp             []float32 // X·M
	gp             []float32 // dL/d(X·M)
	m32            []float32
	gm32           []float32
	n32, dn32, t32 []float32
}

func newSurrogate(g Grid, b, n int) *surrogate {
	return &surrogate{grid: g, b: b, xp: make([]float32, n*b), gp: make([]float32, n*b),
		m32: make([]float32, b*b), gm32: make([]float32, b*b)}
}

// eval returns L(M) and, when grad is non-nil, dL/dM into grad (b x b).
func (s *surrogate) eval(x *rows, m *mat.Dense, grad *mat.Dense) (float64, error) {
	b, g := s.b, s.grid.Group
	n := x.n()
	inv, err := invert(m)
	if err != nil {
		return math.Inf(1), err
	}
	for i := range b {
		for j := range b {
			s.m32[i*b+j] = float32(m.At(i, j))
		}
	}
	gemm32(s.xp, b, x.x, b, n, b, s.m32, b)
	ng := b / g
	// c_j: squared norms of the rows of M^-1 in group j.
	c := make([]float64, ng)
	for i := range b {
		r := inv.RawRowView(i)
		c[i/g] += floats64Dot(r, r)
	}
	kappa := s.grid.kappa()
	sj := make([]float64, ng)
	ranges := make([]float64, ng)
	for r := range n {
		for j := range ng {
			v := s.xp[r*b+j*g : r*b+(j+1)*g]
			d := s.gp[r*b+j*g : r*b+(j+1)*g]
			rr := smoothRange(v, d, x.temp[r], s.grid.Asym)
			ranges[j] = rr
			sj[j] += x.wt[r] * rr * rr
		}
		if grad != nil {
			for j := range ng {
				f := float32(2 * kappa * x.wt[r] * ranges[j] * c[j])
				d := s.gp[r*b+j*g : r*b+(j+1)*g]
				for i := range d {
					d[i] *= f
				}
			}
		}
	}
	var loss float64
	for j := range ng {
		loss += kappa * sj[j] * c[j]
	}
	if grad == nil {
		return loss, nil
	}
	// Range part: X^T · dL/d(XM).
	X := blas32.General{Rows: n, Cols: b, Stride: b, Data: x.x[:n*b]}
	G := blas32.General{Rows: n, Cols: b, Stride: b, Data: s.gp[:n*b]}
	GM := blas32.General{Rows: b, Cols: b, Stride: b, Data: s.gm32}
	blas32.Gemm(blas.Trans, blas.NoTrans, 1, X, G, 0, GM)
	// Conditioning part: d/dM sum_i D_i ||(M^-1)_i||^2 = -2 N^T D N N^T,
	// in float32 like the range part (it is only a descent direction).
	b2 := b * b
	n32 := grow32(s.n32, b2)
	dn32 := grow32(s.dn32, b2)
	t32 := grow32(s.t32, b2)
	s.n32, s.dn32, s.t32 = n32, dn32, t32
	for i := range b {
		row := inv.RawRowView(i)
		f := kappa * sj[i/g]
		for k, v := range row {
			n32[i*b+k] = float32(v)
			dn32[i*b+k] = float32(v * f)
		}
	}
	N := blas32.General{Rows: b, Cols: b, Stride: b, Data: n32}
	DN := blas32.General{Rows: b, Cols: b, Stride: b, Data: dn32}
	T := blas32.General{Rows: b, Cols: b, Stride: b, Data: t32}
	blas32.Gemm(blas.Trans, blas.NoTrans, 1, N, DN, 0, T)
	blas32.Gemm(blas.NoTrans, blas.Trans, -2, T, N, 1, GM)
	gd := grad.RawMatrix().Data
	for i, v := range s.gm32 {
		gd[i] = float64(v)
	}
	return loss, nil
}

// exactErr returns sum_r wt_r ||(x_r M - Q(x_r M)) M^-1||^2 over the rows,
// the exact weighted error of this block under the grid. m32 and inv32 are
// M and M^-1 (b x b, row-major float32); m32 nil means identity.
func exactErr(g Grid, x *rows, m32, inv32 []float32, xp, e []float32) float64 {
	b, n := x.b, x.n()
	if m32 == nil {
		copy(xp, x.x[:n*b])
	} else {
		gemm32(xp, b, x.x, b, n, b, m32, b)
	}
	lv := make([]uint8, b)
	sc := make([]float32, b/g.Group)
	var mn []float32
	if g.Asym {
		mn = make([]float32, b/g.Group)
	}
	var buf []byte
	for r := range n {
		row := xp[r*b : (r+1)*b]
		er := e[r*b : (r+1)*b]
		buf = g.quantizeRowRTN(lv, sc, mn, row, buf)
		for i := range b {
			var m float32
			if mn != nil {
				m = mn[i/g.Group]
			}
			er[i] = row[i] - g.value(lv[i], sc[i/g.Group], m)
		}
	}
	src := e
	if inv32 != nil {
		gemm32(xp, b, e, b, n, b, inv32, b)
		src = xp
	}
	var tot float64
	for r := range n {
		var s float64
		for _, v := range src[r*b : (r+1)*b] {
			s += float64(v) * float64(v)
		}
		tot += x.wt[r] * s
	}
	return tot
}

// blockResult is the chosen M_k, its inverse and the exact weighted error
// with it and with the identity on the scoring rows.
type blockResult struct {
	m        []float64
	inv      []float32
	err, id  float64
	identity bool
}

// learnBlock fits M_k for one block: Adam on the surrogate from the identity
// and (optionally) a random-sign Hadamard start, scoring iterates by the exact
// error on a fixed row sample (all rows when there are at most evalRows).
// The caller confirms the winner against the identity on every row.
func learnBlock(bs *blockSet, p learnParams) blockResult {
	b := bs.b
	n := bs.total()
	rng := rand.New(rand.NewPCG(p.seed, uint64(bs.kb)+1))

	var eval rows
	full := n <= p.evalRows
	if full {
		bs.gather(&eval, nil)
	} else {
		idx := rng.Perm(n)[:p.evalRows]
		bs.gather(&eval, idx)
	}
	ne := eval.n()
	xp := make([]float32, max(ne, p.batch)*b)
	e := make([]float32, max(ne, p.batch)*b)

	bestErr := exactErr(p.grid, &eval, nil, nil, xp, e)
	idErr := bestErr
	var bestM []float64
	var bestInv []float32

	var starts []*mat.Dense
	eye := mat.NewDense(b, b, nil)
	for i := range b {
		eye.Set(i, i, 1)
	}
	starts = append(starts, eye)
	if p.hadamard && b&(b-1) == 0 {
		starts = append(starts, mat.NewDense(b, b, hadamardBlock(b, rng)))
	}

	var batch rows
	batchAll := n <= p.batch
	if batchAll {
		bs.gather(&batch, nil)
	}
	idx := make([]int, p.batch)
	sur := newSurrogate(p.grid, b, p.batch)

	score := func(m *mat.Dense) {
		inv, err := invert(m)
		if err != nil {
			return
		}
		m32, inv32 := toDense32(m), toDense32(inv)
		if v := exactErr(p.grid, &eval, m32, inv32, xp, e); v < bestErr {
			bestErr = v
			bestM = append(bestM[:0], m.RawMatrix().Data...)
			bestInv = inv32
		}
	}

	// Score every start exactly; unless asked to run Adam from each, run it
	// only from the best one (the Hadamard start usually wins when the
	// block has outlier columns, the identity otherwise).
	startErr := []float64{idErr}
	for _, st := range starts[1:] {
		prev := bestErr
		score(st)
		startErr = append(startErr, bestErr)
		if bestErr == prev {
			startErr[len(startErr)-1] = math.Inf(1)
		}
	}
	if !p.allStarts && len(starts) > 1 {
		best := 0
		for i, e := range startErr {
			if e < startErr[best] {
				best = i
			}
		}
		starts = starts[best : best+1]
	}
	opt := adam{lr: p.lr, steps: p.steps, evalEvery: p.evalEvery}
	loss := func(m, grad *mat.Dense) (float64, error) {
		if !batchAll {
			for i := range idx {
				idx[i] = rng.IntN(n)
			}
			bs.gather(&batch, idx)
		}
		return sur.eval(&batch, m, grad)
	}
	for _, start := range starts {
		opt.descend(start, loss, score)
	}

	res := blockResult{err: bestErr, id: idErr, identity: bestM == nil}
	if res.identity {
		res.m = eye.RawMatrix().Data
		res.inv = toDense32(eye)
		return res
	}
	res.m, res.inv = bestM, bestInv
	return res
}

// learnTransform fits one block-diagonal M shared by srcs (same cols),
// blocks in parallel.
func learnTransform(srcs []source, b int, p learnParams) *Transform {
	cols := srcs[0].cols
	k := cols / b
	res := make([]blockResult, k)
	parallelFor(k, func(kb int) {
		res[kb] = learnBlock(newBlockSet(srcs, b, kb, p.tau), p)
	})
	t := &Transform{Block: b}
	for _, r := range res {
		t.m = append(t.m, r.m...)
		t.Inv = append(t.Inv, r.inv...)
	}
	return t
}
