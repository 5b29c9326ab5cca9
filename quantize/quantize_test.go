package quantize

import (
	"math"
	"strings"
	"testing"
)

// TestBadInput: malformed matrices and options return package-prefixed
// errors, never panics.
func TestBadInput(t *testing.T) {
	g := Grid{Bits: 4, Group: 32, Asym: true}
	ok := Matrix{Name: "w", Rows: 2, Cols: 256, Data: make([]float32, 512)}
	nan := Matrix{Name: "nan", Rows: 2, Cols: 256, Data: make([]float32, 512)}
	nan.Data[7] = float32(math.NaN())
	big := Matrix{Name: "big", Rows: 2, Cols: 256, Data: make([]float32, 512)}
	big.Data[3] = 1e6
	short := Matrix{Name: "short", Rows: 2, Cols: 256, Data: make([]float32, 100)}
	narrow := Matrix{Name: "narrow", Rows: 2, Cols: 128, Data: make([]float32, 256)}
	cases := []struct {
		name string
		run  func() error
	}{
		{"nan", func() error { _, err := QuantizeMatrix(nan, Options{Method: MethodRTN, Grid: g}); return err }},
		{"huge", func() error { _, err := QuantizeMatrix(big, Options{Method: MethodCafeQ, Grid: g}); return err }},
		{"short", func() error { _, err := QuantizeMatrix(short, Options{Grid: g}); return err }},
		{"no matrices", func() error { _, err := QuantizeShared(nil, Options{Grid: g}); return err }},
		{"widths differ", func() error { _, err := QuantizeShared([]Matrix{ok, narrow}, Options{Grid: g}); return err }},
		{"method", func() error { _, err := QuantizeMatrix(ok, Options{Method: "gptq", Grid: g}); return err }},
		{"grid", func() error {
			_, err := QuantizeMatrix(ok, Options{Method: MethodRTN, Grid: Grid{Bits: 7, Group: 32}})
			return err
		}},
		{"cafeq block", func() error { _, err := QuantizeMatrix(ok, Options{Grid: g, Block: 512}); return err }},
		{"hadamard block", func() error {
			_, err := QuantizeMatrix(ok, Options{Method: MethodHadamard, Grid: g, Block: 96})
			return err
		}},
		{"negative steps", func() error { _, err := QuantizeMatrix(ok, Options{Grid: g, Steps: -1}); return err }},
		{"vo heads", func() error { _, err := QuantizeVO(ok, ok, 3, 2, 128, Options{Grid: g}); return err }},
		{"vo shapes", func() error {
			v := Matrix{Name: "v", Rows: 64, Cols: 256, Data: make([]float32, 64*256)}
			o := Matrix{Name: "o", Rows: 256, Cols: 96, Data: make([]float32, 256*96)}
			_, err := QuantizeVO(v, o, 4, 2, 32, Options{Grid: g})
			return err
		}},
		{"vo head_dim vs group", func() error {
			v := Matrix{Name: "v", Rows: 32, Cols: 256, Data: make([]float32, 32*256)}
			o := Matrix{Name: "o", Rows: 256, Cols: 64, Data: make([]float32, 256*64)}
			_, err := QuantizeVO(v, o, 4, 2, 16, Options{Grid: g})
			return err
		}},
		{"relerror shape", func() error {
			q, err := RTN(g, ok.Data, 2, 256)
			if err != nil {
				return nil
			}
			_, err = RelError(ok.Data[:10], q, nil)
			return err
		}},
	}
	for _, c := range cases {
		err := c.run()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "quantize: ") {
			t.Errorf("%s: error %q lacks the package prefix", c.name, err)
		}
	}
}

// TestZeroMatrix: an all-zero matrix quantizes to zero error with every
// method (scales 0, no NaN).
func TestZeroMatrix(t *testing.T) {
	m := Matrix{Name: "z", Rows: 4, Cols: 256, Data: make([]float32, 4*256)}
	for _, meth := range []Method{MethodRTN, MethodHadamard, MethodCafeQ} {
		for _, asym := range []bool{false, true} {
			res, err := QuantizeMatrix(m, Options{Method: meth, Grid: Grid{Bits: 3, Group: 32, Asym: asym}, Steps: 2, Refine: RefineClip | RefineLSQ})
			if err != nil {
				t.Fatalf("%s: %v", meth, err)
			}
			if e := res.Report[0].RelErr; e != 0 || math.IsNaN(e) {
				t.Errorf("%s asym=%v: error %g on a zero matrix", meth, asym, e)
			}
		}
	}
}
