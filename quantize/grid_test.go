package quantize

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cafeq/cafeq/kernels"
)

func allGrids() []Grid {
	var gs []Grid
	for _, b := range []int{3, 4} {
		for _, g := range []int{32, 64, 128} {
			for _, a := range []bool{false, true} {
				gs = append(gs, Grid{Bits: b, Group: g, Asym: a})
			}
		}
	}
	return gs
}

// TestRTNMatchesKernels checks that the quantizer's RTN levels, packed with
// kernels.PackRow, are byte-identical to kernels.QuantizeRowRTN, that
// re-rounding with levelsFor reproduces them, and that Dequantize matches
// kernels.DequantizeRow bit for bit.
func TestRTNMatchesKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 7, 384
	w := randMatrix(rng, rows, cols)
	// Exact ties and repeated values exercise the rounding rule.
	for i := 0; i < 40; i++ {
		w[rng.IntN(len(w))] = float32(rng.IntN(9)-4) * 0.01
	}
	w[0], w[1] = 0, 0
	for i := 64; i < 96; i++ { // one all-equal group
		w[i] = 0.5
	}
	for _, g := range allGrids() {
		q, err := RTN(g, w, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		f := g.Format()
		deq := q.Dequantize()
		want := make([]byte, f.RowBytes(cols))
		got := make([]byte, f.RowBytes(cols))
		kd := make([]float32, cols)
		lv := make([]uint8, cols)
		for r := range rows {
			if err := kernels.QuantizeRowRTN(f, want, w[r*cols:(r+1)*cols]); err != nil {
				t.Fatal(err)
			}
			if err := kernels.PackRow(f, got, q.RowLevels(r), q.RowScales(r), q.RowMins(r)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%v row %d: packed RTN differs from kernels.QuantizeRowRTN", g, r)
			}
			if err := kernels.DequantizeRow(f, kd, got); err != nil {
				t.Fatal(err)
			}
			for i, v := range kd {
				if v != deq[r*cols+i] {
					t.Fatalf("%v row %d col %d: dequantized %g, kernels %g", g, r, i, deq[r*cols+i], v)
				}
			}
			for j := range cols / g.Group {
				var m float32
				if g.Asym {
					m = q.RowMins(r)[j]
				}
				g.levelsFor(lv[j*g.Group:(j+1)*g.Group], w[r*cols+j*g.Group:r*cols+(j+1)*g.Group], q.RowScales(r)[j], m)
			}
			if !bytes.Equal(lv, q.RowLevels(r)) {
				t.Fatalf("%v row %d: levelsFor disagrees with RTN levels", g, r)
			}
		}
	}
}

func TestGridValidate(t *testing.T) {
	bad := []struct {
		g    Grid
		cols int
	}{{Grid{Bits: 2, Group: 32}, 64}, {Grid{Bits: 4, Group: 48}, 96}, {Grid{Bits: 4, Group: 64}, 96}, {Grid{Bits: 3, Group: 32}, 0}}
	for _, c := range bad {
		if err := c.g.Validate(c.cols); err == nil {
			t.Errorf("%+v cols %d: no error", c.g, c.cols)
		}
	}
	if _, err := RTN(Grid{Bits: 4, Group: 32}, []float32{1, 2}, 1, 32); err == nil {
		t.Error("short matrix accepted")
	}
	wide := []Grid{{Bits: 5, Group: 32}, {Bits: 6, Group: 32}, {Bits: 8, Group: 32}, {Bits: 3, Group: 32, Super: true}, {Bits: 4, Group: 32, Asym: true, Super: true},
		{Bits: 5, Group: 32, Super: true}, {Bits: 6, Group: 32, Super: true}}
	for _, g := range append(allGrids(), wide...) {
		g2, err := gridOf(g.Format())
		if err != nil || g2 != g {
			t.Errorf("gridOf(%v) = %v, %v", g.Format(), g2, err)
		}
	}
	for _, f := range []kernels.Format{kernels.FormatF32, kernels.FormatF16, {Type: kernels.Q4, Group: 48}} {
		if g, err := gridOf(f); err == nil {
			t.Errorf("gridOf(%v) = %v, want an error", f, g)
		}
	}
}

// TestWideGrids: the 5-, 6- and 8-bit grids round through the q5, q6 and q8
// formats, and every extra bit lowers the error of the same matrix.
func TestWideGrids(t *testing.T) {
	rows, cols := 16, 256
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)*0.37) + 0.3*math.Cos(float64(i)*1.91))
	}
	prev := math.Inf(1)
	for _, g := range []Grid{{Bits: 3, Group: 32}, {Bits: 4, Group: 32}, {Bits: 5, Group: 32}, {Bits: 6, Group: 32}, {Bits: 8, Group: 32}} {
		q, err := RTN(g, w, rows, cols)
		if err != nil {
			t.Fatal(g, err)
		}
		e, err := RelError(w, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v (%s): relative error %.5f", g, g.Format(), e)
		if e >= prev/1.8 {
			t.Errorf("%v: error %.5f not well below the narrower grid's %.5f", g, e, prev)
		}
		prev = e
	}
	if err := (Grid{Bits: 6, Group: 64}).Validate(256); err == nil {
		t.Error("q6 with groups of 64 accepted")
	}
	if err := (Grid{Bits: 5, Group: 32, Asym: true}).Validate(256); err == nil {
		t.Error("asymmetric q5 accepted")
	}
	if err := (Grid{Bits: 8, Group: 32, Asym: true}).Validate(256); err == nil {
		t.Error("asymmetric q8 accepted")
	}
}
