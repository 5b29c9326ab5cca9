package kernels

import (
	"github.com/x448/float16"
	"math"
	"math/rand/v2"
	"testing"
)

// TestNonFiniteTiersAgree: every tier must treat NaN and ±Inf inputs as the
// generic reference does. A NaN must never come out as a number: the AVX2
// softcap once turned NaN into +cap, so one NaN weight made every logit 30
// and greedy decoding emitted token 0.
func TestNonFiniteTiersAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	const n = 2*64 + 5 // SIMD bulk and a scalar tail
	other := gaussian(rng, n, 1)
	w := gaussian(rng, n, 0.1)
	cs, sn := make([]float32, n/2), make([]float32, n/2)
	for i := range cs {
		th := rng.Float64() * 2 * math.Pi
		cs[i], sn[i] = float32(math.Cos(th)), float32(math.Sin(th))
	}
	q4 := Format{Type: Q4, Group: 32}
	mat, _ := randMatrix(t, rng, q4, 9, 128)
	ops := []struct {
		name string
		run  func(x []float32) []float32
	}{
		{"softcap", func(x []float32) []float32 { SoftCap(x, 30); return x }},
		{"gelu", func(x []float32) []float32 { geluTanh(x); return x }},
		{"gelumul gate", func(x []float32) []float32 { y := clone32(other); GELUMul(x, y); return x }},
		{"gelumul up", func(x []float32) []float32 { g := clone32(other); GELUMul(g, x); return g }},
		{"softmax", func(x []float32) []float32 { Softmax(x); return x }},
		{"rmsnorm", func(x []float32) []float32 { d := make([]float32, n); RMSNorm(d, x, w, 1e-6); return d }},
		{"rmsnorm weight", func(x []float32) []float32 { d := make([]float32, n); RMSNorm(d, other, x, 1e-6); return d }},
		{"scale", func(x []float32) []float32 { Scale(0.5, x); return x }},
		{"dot", func(x []float32) []float32 { return []float32{Dot(x, other)} }},
		{"axpy", func(x []float32) []float32 { y := clone32(other); axpy(0.5, x, y); return y }},
		{"dotrows", func(x []float32) []float32 { d := make([]float32, 1); DotRows(d, x, other); return d }},
		{"rope", func(x []float32) []float32 { RoPE(x[:n-1], cs, sn); return x }},
		{"tof16", func(x []float32) []float32 {
			h := make([]uint16, n)
			ToF16(h, x)
			out := make([]float32, n)
			for i, v := range h {
				out[i] = float16.Frombits(v).Float32()
			}
			return out
		}},
		{"mulvec q4", func(x []float32) []float32 {
			a := NewActivation(128)
			copy(a.F32, x[:128])
			a.Quantize()
			d := make([]float32, 9)
			if err := mat.MulVec(d, a, 0, 9); err != nil {
				t.Fatal(err)
			}
			return d
		}},
	}
	// the superblock formats: x in the first of 256 columns, 9 rows (the
	// 4-row kernels and a 1-row tail)
	for _, f := range SuperFormats() {
		sm, _ := randMatrix(t, rng, f, 9, SuperBlock)
		ops = append(ops, struct {
			name string
			run  func(x []float32) []float32
		}{"mulvec " + f.String(), func(x []float32) []float32 {
			a := NewActivation(SuperBlock)
			copy(a.F32, x)
			a.Quantize()
			d := make([]float32, 9)
			if err := sm.MulVec(d, a, 0, 9); err != nil {
				t.Fatal(err)
			}
			return d
		}})
	}
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	type key struct {
		op       string
		special  int
		position int
	}
	inputs := func(s float32, pos int) []float32 {
		x := gaussian(rand.New(rand.NewPCG(uint64(pos), 7)), n, 2)
		x[pos] = s
		return x
	}
	positions := []int{0, 9, 127, n - 2}
	want := map[key][]float32{}
	restore, err := ForceTier(TierGeneric)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		for si, s := range specials {
			for _, p := range positions {
				want[key{op.name, si, p}] = op.run(inputs(s, p))
			}
		}
	}
	restore()
	forEachTier(t, func(t *testing.T, tier Tier) {
		for _, op := range ops {
			for si, s := range specials {
				for _, p := range positions {
					got := op.run(inputs(s, p))
					ref := want[key{op.name, si, p}]
					for i := range ref {
						g, r := got[i], ref[i]
						nan := func(v float32) bool { return v != v }
						inf := func(v float32) bool { return math.IsInf(float64(v), 0) }
						if nan(g) != nan(r) || (inf(r) || inf(g)) && g != r {
							t.Errorf("%s with %v at %d: out[%d] = %v, generic gives %v", op.name, s, p, i, g, r)
							break
						}
					}
				}
			}
		}
	})
}

func clone32(x []float32) []float32 { return append([]float32(nil), x...) }
