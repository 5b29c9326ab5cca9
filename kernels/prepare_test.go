package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Prepare changes only the storage: rows dequantize to the same values and
// products stay within the SIMD-vs-reference budget of the original's.
func TestPrepare(t *testing.T) {
	forEachTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(41, 42))
		for _, f := range Formats() {
			cols := colsFor(f, 5)
			m, _ := randMatrix(t, rng, f, 16, cols)
			p, err := Prepare(m)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case f == FormatQ6 && impl.noQ6:
				if p.Format != FormatQ8 {
					t.Fatalf("%s on %s: prepared as %s, want q8", f, tier, p.Format)
				}
			case p.Format != f:
				t.Fatalf("%s on %s: prepared as %s", f, tier, p.Format)
			}
			if (p.Layout == Tiled8) != (impl.tiled && f.Type.Quantized()) {
				t.Fatalf("%s on %s: prepared layout %s", f, tier, p.Layout)
			}
			want, got := make([]float32, cols), make([]float32, cols)
			for r := 0; r < m.Rows; r++ {
				if err := m.Row(r, want); err != nil {
					t.Fatal(err)
				}
				if err := p.Row(r, got); err != nil {
					t.Fatal(err)
				}
				for c := range got {
					if got[c] != want[c] {
						t.Fatalf("%s row %d col %d: prepared %v, stored %v", f, r, c, got[c], want[c])
					}
				}
			}
			x := randActivation(t, rng, cols)
			ref, out := make([]float32, m.Rows), make([]float32, m.Rows)
			mulVecGeneric(m, ref, x, 0, m.Rows)
			if err := p.MulVec(out, x, 0, m.Rows); err != nil {
				t.Fatal(err)
			}
			mag := absDot(t, m, x.F32)
			for r := range out {
				if d := math.Abs(float64(out[r] - ref[r])); d > 1e-6*mag[r] {
					t.Fatalf("%s row %d: prepared %v, reference %v", f, r, out[r], ref[r])
				}
			}
		}
	})
}

// TestAllocWeights: the buffer matrix data is tiled into is zeroed and of
// the asked size, with or without the huge-page advice (which covers only
// whole 2 MiB pages inside it).
func TestAllocWeights(t *testing.T) {
	for _, n := range []int{1, 4096, 5<<20 + 3} {
		b := allocWeights(n)
		if len(b) != n {
			t.Fatalf("allocWeights(%d): %d bytes", n, len(b))
		}
		for i, v := range b {
			if v != 0 {
				t.Fatalf("allocWeights(%d)[%d] = %d, want 0", n, i, v)
			}
		}
		b[0], b[n-1] = 1, 1
	}
}
