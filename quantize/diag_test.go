package quantize

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDiagUndoesOutlierColumns: a matrix with a few columns 20x larger
// than the rest is quantized with a learned diagonal and no run-time
// transform. The reported error is the exact one of Q(W·D)·D^-1 against W,
// and it is well below plain RTN's, since D shrinks the outlier columns
// back into their groups' ranges.
func TestDiagUndoesOutlierColumns(t *testing.T) {
	rows, cols := 64, 256
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
		if c := i % cols; c == 3 || c == 77 || c == 200 {
			w[i] *= 20
		}
	}
	g := Grid{Bits: 4, Group: 64, Asym: true}
	res, err := QuantizeShared([]Matrix{{Name: "w", Rows: rows, Cols: cols, Data: w}},
		Options{Method: MethodCafeQ, Grid: g, Diag: true, NoBlock: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Transform != nil || len(res.Diag) != cols {
		t.Fatalf("transform %v, diagonal of %d", res.Transform, len(res.Diag))
	}
	deq := res.Q[0].Dequantize()
	var num, den float64
	for i, v := range w {
		d := float64(v) - float64(deq[i])/float64(res.Diag[i%cols])
		num += d * d
		den += float64(v) * float64(v)
	}
	exact := math.Sqrt(num / den)
	e := res.Report[0]
	t.Logf("relative error: rtn %.4f, diagonal %.4f (exact %.4f)", e.RTNRelErr, e.RelErr, exact)
	if math.Abs(exact-e.RelErr) > 1e-6*exact {
		t.Errorf("reported %.6f, exact %.6f", e.RelErr, exact)
	}
	if e.RelErr > 0.8*e.RTNRelErr {
		t.Errorf("diagonal %.4f not well below rtn %.4f", e.RelErr, e.RTNRelErr)
	}
}
