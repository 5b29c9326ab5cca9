package quantize

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkSampleLoss is one candidate's scoring in the bit-budget search
// (a 256-row sample of a 2304-wide matrix).
func BenchmarkSampleLoss(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	w := make([]float32, 256*2304)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	src := source{w: w, rows: 256, cols: 2304, wt: 1}
	d := learnDiag([]source{src}, budgetDiagGrid)
	for _, c := range []struct {
		name  string
		d     []float32
		flags Refine
	}{{"rtn", nil, 0}, {"diag", d, 0}, {"diag+lsq", d, RefineLSQ}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				sampleLoss(src, Grid{Bits: 4, Group: 64, Asym: true}, c.d, c.flags)
			}
		})
	}
}
