package quantize

import (
	"math/rand/v2"
	"testing"
)

// TestRefineNeverWorse: each refinement (and both) lowers or keeps the
// exact error of every grid, with and without a transform, and lowers it on
// at least the asymmetric 3-bit grid where min-max is clearly suboptimal.
func TestRefineNeverWorse(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	const rows, cols = 64, 256
	w := randMatrix(rng, rows, cols)
	plantOutliers(rng, w, rows, cols, 2)
	m := Matrix{Name: "w", Rows: rows, Cols: cols, Data: w}
	for _, g := range allGrids() {
		for _, meth := range []Method{MethodRTN, MethodHadamard, MethodCafeQ} {
			opt := Options{Method: meth, Grid: g, Block: 128, Steps: 3, Seed: 1}
			if meth == MethodCafeQ && g.Group != 32 {
				continue
			}
			base, err := QuantizeMatrix(m, opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []Refine{RefineClip, RefineLSQ, RefineClip | RefineLSQ} {
				opt.Refine = f
				res, err := QuantizeMatrix(m, opt)
				if err != nil {
					t.Fatal(err)
				}
				exact, err := RelError(w, res.Q[0], res.Transform)
				if err != nil {
					t.Fatal(err)
				}
				b := base.Report[0].RelErr
				if exact > b*(1+1e-6) {
					t.Errorf("%v %s refine %d: %.5f > %.5f without", g, meth, f, exact, b)
				}
				if g.Bits == 3 && g.Asym && meth == MethodRTN && f == RefineClip|RefineLSQ {
					t.Logf("%v rtn: refine %.4f -> %.4f", g, b, exact)
					if exact >= b {
						t.Errorf("%v: refinement did not help plain RTN", g)
					}
				}
			}
		}
	}
}
