package quantize

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// adam is the optimiser of both learned transforms (one matrix per block,
// one per V/O head): Adam on log L over the entries of M, so the step does
// not depend on the weights' magnitude. Every evalEvery steps and after the
// last one it hands the iterate to score, which keeps the best by the exact
// error; the surrogate only chooses the direction.
type adam struct {
	lr        float64
	steps     int
	evalEvery int
}

const adamBeta1, adamBeta2 = 0.9, 0.999

// descend runs the steps from start (left untouched). loss returns L(M) and
// writes dL/dM into grad; a singular M, a zero or NaN loss ends the run.
func (a adam) descend(start *mat.Dense, loss func(m, grad *mat.Dense) (float64, error), score func(m *mat.Dense)) {
	m := mat.DenseCopyOf(start)
	r, c := m.Dims()
	grad := mat.NewDense(r, c, nil)
	m1 := make([]float64, r*c)
	m2 := make([]float64, r*c)
	for step := 1; step <= a.steps; step++ {
		l, err := loss(m, grad)
		if err != nil || l == 0 || math.IsNaN(l) {
			break
		}
		g := grad.RawMatrix().Data
		md := m.RawMatrix().Data
		c1 := 1 - math.Pow(adamBeta1, float64(step))
		c2 := 1 - math.Pow(adamBeta2, float64(step))
		for i, gi := range g {
			gi /= l // gradient of log L
			m1[i] = adamBeta1*m1[i] + (1-adamBeta1)*gi
			m2[i] = adamBeta2*m2[i] + (1-adamBeta2)*gi*gi
			md[i] -= a.lr * (m1[i] / c1) / (math.Sqrt(m2[i]/c2) + 1e-12)
		}
		if step%a.evalEvery == 0 || step == a.steps {
			score(m)
		}
	}
}
