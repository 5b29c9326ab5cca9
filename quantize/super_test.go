package quantize

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

func superGrids() []Grid {
	var gs []Grid
	for _, b := range []int{3, 4} {
		for _, a := range []bool{false, true} {
			gs = append(gs, Grid{Bits: b, Group: 32, Asym: a, Super: true})
		}
	}
	return append(gs, Grid{Bits: 6, Group: 32, Super: true}, Grid{Bits: 5, Group: 32, Super: true})
}

// checkStored packs q and checks that what the kernels dequantize is, bit for
// bit, what the quantizer scored (q.Dequantize): every refined scale and min
// sits exactly on its superblock's codes.
func checkStored(t *testing.T, q *Quantized) {
	t.Helper()
	f := q.Format()
	buf := make([]byte, f.RowBytes(q.Cols))
	got, want := make([]float32, q.Cols), make([]float32, q.Cols)
	for r := 0; r < q.Rows; r++ {
		if err := q.PackRow(buf, r); err != nil {
			t.Fatal(err)
		}
		if err := kernels.DequantizeRow(f, got, buf); err != nil {
			t.Fatal(err)
		}
		q.DequantizeRow(want, r)
		for c := range got {
			if math.Float32bits(got[c]) != math.Float32bits(want[c]) {
				t.Fatalf("%v row %d col %d: stored %v, quantizer scored %v", q.Grid, r, c, got[c], want[c])
			}
		}
	}
}

// Super grids: RTN is kernels' RTN, and every method with the refinements
// (clipping search, least squares against the quantized sub-scales) stores
// exactly what it scored, never worse than without them, and better for 3
// bits.
func TestSuperGrids(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	const rows, cols = 16, 512
	w := randMatrix(rng, rows, cols)
	plantOutliers(rng, w, rows, cols, 2)
	m := Matrix{Name: "w", Rows: rows, Cols: cols, Data: w}
	for _, g := range superGrids() {
		q, err := RTN(g, w, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		f := g.Format()
		ref := make([]byte, f.RowBytes(cols))
		buf := make([]byte, f.RowBytes(cols))
		for r := 0; r < rows; r++ {
			if err := kernels.QuantizeRowRTN(f, ref, w[r*cols:(r+1)*cols]); err != nil {
				t.Fatal(err)
			}
			if err := q.PackRow(buf, r); err != nil {
				t.Fatal(err)
			}
			if string(buf) != string(ref) {
				t.Fatalf("%v row %d: RTN packs differently from kernels.QuantizeRowRTN", g, r)
			}
		}
		for _, meth := range []Method{MethodRTN, MethodHadamard, MethodCafeQ} {
			opt := Options{Method: meth, Grid: g, Block: 256, Steps: 3, Seed: 1}
			base, err := QuantizeMatrix(m, opt)
			if err != nil {
				t.Fatal(err)
			}
			opt.Refine = RefineClip | RefineLSQ
			res, err := QuantizeMatrix(m, opt)
			if err != nil {
				t.Fatal(err)
			}
			checkStored(t, res.Q[0])
			exact, err := RelError(w, res.Q[0], res.Transform)
			if err != nil {
				t.Fatal(err)
			}
			b := base.Report[0].RelErr
			t.Logf("%v %s: %.4f -> %.4f refined", g, meth, b, exact)
			if exact > b*(1+1e-6) || (g.Bits == 3 && meth == MethodRTN && exact >= b) {
				t.Errorf("%v %s: refined %.5f, without %.5f", g, meth, exact, b)
			}
		}
	}
	bad := Options{Method: MethodCafeQ, Grid: superGrids()[0], Block: 128}
	if _, err := QuantizeMatrix(m, bad); err == nil {
		t.Error("a 128-column transform block on a superblock grid was accepted")
	}
}

// A coupled V/O pair on a superblock grid (head_dim 256, as Gemma 2 2B):
// the alternating GPTQ-style rounding and the per-head copies keep every
// superblock's super-scales with its codes, so both stored matrices
// dequantize to what was scored, and the pair beats RTN.
func TestSuperVO(t *testing.T) {
	const d, heads, kv, hd = 256, 2, 1, 256
	rng := rand.New(rand.NewPCG(63, 64))
	v, o := randVO(rng, d, heads, kv, hd)
	g := Grid{Bits: 3, Group: 32, Asym: true, Super: true}
	res, err := QuantizeVO(v, o, heads, kv, hd, Options{Method: MethodCafeQ, Grid: g, Steps: 4, Rounding: true,
		Refine: RefineClip | RefineLSQ, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, res.V)
	checkStored(t, res.O)
	if e := res.Report[0]; e.RelErr >= e.RTNRelErr {
		t.Errorf("paired error %.4f not below RTN's %.4f", e.RelErr, e.RTNRelErr)
	}
}
