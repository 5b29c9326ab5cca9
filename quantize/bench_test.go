package quantize

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkCafeQ2BMatrix quantizes one Gemma-2-2B-shaped FFN matrix
// (9216 x 2304, gate/up shape) at 3 bits, block 256, default budget.
// A 2B model is about 100 such matrices' worth of blocks (gate+up share
// 9 blocks, down has 36, q/k/v 9 per layer), so the per-model time is
// roughly 26 * (time of this + down + qkv).
func BenchmarkCafeQ2BMatrix(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 9216, 2304
	w := randMatrix(rng, rows, cols)
	plantOutliers(rng, w, rows, cols, 20)
	m := Matrix{Name: "gate", Rows: rows, Cols: cols, Data: w}
	for _, meth := range []Method{MethodRTN, MethodHadamard, MethodCafeQ} {
		b.Run(string(meth), func(b *testing.B) {
			b.SetBytes(int64(4 * rows * cols))
			var e Entry
			for b.Loop() {
				res, err := QuantizeMatrix(m, Options{Method: meth, Grid: Grid{Bits: 3, Group: 32, Asym: true}, Seed: 1})
				if err != nil {
					b.Fatal(err)
				}
				e = res.Report[0]
			}
			b.ReportMetric(e.RelErr, "relerr")
			b.ReportMetric(e.RTNRelErr, "rtn-relerr")
		})
	}
}
