package quantize

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func randMatrix(rng *rand.Rand, rows, cols int) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * 0.02
	}
	return w
}

// plantOutliers scales a few input columns by 10-50x, as activation
// outlier channels show up in real weights.
func plantOutliers(rng *rand.Rand, w []float32, rows, cols, n int) {
	for range n {
		c := rng.IntN(cols)
		f := float32(10 + 40*rng.Float64())
		for r := range rows {
			w[r*cols+c] *= f
		}
	}
}

func TestSurrogateGradient(t *testing.T) {
	for _, g := range []Grid{{Bits: 3, Group: 32, Asym: true}, {Bits: 4, Group: 32, Asym: false}} {
		rng := rand.New(rand.NewPCG(1, 2))
		const b, n = 64, 20
		x := &rows{b: b, x: randMatrix(rng, n, b), wt: make([]float64, n), temp: make([]float64, n)}
		for i := range n {
			x.wt[i] = 1 + rng.Float64()
			x.temp[i] = 100
		}
		m := mat.NewDense(b, b, nil)
		for i := range b {
			for j := range b {
				m.Set(i, j, 0.1*rng.NormFloat64()/math.Sqrt(b))
			}
			m.Set(i, i, m.At(i, i)+1)
		}
		s := newSurrogate(g, b, n)
		grad := mat.NewDense(b, b, nil)
		l0, err := s.eval(x, m, grad)
		if err != nil {
			t.Fatal(err)
		}
		for k := range 12 {
			i, j := rng.IntN(b), rng.IntN(b)
			const h = 1e-3
			orig := m.At(i, j)
			m.Set(i, j, orig+h)
			lp, _ := s.eval(x, m, nil)
			m.Set(i, j, orig-h)
			lm, _ := s.eval(x, m, nil)
			m.Set(i, j, orig)
			fd := (lp - lm) / (2 * h)
			an := grad.At(i, j)
			if math.Abs(fd-an) > 0.02*math.Abs(an)+1e-4*l0 {
				t.Errorf("%v: dL/dM[%d][%d] = %g, finite difference %g (k=%d)", g, i, j, an, fd, k)
			}
		}
	}
}

// TestPlantedOutliers: a Gaussian matrix with a few input columns scaled
// 10-50x (outlier channels). A learned transform must cut the 3-bit RTN
// error by at least 40% (the paper: 0.176 -> 0.085 on Gemma 2 2B), the
// Hadamard baseline must beat RTN, and each report must equal RelError.
func TestPlantedOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 256, 512
	w := randMatrix(rng, rows, cols)
	plantOutliers(rng, w, rows, cols, 6)
	g := Grid{Bits: 3, Group: 32, Asym: true}
	m := Matrix{Name: "w", Rows: rows, Cols: cols, Data: w}
	got := map[Method]float64{}
	for _, meth := range []Method{MethodRTN, MethodHadamard, MethodCafeQ} {
		res, err := QuantizeMatrix(m, Options{Method: meth, Grid: g, Steps: 15, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		e := res.Report[0]
		exact, err := RelError(w, res.Q[0], res.Transform)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(exact-e.RelErr) > 1e-4*exact {
			t.Errorf("%s: reported error %.6f, recomputed %.6f", meth, e.RelErr, exact)
		}
		if (meth == MethodRTN) != (res.Transform == nil) {
			t.Errorf("%s: transform %v", meth, res.Transform != nil)
		}
		got[meth] = exact
		t.Logf("%s: rel err %.4f (rtn %.4f) %.2fs", meth, e.RelErr, e.RTNRelErr, e.Seconds)
	}
	if got[MethodHadamard] >= got[MethodRTN] {
		t.Errorf("hadamard %.4f not below rtn %.4f", got[MethodHadamard], got[MethodRTN])
	}
	if got[MethodCafeQ] > 0.6*got[MethodRTN] {
		t.Errorf("cafeq %.4f: less than a 40%% cut from rtn %.4f", got[MethodCafeQ], got[MethodRTN])
	}
}
