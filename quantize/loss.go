package quantize

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"
)

// RelError is the exact proxy loss ||W - Q(W·M)·M^-1||_F / ||W||_F of a
// quantized matrix q (t nil: no transform), computed in float64.
func RelError(w []float32, q *Quantized, t *Transform) (float64, error) {
	if len(w) != q.Rows*q.Cols {
		return 0, fmt.Errorf("quantize: relerror: %d weights for a %dx%d matrix", len(w), q.Rows, q.Cols)
	}
	if t != nil && t.Blocks()*t.Block != q.Cols {
		return 0, fmt.Errorf("quantize: relerror: transform covers %d of %d columns", t.Blocks()*t.Block, q.Cols)
	}
	rec := reconstruct(q, t)
	var num, den float64
	for i, v := range w {
		d := float64(v) - float64(rec[i])
		num += d * d
		den += float64(v) * float64(v)
	}
	if den == 0 {
		return math.Sqrt(num), nil
	}
	return math.Sqrt(num / den), nil
}

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
// group per block it is CAFEQ.md's ||M^-1||_F^2 · sum R^2; with several it
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

var errSingular = errors.New("quantize: transform block is singular")

// invert returns M^-1, or errSingular when M is (numerically) singular.
func invert(m *mat.Dense) (*mat.Dense, error) {
	var n mat.Dense
	if err := n.Inverse(m); err != nil {
		var c mat.Condition
		if errors.As(err, &c) && float64(c) < 1e10 {
			return &n, nil
		}
		return nil, errSingular
	}
	return &n, nil
}

// smoothRange returns the smoothed range of v at inverse temperature t and
// writes dR/dv into d.
func smoothRange(v []float32, d []float32, t float64, asym bool) float64 {
	hi, lo := v[0], v[0]
	for _, x := range v {
		hi = max(hi, x)
		lo = min(lo, x)
	}
	if asym {
		// smax = max + log(sum exp(t(v-max)))/t; smin likewise with -v.
		var zp, zm float64
		for _, x := range v {
			zp += math.Exp(t * float64(x-hi))
			zm += math.Exp(-t * float64(x-lo))
		}
		for i, x := range v {
			d[i] = float32(math.Exp(t*float64(x-hi))/zp - math.Exp(-t*float64(x-lo))/zm)
		}
		return float64(hi-lo) + (math.Log(zp)+math.Log(zm))/t
	}
	a := math.Max(float64(hi), -float64(lo))
	var z float64
	for _, x := range v {
		z += math.Exp(t*(float64(x)-a)) + math.Exp(t*(-float64(x)-a))
	}
	for i, x := range v {
		d[i] = float32((math.Exp(t*(float64(x)-a)) - math.Exp(t*(-float64(x)-a))) / z)
	}
	return a + math.Log(z)/t
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

func floats64Dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
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
