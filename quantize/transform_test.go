package quantize

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

// TestTransformApply checks the runtime convention W x = Q(W·M)(M^-1 x)
// without quantization error: (W·M)·(M^-1 x) = W x.
func TestTransformApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	const rows, cols = 8, 512
	w := randMatrix(rng, rows, cols)
	tr, err := newHadamard(cols, 128, 3)
	if err != nil {
		t.Fatal(err)
	}
	wm := make([]float32, rows*cols)
	applyRight(wm, w, rows, cols, tr.Block, tr.m)
	x := randMatrix(rng, 1, cols)
	xp := make([]float32, cols)
	tr.Apply(xp, x)
	for r := range rows {
		var a, b float64
		for i := range cols {
			a += float64(w[r*cols+i]) * float64(x[i])
			b += float64(wm[r*cols+i]) * float64(xp[i])
		}
		if math.Abs(a-b) > 1e-5 {
			t.Errorf("row %d: W x = %g, (W M)(M^-1 x) = %g", r, a, b)
		}
	}
	folded, err := tr.Fold(Matrix{Name: "w", Rows: rows, Cols: cols, Data: w})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range folded.Data {
		if v != wm[i] {
			t.Fatalf("Fold differs from W·M at %d", i)
		}
	}
	if _, err := tr.Fold(Matrix{Rows: 1, Cols: 256, Data: make([]float32, 256)}); err == nil {
		t.Error("Fold accepted a matrix of the wrong width")
	}
	if _, err := newHadamard(2304, 96, 1); err == nil {
		t.Error("hadamard block 96 accepted")
	}
	if _, err := QuantizeMatrix(Matrix{Rows: 4, Cols: 96, Data: make([]float32, 4*96)}, Options{Method: MethodCafeQ, Grid: Grid{Bits: 4, Group: 32}, Block: 64}); err == nil {
		t.Error("cafeq block not dividing the columns accepted")
	}
}

// TestInvFormat: with M^-1 stored as q8, the transform handed to the runtime
// is exactly q8-representable, and the reported error (computed with that
// M^-1) still matches RelError and beats RTN on planted outliers.
func TestInvFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	const rows, cols = 128, 256
	w := randMatrix(rng, rows, cols)
	plantOutliers(rng, w, rows, cols, 4)
	g := Grid{Bits: 3, Group: 32, Asym: true}
	for _, meth := range []Method{MethodHadamard, MethodCafeQ} {
		res, err := QuantizeMatrix(Matrix{Name: "w", Rows: rows, Cols: cols, Data: w},
			Options{Method: meth, Grid: g, Steps: 8, InvFormat: kernels.FormatQ8, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		tr := res.Transform
		if tr == nil {
			t.Fatalf("%s: no transform on planted outliers", meth)
		}
		buf := make([]byte, kernels.FormatQ8.RowBytes(tr.Block))
		row := make([]float32, tr.Block)
		for i := 0; i < len(tr.Inv); i += tr.Block {
			if err := kernels.QuantizeRowRTN(kernels.FormatQ8, buf, tr.Inv[i:i+tr.Block]); err != nil {
				t.Fatal(err)
			}
			if err := kernels.DequantizeRow(kernels.FormatQ8, row, buf); err != nil {
				t.Fatal(err)
			}
			for j, v := range row {
				if v != tr.Inv[i+j] && !blockIsIdentity(tr.m[(i/(tr.Block*tr.Block))*tr.Block*tr.Block:][:tr.Block*tr.Block], tr.Block) {
					t.Fatalf("%s: stored M^-1 entry %d not q8-representable: %g vs %g", meth, i+j, tr.Inv[i+j], v)
				}
			}
		}
		e := res.Report[0]
		exact, err := RelError(w, res.Q[0], tr)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(exact-e.RelErr) > 1e-4*exact || exact >= e.RTNRelErr {
			t.Errorf("%s: reported %.5f, recomputed %.5f, rtn %.5f", meth, e.RelErr, exact, e.RTNRelErr)
		}
		t.Logf("%s with q8 M^-1: %.4f (rtn %.4f)", meth, exact, e.RTNRelErr)
	}
	if _, err := QuantizeMatrix(Matrix{Name: "w", Rows: rows, Cols: cols, Data: w},
		Options{Method: MethodCafeQ, Grid: g, Block: 64, InvFormat: kernels.Format{Type: kernels.Q4, Group: 128}}); err == nil {
		t.Error("transform format with group 128 over block 64 accepted")
	}
}
