//go:build amd64 && !purego

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/x448/float16"
)

// f32KernelSet is one width's f32 kernels with the signatures of
// dot_stubs_amd64.go: the AVX2 ones, the AVX-512 ones run natively, or the
// AVX-512 ones run in the interpreter (emuF32Set).
type f32KernelSet struct {
	dot             func(a, b *float32, n uintptr) float32
	axpy            func(alpha float32, x, y *float32, n uintptr)
	axpyX4          func(a *float32, x *float32, xstride uintptr, y *float32, n uintptr)
	max             func(x *float32, n uintptr) float32
	geluMul         func(dst, x, up *float32, n uintptr)
	softCap         func(x *float32, n uintptr, cap float32)
	expSub          func(x *float32, n uintptr, m float32) float32
	scale           func(alpha float32, x *float32, n uintptr)
	mulScaleOnePlus func(dst, x, w *float32, n uintptr, s float32)
	rope            func(x, cos, sin *float32, h, n uintptr)
	axpyF16         func(alpha float32, x *uint16, y *float32, n uintptr)
	dotF16X4        func(out *float32, w *uint16, wstride uintptr, x *float32, n uintptr)
	axpyF16X4       func(a *float32, x *uint16, xstride uintptr, y *float32, n uintptr)
	toF16           func(dst *uint16, src *float32, n uintptr)
}

var (
	avx2F32 = f32KernelSet{dotF32AVX2, axpyF32AVX2, axpyF32X4AVX2, maxF32AVX2, geluMulF32AVX2, softCapF32AVX2,
		expSubF32AVX2, scaleF32AVX2, mulScaleOnePlusF32AVX2, ropeF32AVX2, axpyF16AVX2, dotF16X4AVX2, axpyF16X4AVX2, toF16AVX2}
	avx512F32 = f32KernelSet{dotF32AVX512, axpyF32AVX512, axpyF32X4AVX512, maxF32AVX512, geluMulF32AVX512, softCapF32AVX512,
		expSubF32AVX512, scaleF32AVX512, mulScaleOnePlusF32AVX512, ropeF32AVX512, axpyF16AVX512, dotF16X4AVX512, axpyF16X4AVX512, toF16AVX512}
)

// f32KernelLens are the lengths the AVX-512 kernels are checked on: around
// one register (16), four (64) and the AVX2 step (8), and the 2B model's
// hidden size.
var f32KernelLens = []int{0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 257, 2304}

// f32Input is one length's inputs, n values used and padded to a multiple of
// 8 (npad) for the AVX2 kernels: zeros past n, or -Inf for max and expSub
// (xneg), which then ignore the padding.
type f32Input struct {
	n, npad int
	x       []float32 // finite, for the sums
	xs      []float32 // x with NaN, ±Inf, huge, subnormal and -0 values among them
	xneg    []float32 // x with -Inf padding
	y, w    []float32
	cs, sn  []float32
	rows    []float32 // 4 rows of stride npad, specials included
	halves  []uint16  // the same 4 rows in f16, finite
	alpha   []float32
}

func newF32Input(rng *rand.Rand, n int) *f32Input {
	npad := (n + 7) &^ 7
	pad := func(v []float32, p float32) []float32 {
		out := make([]float32, npad)
		copy(out, v)
		for i := n; i < npad; i++ {
			out[i] = p
		}
		return out
	}
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38, -1e30, 1e-40,
		float32(math.Copysign(0, -1)), 20, -20}
	withSpecials := func(v []float32) []float32 {
		out := append([]float32(nil), v...)
		for i, s := range specials {
			if n > 0 {
				out[(13*i+n-1)%n] = s
			}
		}
		return out
	}
	in := &f32Input{n: n, npad: npad}
	in.x = pad(gaussian(rng, n, 3), 0)
	in.xs = withSpecials(in.x)
	in.xneg = pad(in.x[:n], float32(math.Inf(-1)))
	in.y = pad(gaussian(rng, n, 1), 0)
	in.w = pad(gaussian(rng, n, 0.1), 0)
	in.cs, in.sn = make([]float32, npad), make([]float32, npad)
	for i := 0; i < n; i++ {
		th := rng.Float64() * 2 * math.Pi
		in.cs[i], in.sn[i] = float32(math.Cos(th)), float32(math.Sin(th))
	}
	in.rows = make([]float32, 4*npad)
	for r := 0; r < 4; r++ {
		copy(in.rows[r*npad:], gaussian(rng, n, 1))
	}
	in.halves = make([]uint16, 4*npad)
	toF16Generic(in.halves, in.rows)
	copy(in.rows[npad:], withSpecials(in.rows[npad:npad+n]))
	in.alpha = gaussian(rng, 4, 1)
	return in
}

// f32Case runs one kernel of a set on the first n values of an input (n is
// in.n, or in.npad for the AVX2 twins) into guarded buffers and returns the
// outputs that belong to the first in.n values. mag, when set, gives each
// output's error budget 1e-6*mag[i] (sums, whose order differs between the
// widths); otherwise the outputs must match the AVX2 kernels bit for bit
// (NaN for NaN), lane for lane the same operations.
type f32Case struct {
	name string
	run  func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32
	mag  func(in *f32Input) []float64
}

func p32(s []float32) *float32 { return unsafe.SliceData(s) }
func p16(s []uint16) *uint16   { return unsafe.SliceData(s) }

// guardedCopy is src[:n] in a guarded buffer (see guarded); done checks the
// guards.
func guardedCopy(t *testing.T, src []float32, n int) (dst []float32, done func()) {
	buf, dst := guarded(n)
	copy(dst, src)
	return dst, func() { t.Helper(); checkGuardAny(t, buf, n) }
}

// checkGuardAny is checkGuard for outputs that may equal the sentinel's
// neighbours: only the margins are checked.
func checkGuardAny(t *testing.T, buf []float32, n int) {
	t.Helper()
	for i, v := range buf {
		if (i < 16 || i >= 16+n) && v != sentinel {
			t.Fatalf("buffer index %d (dst %d) written past [0,%d)", i, i-16, n)
		}
	}
}

var f32Cases = []f32Case{
	{name: "dot", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		return []float32{k.dot(p32(in.x), p32(in.y), uintptr(n))}
	}, mag: func(in *f32Input) []float64 {
		var m float64
		for i := 0; i < in.n; i++ {
			m += math.Abs(float64(in.x[i]) * float64(in.y[i]))
		}
		return []float64{m}
	}},
	{name: "axpy", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		y, done := guardedCopy(t, in.y, n)
		k.axpy(0.75, p32(in.xs), p32(y), uintptr(n))
		done()
		return y[:in.n]
	}},
	{name: "axpyX4", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		y, done := guardedCopy(t, in.y, n)
		k.axpyX4(p32(in.alpha), p32(in.rows), uintptr(in.npad), p32(y), uintptr(n))
		done()
		return y[:in.n]
	}},
	{name: "max", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		if in.n == 0 {
			return nil
		}
		xs := append(append([]float32(nil), in.xs[:in.n]...), in.xneg[in.n:]...)
		return []float32{k.max(p32(in.xneg), uintptr(n)), k.max(p32(xs), uintptr(n))}
	}},
	{name: "gelumul", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		dst, done := guardedCopy(t, nil, n)
		k.geluMul(p32(dst), p32(in.xs), p32(in.y), uintptr(n))
		done()
		return dst[:in.n]
	}},
	{name: "gelu", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		dst, done := guardedCopy(t, nil, n)
		k.geluMul(p32(dst), p32(in.xs), nil, uintptr(n))
		done()
		return dst[:in.n]
	}},
	{name: "softcap", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		x, done := guardedCopy(t, in.xs, n)
		for i := range x {
			x[i] *= 15
		}
		k.softCap(p32(x), uintptr(n), 30)
		done()
		return x[:in.n]
	}},
	{name: "expsub", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		x, done := guardedCopy(t, in.xs, n)
		for i := in.n; i < n; i++ {
			x[i] = float32(math.Inf(-1))
		}
		k.expSub(p32(x), uintptr(n), 2)
		done()
		return x[:in.n]
	}},
	{name: "expsub sum", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		x, done := guardedCopy(t, in.xneg, n)
		s := k.expSub(p32(x), uintptr(n), 2)
		done()
		return []float32{s}
	}, mag: func(in *f32Input) []float64 {
		var s float64
		for _, v := range in.x[:in.n] {
			s += math.Exp(float64(v) - 2)
		}
		return []float64{2 * s}
	}},
	{name: "scale", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		x, done := guardedCopy(t, in.xs, n)
		k.scale(-1.25, p32(x), uintptr(n))
		done()
		return x[:in.n]
	}},
	{name: "mulScaleOnePlus", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		dst, done := guardedCopy(t, nil, n)
		k.mulScaleOnePlus(p32(dst), p32(in.xs), p32(in.w), uintptr(n), 0.37)
		done()
		return dst[:in.n]
	}},
	{name: "rope", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		x, done := guardedCopy(t, in.xs, 2*n)
		copy(x[n:], in.y[:n])
		k.rope(p32(x), p32(in.cs), p32(in.sn), uintptr(n), uintptr(n))
		done()
		return append(x[:in.n:in.n], x[n:n+in.n]...)
	}},
	{name: "axpyF16", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		y, done := guardedCopy(t, in.y, n)
		k.axpyF16(-0.5, p16(in.halves), p32(y), uintptr(n))
		done()
		return y[:in.n]
	}},
	{name: "dotF16X4", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		out, done := guardedCopy(t, nil, 4)
		k.dotF16X4(p32(out), p16(in.halves), uintptr(in.npad), p32(in.x), uintptr(n))
		done()
		return out
	}, mag: func(in *f32Input) []float64 {
		m := make([]float64, 4)
		for r := range m {
			for i := 0; i < in.n; i++ {
				h := float16.Frombits(in.halves[r*in.npad+i]).Float32()
				m[r] += math.Abs(float64(h) * float64(in.x[i]))
			}
		}
		return m
	}},
	{name: "axpyF16X4", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		y, done := guardedCopy(t, in.y, n)
		k.axpyF16X4(p32(in.alpha), p16(in.halves), uintptr(in.npad), p32(y), uintptr(n))
		done()
		return y[:in.n]
	}},
	{name: "toF16", run: func(t *testing.T, k *f32KernelSet, in *f32Input, n int) []float32 {
		buf := make([]uint16, n+32)
		for i := range buf {
			buf[i] = 0xBEEF
		}
		k.toF16(p16(buf[16:]), p32(in.xs), uintptr(n))
		out := make([]float32, in.n)
		for i, v := range buf {
			if (i < 16 || i >= 16+n) && v != 0xBEEF {
				t.Fatalf("buffer index %d (dst %d) written past [0,%d)", i, i-16, n)
			}
			if i >= 16 && i < 16+in.n {
				out[i-16] = float32(v) // f16 bits, exactly
			}
		}
		return out
	}},
}

// checkF32Set runs every kernel of k on every length: against the AVX2
// kernels on the padded input (bit for bit, or within the sums' budget), and,
// when twin is not nil, against twin bit for bit (NaN for NaN).
func checkF32Set(t *testing.T, k, twin *f32KernelSet) {
	rng := rand.New(rand.NewPCG(61, 62))
	for _, n := range f32KernelLens {
		in := newF32Input(rng, n)
		for _, c := range f32Cases {
			got, want := c.run(t, k, in, n), c.run(t, &avx2F32, in, in.npad)
			var mag []float64
			if c.mag != nil {
				mag = c.mag(in)
			}
			for i := range want {
				what := fmt.Sprintf("n=%d %s[%d]", n, c.name, i)
				g, w := got[i], want[i]
				if mag == nil {
					if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
						t.Fatalf("%s = %v (%#08x), AVX2 %v (%#08x)", what, g, math.Float32bits(g), w, math.Float32bits(w))
					}
				} else if d := math.Abs(float64(g) - float64(w)); !(d <= 2e-6*mag[i]) {
					t.Fatalf("%s = %v, AVX2 %v (diff %.3g, budget %.3g)", what, g, w, d, 2e-6*mag[i])
				}
			}
			if twin == nil {
				continue
			}
			tw := c.run(t, twin, in, n)
			for i := range tw {
				if g, w := got[i], tw[i]; math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
					t.Fatalf("n=%d %s[%d] = %v, twin %v", n, c.name, i, g, w)
				}
			}
		}
	}
}

// TestF32KernelsAVX512 checks the AVX-512 f32 kernels on this CPU against
// their AVX2 twins: the element-wise ones run the same operations lane for
// lane (same tanh and exp approximations), so they agree bit for bit, the
// masked tails included; the sums agree within the f32 ordering budget.
func TestF32KernelsAVX512(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 on this CPU (TestEmuF32Kernels interprets the kernels)")
	}
	checkF32Set(t, &avx512F32, nil)
}
