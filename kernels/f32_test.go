package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// oddLens are the f32 loops' test lengths: around the AVX2 step (8) and the
// AVX-512 one (16, with masked tails), four registers (32, 64) and the 2B
// model's hidden size.
var oddLens = []int{1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 255, 257, 2304}

// Tanh against math.Tanh: relative error below 1e-6 over the whole range
// (absolute below 1e-7 near 0, where the result is tiny).
func TestTanhAccuracy(t *testing.T) {
	worst := 0.0
	for x := -12.0; x <= 12; x += 1e-4 {
		got := float64(tanhGeneric(float32(x)))
		want := math.Tanh(float64(float32(x)))
		err := math.Abs(got - want)
		if want != 0 {
			err /= math.Abs(want)
		}
		worst = max(worst, err)
	}
	for _, x := range []float32{1e-30, -1e-8, 1e-4, 3e-3} {
		got := float64(tanhGeneric(x))
		if want := math.Tanh(float64(x)); math.Abs(got-want) > 1e-6*math.Abs(want) {
			t.Errorf("tanh(%g) = %g, want %g", x, got, want)
		}
	}
	t.Logf("worst relative tanh error %.3g", worst)
	if worst > 1e-6 {
		t.Errorf("worst relative tanh error %.3g > 1e-6", worst)
	}
	if tanhGeneric(float32(math.Inf(1))) != 1 || tanhGeneric(float32(math.Inf(-1))) != -1 {
		t.Error("tanh(±Inf)")
	}
}

func TestExpAccuracy(t *testing.T) {
	for x := -90.0; x <= 0; x += 1e-3 {
		got := float64(expNeg(float32(x)))
		want := math.Exp(float64(float32(x)))
		if want < 1e-37 {
			continue // f32 subnormal range: flushing is fine for softmax
		}
		if math.Abs(got-want) > 1e-6*want {
			t.Fatalf("exp(%g) = %g, want %g", x, got, want)
		}
	}
}

// Every tier's f32 loops against float64 math. Error budget 2 for float
// paths: relative RMS error below 1e-6 (a few f32 ulps); dot products are
// compared against a float64 sum with a bound of 1e-6 * sum|a_i b_i|.
func TestF32LoopsTiers(t *testing.T) {
	forEachTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(21, 22))
		for _, n := range append([]int{0}, oddLens...) {
			a, b := gaussian(rng, n, 1), gaussian(rng, n, 1)
			var ref, mag float64
			for i := range a {
				ref += float64(a[i]) * float64(b[i])
				mag += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := Dot(a, b); math.Abs(float64(got)-ref) > 1e-6*mag {
				t.Errorf("n=%d dot %v, want %v", n, got, ref)
			}

			buf, y := guarded(n)
			copy(y, b)
			axpy(0.75, a, y)
			checkGuard(t, buf, 0, n)
			for i := range y {
				if want := b[i] + 0.75*a[i]; math.Abs(float64(y[i]-want)) > 1e-6*math.Abs(float64(want))+1e-7 {
					t.Fatalf("n=%d axpy[%d] %v, want %v", n, i, y[i], want)
				}
			}
			buf, y = guarded(n)
			copy(y, a)
			Scale(-1.5, y)
			checkGuard(t, buf, 0, n)
			for i := range y {
				if y[i] != -1.5*a[i] {
					t.Fatalf("n=%d scale[%d]", n, i)
				}
			}

			w := gaussian(rng, n, 0.1)
			buf, y = guarded(n)
			RMSNorm(y, a, w, 1e-6)
			checkGuard(t, buf, 0, n)
			var ss float64
			for _, v := range a {
				ss += float64(v) * float64(v)
			}
			inv := 1 / math.Sqrt(ss/float64(n)+1e-6)
			want := make([]float32, n)
			for i := range want {
				want[i] = float32(float64(a[i]) * inv * (1 + float64(w[i])))
			}
			if e := rmse(y, want) / rms(want); e > 1e-6 {
				t.Errorf("n=%d rmsnorm relative RMS error %.3g", n, e)
			}

			// spread 10: ordinary scores; spread 60: many exp underflow to 0
			for _, spread := range []float64{10, 60} {
				buf, y = guarded(n)
				copy(y, a)
				for i := range y {
					y[i] *= float32(spread)
				}
				Softmax(y)
				checkGuard(t, buf, 0, n)
				m := math.Inf(-1)
				for _, v := range a {
					m = max(m, float64(float32(spread)*v))
				}
				var sum float64
				for _, v := range a {
					sum += math.Exp(float64(float32(spread)*v) - m)
				}
				for i := range want {
					want[i] = float32(math.Exp(float64(float32(spread)*a[i])-m) / sum)
				}
				if e := rmse(y, want) / rms(want); e > 1e-6 {
					t.Errorf("n=%d spread %v softmax relative RMS error %.3g", n, spread, e)
				}
			}

			buf, y = guarded(n)
			copy(y, a)
			GELUMul(y, b)
			checkGuard(t, buf, 0, n)
			for i := range want {
				x := float64(a[i])
				want[i] = float32(0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) * float64(b[i]))
			}
			if e := rmse(y, want) / rms(want); e > 1e-6 {
				t.Errorf("n=%d gelumul relative RMS error %.3g", n, e)
			}
			copy(y, a)
			geluTanh(y)
			for i := range want {
				x := float64(a[i])
				want[i] = float32(0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))))
			}
			if e := rmse(y, want) / rms(want); e > 1e-6 {
				t.Errorf("n=%d gelu relative RMS error %.3g", n, e)
			}
		}
		for _, n := range oddLens {
			x := gaussian(rng, n, 40)
			buf, y := guarded(n)
			copy(y, x)
			SoftCap(y, 30)
			checkGuard(t, buf, 0, n)
			want := make([]float32, n)
			for i := range want {
				want[i] = float32(30 * math.Tanh(float64(x[i])/30))
			}
			if e := rmse(y, want) / rms(want); e > 1e-6 {
				t.Errorf("n=%d softcap relative RMS error %.3g", n, e)
			}
		}
		for _, h := range []int{1, 4, 8, 16, 33, 128} {
			x := gaussian(rng, 2*h, 1)
			cs, sn := make([]float32, h), make([]float32, h)
			for i := range cs {
				th := rng.Float64() * 2 * math.Pi
				cs[i], sn[i] = float32(math.Cos(th)), float32(math.Sin(th))
			}
			buf, y := guarded(2 * h)
			copy(y, x)
			RoPE(y, cs, sn)
			checkGuard(t, buf, 0, 2*h)
			want := make([]float32, 2*h)
			for i := 0; i < h; i++ {
				want[i] = float32(float64(x[i])*float64(cs[i]) - float64(x[i+h])*float64(sn[i]))
				want[i+h] = float32(float64(x[i+h])*float64(cs[i]) + float64(x[i])*float64(sn[i]))
			}
			if e := rmse(y, want) / rms(want); e > 1e-6 {
				t.Errorf("head %d rope relative RMS error %.3g", 2*h, e)
			}
		}
	})
}

// Every tier's max (Softmax's first pass) equals the reference exactly,
// and is NaN when any value is, wherever the NaN sits (SIMD body or tail).
func TestMaxTiers(t *testing.T) {
	forEachTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(41, 42))
		for _, n := range append([]int{2, 8, 9, 16, 24}, oddLens...) {
			a := gaussian(rng, n, 10)
			if got, want := impl.max(a), maxGeneric(a); got != want {
				t.Fatalf("n=%d max %v, want %v", n, got, want)
			}
			for _, at := range []int{0, n / 2, n - 1} {
				b := append([]float32(nil), a...)
				b[at] = float32(math.NaN())
				if got := impl.max(b); !math.IsNaN(float64(got)) {
					t.Fatalf("n=%d: max with a NaN at %d: %v", n, at, got)
				}
			}
		}
	})
}

// DotRows and AxpyRows (attention over runs of cached keys and values) on
// every tier against float64 sums, for row counts around the 4-row kernels'
// step and lengths with and without a multiple of 8, in guarded buffers.
func TestAttentionRowsTiers(t *testing.T) {
	forEachTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(31, 32))
		for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 48, 64, 65, 256, 257} {
			for _, rows := range []int{0, 1, 3, 4, 5, 9, 64} {
				x, m := gaussian(rng, n, 1), gaussian(rng, rows*n, 1)
				alpha := gaussian(rng, rows, 1)
				buf, dst := guarded(rows)
				DotRows(dst, m, x)
				checkGuard(t, buf, 0, rows)
				for i := range dst {
					var ref, mag float64
					for k := range x {
						ref += float64(x[k]) * float64(m[i*n+k])
						mag += math.Abs(float64(x[k]) * float64(m[i*n+k]))
					}
					if math.Abs(float64(dst[i])-ref) > 1e-6*mag {
						t.Fatalf("n=%d rows=%d dotrows[%d] %v, want %v", n, rows, i, dst[i], ref)
					}
				}
				y0 := gaussian(rng, n, 1)
				buf, y := guarded(n)
				copy(y, y0)
				AxpyRows(y, alpha, m)
				checkGuard(t, buf, 0, n)
				for k := range y {
					ref, mag := float64(y0[k]), math.Abs(float64(y0[k]))
					for i, a := range alpha {
						ref += float64(a) * float64(m[i*n+k])
						mag += math.Abs(float64(a) * float64(m[i*n+k]))
					}
					if math.Abs(float64(y[k])-ref) > 1e-6*mag {
						t.Fatalf("n=%d rows=%d axpyrows[%d] %v, want %v", n, rows, k, y[k], ref)
					}
				}

				// The same rows in f16 (an f16 KV cache): exact widening, so
				// the reference is the f32 one over the rounded values.
				h := make([]uint16, len(m))
				toF16Generic(h, m)
				wide := make([]float32, len(m))
				for i, v := range h {
					wide[i] = float16.Frombits(v).Float32()
				}
				buf, dst = guarded(rows)
				DotRowsF16(dst, h, x)
				checkGuard(t, buf, 0, rows)
				want := make([]float32, rows)
				dotRowsGeneric(want, wide, x)
				for i := range dst {
					var mag float64
					for k := range x {
						mag += math.Abs(float64(x[k]) * float64(wide[i*n+k]))
					}
					if math.Abs(float64(dst[i]-want[i])) > 1e-6*mag {
						t.Fatalf("n=%d rows=%d dotrowsf16[%d] %v, want %v", n, rows, i, dst[i], want[i])
					}
				}
				buf, y = guarded(n)
				copy(y, y0)
				AxpyRowsF16(y, alpha, h)
				checkGuard(t, buf, 0, n)
				wantY := append([]float32(nil), y0...)
				axpyRowsGeneric(wantY, alpha, wide)
				for k := range y {
					mag := math.Abs(float64(y0[k]))
					for i, a := range alpha {
						mag += math.Abs(float64(a) * float64(wide[i*n+k]))
					}
					if math.Abs(float64(y[k]-wantY[k])) > 1e-6*mag {
						t.Fatalf("n=%d rows=%d axpyrowsf16[%d] %v, want %v", n, rows, k, y[k], wantY[k])
					}
				}
			}
		}
	})
}

// Every tier rounds to f16 exactly as the reference: ties to even,
// subnormals, overflow to Inf, signed zeros.
func TestToF16Tiers(t *testing.T) {
	forEachTier(t, func(t *testing.T, tier Tier) {
		rng := rand.New(rand.NewPCG(51, 52))
		special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519.99, 65520, -65520, 1e9,
			float32(math.Inf(1)), float32(math.Inf(-1)), 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-10,
			1 + 1.0/2048, 1 + 3.0/2048, 1 + 1.0/4096} // the last three: halfway cases
		for _, n := range append([]int{0, 8, 19, 64}, oddLens...) {
			src := make([]float32, n)
			for i := range src {
				switch {
				case i < len(special):
					src[i] = special[i]
				default: // magnitudes from f16 subnormals to beyond its range
					src[i] = float32(rng.NormFloat64() * math.Pow(2, rng.Float64()*44-28))
				}
			}
			got := make([]uint16, n+8)
			for i := range got {
				got[i] = 0xBEEF
			}
			ToF16(got[:n], src)
			want := make([]uint16, n)
			toF16Generic(want, src)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("n=%d: f16(%g) = %#04x, want %#04x", n, src[i], got[i], want[i])
				}
			}
			for i := n; i < len(got); i++ {
				if got[i] != 0xBEEF {
					t.Fatalf("n=%d: ToF16 wrote past its end", n)
				}
			}
		}
	})
}

func TestF32LengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Dot with mismatched lengths did not panic")
		}
	}()
	Dot(make([]float32, 3), make([]float32, 4))
}

// axpy computes y[i] += alpha*x[i] through the current tier (the attention
// kernels use it via AxpyRows; tests and benchmarks call it alone).
func axpy(alpha float32, x, y []float32) {
	mustLen("axpy", len(y), len(x))
	impl.axpy(alpha, x, y)
}

// geluTanh applies the tanh approximation of GELU in place through the
// current tier: GELUMul without the up factor.
func geluTanh(x []float32) { impl.geluMul(x, x, nil) }
