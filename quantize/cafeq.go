package quantize

import (
	"math"
	"math/rand/v2"

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
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		dst.wt[k] = src.wt
		// The smoothing temperature follows the row's own scale, so t is
		// a property of the shape of the group, not of its magnitude.
		dst.temp[k] = 1
		if ss > 0 {
			dst.temp[k] = s.tau / math.Sqrt(ss/float64(b))
		}
	}
}

func grow32(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func grow64(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// learnParams are the knobs of the per-block optimisation.
type learnParams struct {
	grid      Grid
	steps     int     // Adam steps per start
	lr        float64 // Adam step size on the entries of M
	tau       float64 // LogSumExp sharpness relative to the row RMS
	batch     int     // rows sampled per step
	evalRows  int     // rows used to score iterates exactly
	evalEvery int
	hadamard  bool // also start from a random-sign Hadamard block
	allStarts bool // run Adam from every start, not only the best
	seed      uint64
}

// blockResult is the chosen M_k, its inverse and the exact weighted error
// with it and with the identity on the scoring rows.
type blockResult struct {
	m        []float64
	inv      []float32
	err, id  float64
	identity bool
}

func toDense32(m *mat.Dense) []float32 {
	r, c := m.Dims()
	out := make([]float32, r*c)
	for i := range r {
		for j, v := range m.RawRowView(i) {
			out[i*c+j] = float32(v)
		}
	}
	return out
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
	grad := mat.NewDense(b, b, nil)

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
	for _, start := range starts {
		m := mat.DenseCopyOf(start)
		m1 := make([]float64, b*b)
		m2 := make([]float64, b*b)
		const beta1, beta2 = 0.9, 0.999
		for step := 1; step <= p.steps; step++ {
			if !batchAll {
				for i := range idx {
					idx[i] = rng.IntN(n)
				}
				bs.gather(&batch, idx)
			}
			loss, err := sur.eval(&batch, m, grad)
			if err != nil || loss == 0 || math.IsNaN(loss) {
				break
			}
			// Adam on log L: scale-free in the weights' magnitude.
			g := grad.RawMatrix().Data
			md := m.RawMatrix().Data
			c1 := 1 - math.Pow(beta1, float64(step))
			c2 := 1 - math.Pow(beta2, float64(step))
			for i, gi := range g {
				gi /= loss
				m1[i] = beta1*m1[i] + (1-beta1)*gi
				m2[i] = beta2*m2[i] + (1-beta2)*gi*gi
				md[i] -= p.lr * (m1[i] / c1) / (math.Sqrt(m2[i]/c2) + 1e-12)
			}
			if step%p.evalEvery == 0 || step == p.steps {
				score(m)
			}
		}
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
